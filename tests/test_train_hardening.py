"""`clipag train` hardening: one run per folder, non-finite numbers, one-line errors, leftovers, resume checks."""
import json
import os
import signal
import subprocess
import sys
import time

import open_clip
import pytest
import torch

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.training import TrainConfig, train
from clipag.training.checkpoint import list_checkpoints

from test_train import TINY, config, shapes_csv, start_checkpoint, weights  # noqa: F401 (fixtures)

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cli_args(start, data, out, *extra):
    return ["train", "--model", start, "--data", str(data), "--out", str(out), "--batch-size", "8", "--steps", "2",
            "--lr", "1e-3", "--eps", "0.5", "--attack-steps", "3", "--workers", "0", "--quiet", *extra]


def run_cli(capsys, argv):
    """(exit code, stdout, stderr) of `clipag ARGV`, argparse's exits included."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("clipag") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


# ---------------------------------------------------------------- 1. one run per folder

def test_a_second_run_on_a_busy_folder_is_refused_and_a_killed_runs_lock_is_taken_over(
        tmp_path, capsys, shapes_csv, start_checkpoint):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "clipag.train",
                              *cli_args(start_checkpoint, shapes_csv, run, "--steps", "100000", "--save-every",
                                        "100000", "--log-every", "1")[1:]],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "log.csv").is_file() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None and (run / ".lock").read_text().strip() == str(first.pid)
        code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, run))
        assert_one_line_error(code, err, str(run), f"pid {first.pid}", "in use")
        assert first.poll() is None, "the refused run must leave the first one alone"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run's .lock file is still there, with its dead pid: flock died with it
    assert (run / ".lock").read_text().strip() == str(first.pid)
    train(config(start_checkpoint, shapes_csv, run, steps=2, log_every=1), progress=False)
    assert (run / ".lock").read_text().strip() == str(os.getpid())
    steps = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2"], "the killed run's log rows are dropped, none interleaved"


def test_the_lock_is_held_for_the_run_and_released_after(tmp_path, shapes_csv, start_checkpoint, monkeypatch):
    import fcntl
    from clipag.training import loop
    seen = []

    def probe(*args, **kwargs):  # during the run, another process cannot take the lock
        script = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
                  "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
        seen.append(subprocess.run([sys.executable, "-c", script, str(tmp_path / "run" / ".lock")]).returncode)
        return real(*args, **kwargs)

    real = loop.write_final_model
    monkeypatch.setattr(loop, "write_final_model", probe)
    train(config(start_checkpoint, shapes_csv, tmp_path / "run", steps=2), progress=False)
    assert seen == [3]
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released once the run returned
    os.close(fd)


# ---------------------------------------------------------------- 2. non-finite numbers

@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "1e999"), ("--lr", "nan"), ("--eps", "inf"),
                                           ("--weight-decay", "inf"), ("--grad-clip", "nan"),
                                           ("--step-size", "inf"), ("--align-weight", "nan")])
def test_non_finite_options_are_refused_by_the_cli(capsys, tmp_path, option, value, shapes_csv, start_checkpoint):
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, tmp_path / "run", option, value))
    assert_one_line_error(code, err, option)
    assert not (tmp_path / "run" / "settings.json").exists()


def write_recipe(path, start, data, out, text):
    """A recipe from the run's basics plus JSON `text` (raw, so that 1e999 reaches json.loads)."""
    basics = json.dumps({"model": start, "data": [str(data)], "out": str(out), "batch_size": 8, "steps": 2,
                         "workers": 0, "eps": 0.5, "attack_steps": 3})
    path.write_text(basics[:-1] + (", " + text if text else "") + "}")
    return path


