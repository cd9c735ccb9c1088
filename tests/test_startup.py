"""Fast start: argument parsing and help never import torch, open_clip or kornia (issue 15), and the
lazy package still hands out the same objects."""
import subprocess
import sys

import pytest

from clipag.cli.main import COMMANDS

HEAVY = ("torch", "open_clip", "kornia", "torchvision")
COMMAND_NAMES = [command.__name__.rsplit(".", 1)[1] for command in COMMANDS]


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(result.stdout.splitlines()[-1].split()) if result.stdout.strip() else set()


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in COMMAND_NAMES]],
                         ids=lambda argv: " ".join(argv))
def test_help_imports_no_heavy_library(argv):
    code = (f"import contextlib, io\nfrom clipag.cli.main import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass")
    assert _modules_after(code) == set()


def test_a_bad_option_is_refused_without_heavy_imports():
    code = "from clipag.cli.main import main\ntry:\n    main(['generate', 'x', '--steps', '0'])\nexcept SystemExit:\n    pass"
    assert _modules_after(code) == set()


def test_import_clipag_is_light_until_a_name_is_used():
    assert _modules_after("import clipag, clipag.configs, clipag.training") == set()
    assert "torch" in _modules_after("import clipag\nclipag.Guide")


def test_lazy_exports_are_the_library_objects():
    import importlib
    import clipag
    module = importlib.import_module("clipag.generation.generate")  # importing the module keeps clipag.generate
    assert clipag.generate is module.generate and callable(clipag.generate)
    from clipag.models.guide import Guide
    assert clipag.Guide is Guide and "Guide" in dir(clipag)
    assert set(clipag.__all__) <= set(dir(clipag))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        clipag.nothing


def test_configs_stay_re_exported_by_their_methods():
    from clipag import configs
    from clipag.generation import generate
    from clipag.measure import pag, robustness
    from clipag.tools import draw, style, vqgan
    assert draw.DrawConfig is configs.DrawConfig and generate.GenerateConfig is configs.GenerateConfig
    assert style.StyleConfig is configs.StyleConfig and vqgan.VQGANCLIPConfig is configs.VQGANCLIPConfig
    assert pag.PagConfig is configs.PagConfig and robustness.RobustnessConfig is configs.RobustnessConfig
    assert tuple(vqgan.AUGMENTS) == configs.VQGAN_AUGMENTS  # the CLI's choices are the real ones


@pytest.mark.parametrize("argv, dest, value", [
    (["draw", "x", "--iterations", "7"], "steps", 7),
    (["style", "c.png", "x", "--iterations", "7"], "steps", 7),
    (["vqgan", "x", "--vqgan-config", "v", "--vqgan-checkpoint", "c", "--cutouts", "7"], "crops", 7),
    (["vqgan", "x", "--vqgan-config", "v", "--vqgan-checkpoint", "c", "--init-image", "a.png"], "init", "a.png"),
    (["robustness", "d", "--model", "m", "--steps", "7"], "attack_steps", 7),
])
def test_old_spellings_warn_and_set_the_new_option(argv, dest, value):
    from clipag.cli.main import build_parser
    with pytest.warns(UserWarning, match="is now --"):
        args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value


def test_seeds_repeat_either_way_and_replace_the_default():
    from clipag.cli.main import build_parser
    parser = build_parser()
    assert parser.parse_args(["draw", "x"]).seed == [0]
    assert parser.parse_args(["draw", "x", "--seed", "1", "2"]).seed == [1, 2]
    assert parser.parse_args(["draw", "x", "--seed", "3", "--seed", "4", "5"]).seed == [3, 4, 5]


@pytest.mark.parametrize("command, config", [("draw", "DrawConfig"), ("style", "StyleConfig"),
                                             ("generate", "GenerateConfig"), ("vqgan", "VQGANCLIPConfig")])
def test_command_defaults_are_the_library_defaults(command, config):
    import importlib
    from clipag import configs
    from clipag.cli.main import build_parser
    needs = {"vqgan": ["--vqgan-config", "v", "--vqgan-checkpoint", "c"], "style": ["c.png"]}.get(command, [])
    args = build_parser().parse_args([command, *needs, "x"] if command != "style" else [command, "c.png", "x"])
    module = importlib.import_module(f"clipag.cli.{command}")
    assert module.config_from_args(args) == getattr(configs, config)()
