"""The README's Python snippets run as written (on the shipped emoji models, on the CPU)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_library_snippets():
    assert len(python_blocks()) >= 2


def test_the_readme_snippets_run_verbatim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing a snippet writes lands in the checkout
    namespace: dict = {}
    for block in python_blocks():  # one namespace: later blocks use what earlier ones made
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("torch.Size([3, 32, 32])") and printed[0].endswith(" gmm")
    assert printed[1] == "(32, 32) torch.Size([3, 32, 32])"
    assert namespace["sim"].shape == (2, 1)
    assert namespace["result"].similarity > namespace["result"].initial_similarity


@pytest.mark.parametrize("name", ["draw", "vqgan_clip", "style", "generate", "export_model", "Guide"])
def test_the_library_exports_every_method(name):
    import clipag
    assert callable(getattr(clipag, name))