@pytest.mark.parametrize("text, fragment", [
    ('"lr": 1e999', "lr must be a finite number"),
    ('"weight_decay": 1e999', "weight-decay must be a finite number"),
    ('"eps": 1e999', "eps must be a finite number"),
    ('"grad_clip": NaN', "grad-clip must be a finite number"),
    ('"lr": 5', "at most 1"),
    ('"align_weight": 1e999', "align-weight must be a finite number"),
    ('"align_weight": -1', "align-weight must be 0 or more"),
    ('"steps": "ten"', "steps must be an integer"),
    ('"lr": [1]', "lr must be a number"),
    ('"data": 5', "data must be a list of text"),
    ('"batch_size": true', "batch-size must be an integer"),
    ('"seed": -1', "seed -1 is out of range"),
    ('"seed": 4294967296', "out of range"),
    ('"seed": 1.5', "seed must be an integer"),
    ('"attack": 5', "attack setting must be an object"),
    ('"attack": {"radius": 2}', "unknown attack settings"),
    ('"attack_steps": "five"', "steps must be an integer"),
    ('"workers": -1', "workers must be 0 or more"),
    ('"warmup_steps": -3', "warmup-steps must be 0 or more"),
    ('"precision": "fp8"', "unknown precision"),
    ('"learning_rate": 1', "unknown training settings"),
])
def test_bad_recipe_values_are_one_line_errors_and_nothing_is_written(capsys, tmp_path, text, fragment,
                                                                      shapes_csv, start_checkpoint):
    recipe = write_recipe(tmp_path / "recipe.json", start_checkpoint, shapes_csv, tmp_path / "run", text)
    code, _, err = run_cli(capsys, ["train", "--config", str(recipe), "--quiet"])
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.json"))


def test_a_recipe_out_that_cannot_be_written_is_refused_before_training(capsys, tmp_path, shapes_csv,
                                                                        start_checkpoint):
    (tmp_path / "file").write_text("not a folder")
    recipe = write_recipe(tmp_path / "recipe.json", start_checkpoint, shapes_csv, tmp_path / "file" / "run", "")
    code, _, err = run_cli(capsys, ["train", "--config", str(recipe), "--quiet"])
    assert_one_line_error(code, err, "is a file")


def test_validate_refuses_non_finite_numbers_and_seeds_out_of_range(tmp_path, shapes_csv, start_checkpoint):
    for overrides in (dict(lr=float("inf")), dict(weight_decay=float("nan")), dict(grad_clip=float("inf")),
                      dict(seed=2**32), dict(seed=-1)):
        with pytest.raises(ClipagError):
            config(start_checkpoint, shapes_csv, tmp_path / "run", **overrides).validate()
    config(start_checkpoint, shapes_csv, tmp_path / "run", seed=2**32 - 1).validate()


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_cli_seed_out_of_range_is_refused(capsys, tmp_path, seed, shapes_csv, start_checkpoint):
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, tmp_path / "run", "--seed", seed))
    assert_one_line_error(code, err, "--seed", "out of range")


def test_a_diverging_run_stops_at_the_step_and_keeps_the_last_good_checkpoint(tmp_path, shapes_csv,
                                                                              start_checkpoint):
    # AdamW's decay multiplies the weights by 1 - lr * wd = -1e33 a step: finite after step 1, inf after 2
    settings = config(start_checkpoint, shapes_csv, tmp_path / "run", weight_decay=1e36, grad_clip=None,
                      save_every=1, log_every=1)
    with pytest.raises(ClipagError, match="diverged at step 2") as error:
        train(settings, progress=False)
    assert "\n" not in str(error.value) and "step_00000001.pt" in str(error.value)
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001.pt"]
    assert not (run / "open_clip_model.safetensors").exists()
    good = torch.load(list_checkpoints(run)[0], weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in good.values())
    assert [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]] == ["1"]


def test_a_non_finite_loss_stops_the_run_before_anything_of_its_step_is_saved(tmp_path, shapes_csv,
                                                                              start_checkpoint, monkeypatch):
    from clipag.training import loop
    real = loop._optimisation_step
    monkeypatch.setattr(loop, "_optimisation_step", lambda *args: real(*args) * (float("nan") if args[3] == 2 else 1))
    with pytest.raises(ClipagError, match="diverged at step 3 .loss nan"):
        train(config(start_checkpoint, shapes_csv, tmp_path / "run", save_every=1), progress=False)
    assert list_checkpoints(tmp_path / "run")[-1].name == "step_00000002.pt"


# ---------------------------------------------------------------- 3. resume of the wrong file, non-UTF-8 data

