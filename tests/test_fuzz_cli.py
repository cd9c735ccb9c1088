"""Property-based fuzzing of every command: hostile numbers, strings and files never give a traceback.

Each example starts from a small valid call of one command (tiny random models, one step), replaces
or adds one to three of its options (read from the command's own parser, so a new option is fuzzed
too) with a hostile value: 0, negative, huge, inf, nan, odd strings, and paths that are missing, a
folder, zero bytes, binary, text, a decompression bomb, Latin-1. The property: the command exits 0
or 2, prints no traceback, and writes nothing outside its --out. An example that runs past its time
budget (e.g. --steps 10**12 is a valid request) is stopped and counted, not failed.

    pytest tests/test_fuzz_cli.py                                # the default: a few examples a command
    CLIPAG_FUZZ_EXAMPLES=200 CLIPAG_FUZZ_REPORT=fuzz.json pytest tests/test_fuzz_cli.py   # a long run
"""
import argparse
import io
import json
import os
import signal
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from clipag.cli.main import build_parser, main  # noqa: E402

TINY = "clipag-tiny:random"
EXAMPLES = int(os.environ.get("CLIPAG_FUZZ_EXAMPLES", "6"))
SECONDS = float(os.environ.get("CLIPAG_FUZZ_SECONDS", "8"))
NUMBERS = ["0", "-1", "-0.5", "1e308", "1e-320", str(10**30), "inf", "-inf", "nan", "3.5", "1"]
STRINGS = ["", " ", "abc", "a:nan", "猫🍎", "../escape", "-", "x" * 300, "\x7f", "hf-hub:", "local-dir:"]
FILES = ["missing.png", "folder", "zero.pt", "binary.bin", "text.pt", "bomb.png", "latin1.csv", "tiny.pt",
         "picture.png", "train.csv", "wrong.json"]
STATS = {"examples": 0, "timed_out": 0, "exit_0": 0, "exit_2": 0}


