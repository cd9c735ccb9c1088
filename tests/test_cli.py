import json
import os
import subprocess
import sys

import pytest
import torch

from clipag.cli.main import main

TINY = "clipag-tiny:random"


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_writes_an_image(capsys, tmp_path):
    with pytest.warns(UserWarning, match="random weights"):  # the stopgap model says what it is
            code, out, err = run_cli(capsys, "generate", "a red apple", "--model", TINY, "--steps", "2",
                                 "--views", "2", "--crops", "2", "--init", "noise", "--out", str(tmp_path),
                                 "--optimizer", "l2", "--quiet")
    assert code == 0, err
    assert (tmp_path / "a-red-apple-seed0.png").is_file()
    settings = json.loads((tmp_path / "a-red-apple-seed0.json").read_text())["settings"]
    assert settings["steps"] == 2 and settings["optimizer"] == "l2"
    assert "similarity" in out


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if "warning" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("extra, fragments", [
    (["--model", "no-such-model"], ["unknown model"]),
    (["--init", "/nonexistent/start.png"], ["cannot read image"]),
    (["--gmm", "/nonexistent/g.safetensors"], ["GMM file not found"]),
    (["--model", "clipag-tiny:/nonexistent/w.pt"], ["checkpoint not found"]),
])
def test_generate_bad_input_is_one_line(capsys, tmp_path, extra, fragments):
    argv = ["generate", "a cat", "--model", TINY, "--steps", "1", "--out", str(tmp_path), "--quiet", *extra]
    assert_one_line_error(*run_cli(capsys, *argv)[::2], *fragments)


@pytest.mark.parametrize("argv, fragments", [
    (["generate", "a cat", "--steps", "0"], ["--steps", "positive"]),
    (["generate", "a cat", "--steps", "-3"], ["--steps"]),
    (["generate", "a cat", "--views", "many"], ["not an integer"]),
    (["generate", "", "--model", TINY], ["empty prompt"]),
    (["generate", "a cat", "--precision", "fp8"], ["invalid choice"]),
    (["generate", "a cat", "--optimizer", "sgd"], ["--optimizer", "invalid choice"]),
    (["generate", "a cat", "--size", "8"], ["--size", "use 16 to 2048"]),
    (["draw", "a cat", "--size", "20000"], ["--size", "use 16 to 2048"]),
    (["style", "x.png", "a cat", "--size", "20000"], ["--size", "use 16 to 2048"]),
    (["generate", "a cat", "--lr", "inf"], ["--lr", "not a finite number"]),
    (["generate", "a cat", "--weight-decay", "inf"], ["--weight-decay", "not a finite number"]),
    (["generate", "a cat", "--view-weight", "nan"], ["--view-weight", "not a finite number"]),
    (["generate", "a cat", "--seed", "-1"], ["--seed", "out of range"]),
    (["generate", "a cat", "--seed", str(2**64)], ["--seed", "out of range"]),
])
def test_argument_errors_are_one_line(capsys, argv, fragments):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert_one_line_error(exit_info.value.code, err, *fragments)


def test_unreadable_checkpoint_file(capsys, tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "generate", "a cat", "--model", f"clipag-tiny:{bad}", "--quiet")
    assert_one_line_error(code, err, "cannot read checkpoint", "not a PyTorch or safetensors file")


def test_models_lists_availability(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path))
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert "clipag-vit-b-32" in out and "clip-vit-b-32" in out and "missing" in out
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "CLIPAG_ViTB32.pt").write_bytes(b"")
    out = run_cli(capsys, "models")[1]
    assert out.splitlines()[0].split()[:3] == ["clipag-vit-b-32", "ViT-B-32", "available"]


def test_gmm_fit_command(capsys, tmp_path):
    from test_gmm import make_image_folder
    root = make_image_folder(tmp_path / "data", {"red": (255, 0, 0), "green": (0, 255, 0)})
    out_file = tmp_path / "g.safetensors"
    code, out, err = run_cli(capsys, "gmm", "fit", str(root), "--out", str(out_file), "--size", "8",
                             "--rank", "3", "--quiet")
    assert code == 0, err
    assert "2 classes" in out and "lowrank" in out and out_file.is_file()
    code, _, err = run_cli(capsys, "generate", "a cat", "--model", TINY, "--gmm", str(out_file), "--steps", "1",
                           "--views", "1", "--crops", "1", "--out", str(tmp_path / "o"), "--quiet")
    assert code == 0, err
    settings = json.loads((tmp_path / "o" / "a-cat-seed0.json").read_text())
    assert settings["init"]["init"] == "gmm" and settings["init"]["class"] in {"red", "green"}


def test_console_script_runs_a_saved_checkpoint(tmp_path, tiny_checkpoint):
    path, _ = tiny_checkpoint
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "clipag.cli.main", "generate", "a red apple", "--model",
               f"clipag-tiny:{path}", "--steps", "2", "--views", "2", "--crops", "2", "--init", "noise",
               "--out", str(tmp_path / "out"), "--seed", "0", "1", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "grid.png").is_file() and (tmp_path / "out" / "a-red-apple-seed1.png").is_file()


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--model", TINY, "--out", "x"], ["--data is required"]),
    (["train", "--model", TINY, "--data", "/nonexistent.csv", "--out", "x"], ["not found"]),
    (["train", "--model", "ViT-Nothing:random", "--data", "d.csv", "--out", "x"], ["unknown model"]),
    (["train", "--model", TINY, "--data", "d.csv", "--out", "x", "--batch-size", "10", "--accum-steps", "4"],
     ["does not divide"]),
    (["train", "--config", "/nonexistent/recipe.json"], ["cannot read recipe"]),
])
def test_train_bad_input_is_one_line(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("filepath,title\n")
    assert_one_line_error(*run_cli(capsys, *argv)[::2], *fragments)


def test_train_eps_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--eps", "0"])
    assert_one_line_error(exit_info.value.code, capsys.readouterr().err, "--eps", "positive")


@pytest.mark.parametrize("argv", [["draw", "a cat", "--out", "x" * 300],
                                  ["gmm", "fit", ".", "--out", "x" * 300 + ".safetensors"],
                                  ["generate", "a cat", "--out", "ok/" + "y" * 300 + "/deeper"]])
def test_an_out_name_too_long_for_the_file_system_is_one_line(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "too long")


LONG = "x" * 300


@pytest.mark.parametrize("argv", [
    ["gmm", "fit", LONG, "--out", "g.safetensors"], ["evaluate", LONG, "--evaluator", "clipag-tiny:random"],
    ["robustness", LONG, "--model", "clipag-tiny:random"], ["data", "emoji", "--from", LONG, "--out", "e"],
    ["generate", "a", "--gmm", LONG], ["generate", "a", "--model", f"clipag-tiny:{LONG}"],
    ["generate", "a", "--model", f"local-dir:{LONG}"], ["explain", LONG, "--model", "clipag-tiny:random"]])
def test_input_names_too_long_for_the_file_system_are_one_line(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err)
    assert "too long" in err or "cannot read image" in err, err