def test_resume_of_a_plain_state_dict_is_a_one_line_error(capsys, tmp_path, shapes_csv, start_checkpoint):
    plain = start_checkpoint.split(":", 1)[1]
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, tmp_path / "run", "--resume", plain))
    assert_one_line_error(code, err, "not a training checkpoint", "--model")
    assert not (tmp_path / "run" / "settings.json").exists()


def test_resume_of_another_architecture_is_a_one_line_error(capsys, tmp_path, shapes_csv, start_checkpoint):
    import clipag.models.loading  # noqa: F401 (registers the emoji architectures)
    run = train(config(start_checkpoint, shapes_csv, tmp_path / "run", steps=2), progress=False)
    state = torch.load(list_checkpoints(run)[-1], weights_only=True)
    state["state_dict"] = open_clip.create_model("emoji-vit-64").state_dict()
    torch.save(state, tmp_path / "other.pt")
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, tmp_path / "new", "--resume",
                                            str(tmp_path / "other.pt"), "--steps", "4"))
    assert_one_line_error(code, err, "does not fit the model", "differently shaped")
    assert not any((tmp_path / "new").glob("settings*.json"))


def test_a_latin1_csv_is_a_one_line_error_naming_the_file(capsys, tmp_path, shapes_csv, start_checkpoint):
    data = tmp_path / "latin1.csv"
    data.write_bytes("filepath,title\n".encode() + f"{shapes_csv.parent / '0.png'},caf\xe9 cr\xe8me\n".encode("latin-1"))
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, data, tmp_path / "run"))
    assert_one_line_error(code, err, str(data), "UTF-8")
    assert not (tmp_path / "run" / "settings.json").exists()


def test_missing_data_is_refused_before_the_model_is_loaded(tmp_path, start_checkpoint):
    with pytest.raises(ClipagError, match="data source not found"):
        train(config("ViT-Nothing:random", tmp_path / "missing.csv", tmp_path / "run"), progress=False)


def test_a_data_name_too_long_for_the_file_system_is_a_one_line_error(capsys, tmp_path, start_checkpoint):
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, tmp_path / ("a" * 300), tmp_path / "run"))
    assert_one_line_error(code, err, "cannot use data source", "too long")


def test_a_binary_recipe_and_binary_class_names_are_one_line_errors(capsys, tmp_path, shapes_csv, start_checkpoint):
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(128, 256)))
    code, _, err = run_cli(capsys, ["train", "--config", str(binary), "--quiet"])
    assert_one_line_error(code, err, "cannot read recipe", str(binary))
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, tmp_path / "run", "--classes", str(binary)))
    assert_one_line_error(code, err, "not UTF-8")


def test_the_file_system_refusing_a_write_is_one_line_and_not_a_traceback(capsys, tmp_path, monkeypatch):
    import clipag.cli.train as train_cli

    def full_disk(args):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "checkpoint.pt"))
    monkeypatch.setattr(train_cli, "run", full_disk)
    code, _, err = run_cli(capsys, ["train", "--model", "x", "--data", "y.csv", "--out", str(tmp_path / "run")])
    assert code == 1 and err.count("\n") == 1 and "No space left" in err and "checkpoint.pt" in err, err


# ---------------------------------------------------------------- 4. leftovers of killed writes

def test_stale_temporary_files_of_killed_writers_are_removed(capsys, tmp_path, shapes_csv, start_checkpoint):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    dead = dead_pid()
    stale = [run / "checkpoints" / f".step_00000002.pt.tmp-{dead}-ab12cd34.pt", run / f".log.csv.tmp-{dead}-x9y8.csv"]
    live = run / "checkpoints" / f".step_00000004.pt.tmp-{os.getpid()}-ef56gh78.pt"
    for path in (*stale, live):
        path.write_bytes(b"half a checkpoint")
    train(config(start_checkpoint, shapes_csv, run, steps=2), progress=False)
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert not any(p.exists() for p in stale) and live.exists()


# ---------------------------------------------------------------- 5. resume with changed settings