class Budget(BaseException):
    """Raised by the alarm: the example ran out of time (a BaseException, so no `except Exception` eats it)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every input a command takes, once: pictures, CSVs, checkpoints, a VQGAN, npm packages, hostile files."""
    root = tmp_path_factory.mktemp("fuzz")
    inputs = root / "in"
    (inputs / "folder").mkdir(parents=True)
    for cls, colour in (("red", (230, 0, 0)), ("blue", (0, 0, 230))):
        (inputs / "classes" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (24, 24), colour).save(inputs / "classes" / cls / f"{i}.png")
    Image.new("RGB", (40, 36), (200, 30, 30)).save(inputs / "picture.png")
    Image.new("1", (30000, 30000)).save(inputs / "bomb.png")  # 900 M pixels, a few KB on disk
    (inputs / "zero.pt").write_bytes(b"")
    (inputs / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (inputs / "text.pt").write_text("not a checkpoint\n")
    (inputs / "latin1.csv").write_bytes("filepath,title,name\npicture.png,caf\xe9,caf\xe9\n".encode("latin-1"))
    (inputs / "wrong.json").write_text("[1, 2, 3]")
    (inputs / "train.csv").write_text("filepath,title,name\n" + "".join(
        f"{inputs / 'classes' / c / f'{i}.png'},a {c} square,{c}\n" for c in ("red", "blue") for i in range(2)))
    torch.manual_seed(0)
    from clipag.models.loading import load_model
    torch.save(load_model(TINY).model.state_dict(), inputs / "tiny.pt")
    from conftest import TINY_YAML
    from clipag.tools.vqgan_model import VQGAN, VQGANConfig
    (inputs / "vq.yaml").write_text(TINY_YAML)
    torch.save({"state_dict": VQGAN(VQGANConfig.from_yaml(inputs / "vq.yaml")).state_dict()}, inputs / "vq.ckpt")
    _emoji_packages(inputs / "npm")
    (root / "cwd").mkdir()
    return root


def _emoji_packages(folder: Path) -> None:
    from test_emoji import files
    folder.mkdir()
    with tarfile.open(folder / "emoji-datasource-twitter-16.0.0.tgz", "w:gz") as tgz:
        for relative, data in files("twitter").items():
            info = tarfile.TarInfo(f"package/{relative}")
            info.size = len(data)
            tgz.addfile(info, io.BytesIO(data))


def base_calls(i: Path, out: Path) -> dict[str, list[str]]:
    """A small valid call of every command."""
    tiny_file = f"clipag-tiny:{i / 'tiny.pt'}"
    quick = ["--steps", "1", "--views", "1", "--crops", "1", "--init", "noise"]
    return {
        "generate": ["generate", "a cat", "--model", TINY, *quick, "--out", str(out), "--quiet"],
        "draw": ["draw", "a cat", "--model", TINY, "--steps", "1", "--strokes", "3", "--views", "1",
                 "--out", str(out), "--quiet"],
        "vqgan": ["vqgan", "a cat", "--vqgan-config", str(i / "vq.yaml"), "--vqgan-checkpoint", str(i / "vq.ckpt"),
                  "--model", TINY, "--steps", "1", "--size", "32", "--crops", "1", "--out", str(out), "--quiet"],
        "style": ["style", str(i / "picture.png"), "a cat", "--model", TINY, "--steps", "1", "--size", "32",
                  "--crops", "1", "--crop-size", "16", "--no-network", "--content-loss", "pixels", "--out", str(out),
                  "--quiet"],
        "train": ["train", "--model", TINY, "--data", str(i / "train.csv"), "--out", str(out), "--steps", "1",
                  "--batch-size", "2", "--attack-steps", "1", "--workers", "0", "--quiet"],
        "models": ["models"],
        "gmm": ["gmm", "fit", str(i / "classes"), "--out", str(out / "g.safetensors"), "--size", "4", "--quiet"],
        "data": ["data", "emoji", "--from", str(i / "npm"), "--out", str(out)],
        "evaluate": ["evaluate", str(i / "train.csv"), "--evaluator", TINY, "--out", str(out)],
        "compare": ["compare", "a cat", "--model", TINY, "--model", tiny_file, "--evaluator", TINY, *quick,
                    "--out", str(out), "--quiet"],
        "robustness": ["robustness", str(i / "train.csv"), "--class-column", "name", "--model", TINY,
                       "--eps", "0.1", "--attack-steps", "1", "--out", str(out)],
        "explain": ["explain", str(i / "picture.png"), "--target", "a cat", "--model", TINY, "--out", str(out)],
    }


def options(argv: list[str]) -> list[argparse.Action]:
    """The options of the (sub)command that `argv` calls, from its own parser."""
    parser = build_parser()
    for word in argv[:2]:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            break
        parser = sub.choices[word]
    return [a for a in parser._actions if a.option_strings and a.option_strings[0] not in ("-h", "--help")
            and not isinstance(a, argparse._VersionAction)]


def hostile_value(draw, inputs: Path) -> str:
    kind = draw(st.sampled_from(["number", "string", "file"]))
    if kind == "number":
        return draw(st.sampled_from(NUMBERS))
    if kind == "string":
        return draw(st.sampled_from(STRINGS))
    return str(inputs / draw(st.sampled_from(FILES)))


def mutate(draw, argv: list[str], inputs: Path) -> list[str]:
    argv = list(argv)
    actions = options(argv)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 4)) == 0:  # a positional argument (prompt, image, dataset) instead
            spots = [k for k in range(1, len(argv)) if not argv[k].startswith("-") and not argv[k - 1].startswith("-")
                     and argv[k] not in ("fit", "emoji")]
            if spots:
                argv[draw(st.sampled_from(spots))] = hostile_value(draw, inputs)
            continue
        if not actions:
            continue
        action = draw(st.sampled_from(actions))
        flag = action.option_strings[-1]
        if action.nargs == 0:
            argv.append(flag)
            continue
        value = hostile_value(draw, inputs)
        if flag in argv and action.nargs in (None, "?"):
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def effective_out(argv: list[str], cwd: Path) -> Path | None:
    outs = [argv[k + 1] for k in range(len(argv) - 1) if argv[k] == "--out"]
    return (cwd / outs[-1]).resolve() if outs else None


def files_under(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def run_with_budget(argv: list[str]) -> int:
    def stop(*_):
        raise Budget()
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse
        return exit_.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


FUZZED = list(base_calls(Path("i"), Path("o")))


@pytest.mark.parametrize("command", FUZZED)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_traceback_and_nothing_outside_out(command, world, data, capsys):
    inputs, cwd = world / "in", world / "cwd"
    STATS["examples"] += 1
    out = world / "outs" / f"{command}-{STATS['examples']}"
    argv = mutate(data.draw, base_calls(inputs, out)[command], inputs)
    hypothesis.note(f"argv: {argv}")
    before = files_under(world)
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        code = run_with_budget(argv)
    except Budget:
        STATS["timed_out"] += 1
        return
    finally:
        os.chdir(old_cwd)
    err = capsys.readouterr().err
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    STATS[f"exit_{code}"] += 1
    allowed = effective_out(argv, cwd)
    new = files_under(world) - before
    stray = [p for p in new if not (allowed and (p == allowed or allowed in p.parents))
             and world / "outs" not in p.parents]
    assert not stray, f"wrote outside --out: {stray}"
    for path in new:  # an --out the fuzzer moved among the inputs: keep them as they were
        if world / "outs" not in path.parents:
            path.unlink(missing_ok=True)


def teardown_module(module):
    report = os.environ.get("CLIPAG_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(STATS, indent=2) + "\n")
