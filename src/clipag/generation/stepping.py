"""What the step-at-a-time runs of generate, draw, VQGAN+CLIP and CLIPStyler share (no torch)."""
from typing import Optional


class StepwiseRun:
    """A run counts its steps by its history and is done after `config.steps` of them; subclasses set
    `history` (one number per step) and `config`, and define step(), image() and result()."""

    @property
    def steps_done(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        return self.steps_done >= self.config.steps

    def run_to_end(self, desc: str, progress: bool = True, unit: str = "step", shown: Optional[str] = None):
        """Step until done under a progress bar (showing each step's value as `shown`, if named); the result."""
        from tqdm import tqdm
        bar = tqdm(range(self.steps_done, self.config.steps), desc=desc, unit=unit, disable=not progress, leave=False)
        for _ in bar:
            value = self.step()
            if shown:
                bar.set_postfix({shown: f"{value:.3f}"})
        return self.result()