def test_resume_reports_changed_steps_and_lr(capsys, tmp_path, shapes_csv, start_checkpoint):
    run = train(config(start_checkpoint, shapes_csv, tmp_path / "run"), progress=False)
    capsys.readouterr()
    train(config(start_checkpoint, shapes_csv, run, steps=8, lr=5e-4, resume="latest"), progress=False)
    assert "resuming with changed settings: lr 0.001 -> 0.0005, steps 4 -> 8" in capsys.readouterr().out
    record = json.loads((run / "settings-resume-4.json").read_text())
    assert record["changed_settings"] == {"lr": [0.001, 0.0005], "steps": [4, 8]}
    assert list_checkpoints(run)[-1].name == "step_00000008.pt"


def test_resume_with_settings_that_change_the_run_needs_the_flag(capsys, tmp_path, shapes_csv, start_checkpoint):
    run = tmp_path / "run"
    assert run_cli(capsys, cli_args(start_checkpoint, shapes_csv, run))[0] == 0
    before = weights(run)
    code, _, err = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, run, "--resume", "latest", "--steps", "4",
                                            "--seed", "1", "--eps", "1.0"))
    assert_one_line_error(code, err, "attack.eps 0.5 -> 1.0", "seed 0 -> 1", "--allow-changed-settings")
    assert not (run / "settings-resume-2.json").exists()
    assert torch.equal(before["visual.proj"], weights(run)["visual.proj"])
    code, out, _ = run_cli(capsys, cli_args(start_checkpoint, shapes_csv, run, "--resume", "latest", "--steps", "4",
                                            "--seed", "1", "--eps", "1.0", "--allow-changed-settings"))
    assert code == 0 and "resuming with changed settings: attack.eps 0.5 -> 1.0, seed 0 -> 1, steps 2 -> 4" in out
    assert list_checkpoints(run)[-1].name == "step_00000004.pt"


def test_resume_beyond_the_steps_is_refused(tmp_path, shapes_csv, start_checkpoint):
    run = train(config(start_checkpoint, shapes_csv, tmp_path / "run"), progress=False)
    with pytest.raises(ClipagError, match="at step 4, beyond --steps 2"):
        train(config(start_checkpoint, shapes_csv, run, steps=2, resume="latest"), progress=False)


def test_resume_drops_log_rows_after_its_checkpoint(tmp_path, shapes_csv, start_checkpoint):
    run = train(config(start_checkpoint, shapes_csv, tmp_path / "run", log_every=1), progress=False)
    list_checkpoints(run)[-1].unlink()  # killed after logging steps 3 and 4, before the step-4 checkpoint
    train(config(start_checkpoint, shapes_csv, run, log_every=1, resume="latest"), progress=False)
    assert [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]


def test_a_missing_setting_is_not_a_change():
    stored = TrainConfig(model="m", data=["d"], out="o").to_dict()
    del stored["tecoa_template"]  # a checkpoint of an older version
    from clipag.training.config import changed_settings
    assert changed_settings(stored, TrainConfig(model="m", data=["d"], out="o", train_text=False)) == {}


def test_a_micro_batch_that_cannot_fit_in_memory_is_refused_before_training(capsys, tmp_path, shapes_csv,
                                                                           start_checkpoint):
    code, _, err = run_cli(capsys, ["train", "--model", start_checkpoint, "--data", str(shapes_csv),
                                    "--out", str(tmp_path / "run"), "--batch-size", "4000000000", "--quiet"])
    assert_one_line_error(code, err, "micro-batch of 4000000000 images", "--accum-steps")
    assert not list_checkpoints(tmp_path / "run")


def test_the_training_memory_estimate_fits_the_paper_recipe_on_one_h200():
    """512 images per micro-batch (40,960 / 8 GPUs / 10 steps) of ViT-B/32 fit in 139 GiB; 5,120 do not."""
    from clipag.models.memory import check_training_batch
    model = open_clip.create_model("ViT-B-32")
    h200 = 139 * 2**30
    assert check_training_batch(512, (224, 224), model, torch.device("cpu"), available=h200) < 0.8 * h200
    with pytest.raises(ClipagError, match="raise --accum-steps"):
        check_training_batch(5120, (224, 224), model, torch.device("cpu"), available=h200)
