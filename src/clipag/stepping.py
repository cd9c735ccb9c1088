"""What the step-at-a-time runs of generate, draw, VQGAN+CLIP and CLIPStyler share (no torch)."""


class StepwiseRun:
    """A run counts its steps by its history and is done after `config.steps` of them; subclasses set
    `history` (one number per step) and `config`, and define step(), image() and result()."""

    @property
    def steps_done(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        return self.steps_done >= self.config.steps
