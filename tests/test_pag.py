"""The targeted PAG measure: sampling, the attack's radius, the judge's verdicts, the command."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.models.guide import Guide
from clipag.models.loading import load_model
from clipag.measure.pag import PagConfig, gradient_alignment, pag_table, sample_pictures, targeted_pag, wilson

from conftest import TINY

COLOURS = [(220, 20, 20), (20, 180, 20), (20, 20, 220), (230, 210, 0), (120, 0, 160), (0, 160, 160)]


@pytest.fixture
def pictures_csv(tmp_path):
    rows = ["filepath,name"]
    for i, colour in enumerate(COLOURS):
        for k in range(2):  # two pictures of each name
            Image.fromarray(np.full((20, 20, 3), colour, dtype=np.uint8)).save(tmp_path / f"{i}-{k}.png")
            rows.append(f"{i}-{k}.png,colour {i}")
    (tmp_path / "pictures.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "pictures.csv"


@pytest.fixture
def judge():
    torch.manual_seed(1)  # another random model than tiny_guide's
    with pytest.warns(UserWarning, match="random weights"):
        loaded = load_model(f"{TINY}:random")
    cfg = loaded.preprocess_cfg
    return Guide(loaded.model, loaded.tokenizer, image_size=cfg["size"], mean=cfg["mean"], std=cfg["std"])


def test_the_sample_is_seeded_and_every_name_is_another_one_s_target(pictures_csv):
    pictures = sample_pictures(pictures_csv, names=5, seed=3)
    assert len(pictures.names) == len(set(pictures.names)) == 5
    assert sorted(pictures.targets) == sorted(pictures.names)
    assert all(a != b for a, b in zip(pictures.names, pictures.targets))
    assert sample_pictures(pictures_csv, names=5, seed=3) == pictures
    assert sample_pictures(pictures_csv, names=5, seed=4) != pictures
    with pytest.raises(ClipagError, match="at least 2"):
        sample_pictures(pictures_csv, names=1)


def test_attacks_stay_in_the_ball_raise_the_similarity_and_are_judged(tiny_guide, judge, pictures_csv):
    pictures = sample_pictures(pictures_csv, names=6, seed=0)
    result = targeted_pag(tiny_guide, judge, pictures, PagConfig(eps=[0.5, 3.0], steps=10), progress=False)
    assert list(result.rates) == ["0", "0.5", "3"] and result.chance == pytest.approx(1 / 6)
    for key, rate in result.rates.items():
        assert rate["target"] + rate["source"] + rate["neither"] == pytest.approx(1.0)
        assert len(result.judged[key]) == 6
    distance = (result.images["3"] - result.images["0"]).flatten(1).norm(dim=1)
    assert (distance <= 3.0 + 1e-4).all() and (distance > 0.5).any()
    assert (result.images["0.5"] - result.images["0"]).flatten(1).norm(dim=1).max() <= 0.5 + 1e-4
    assert result.rates["3"]["similarity"] > result.rates["0.5"]["similarity"] > result.rates["0"]["similarity"]
    assert -1 <= result.alignment <= 1
    table = pag_table({"tiny": result}, 6)
    assert table.count("| tiny |") == 3 and f"| {result.alignment:.3f} |" in table


def test_gradient_alignment_is_the_cosine_of_the_gradient_with_the_way_to_the_destination(tiny_guide):
    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 32)
    text = tiny_guide.encode_text(["a red square", "a blue circle", "a cat"], cache=False)
    x = images.clone().requires_grad_(True)
    (tiny_guide.encode_image(x) * text).sum().backward()
    score = lambda image: (image * text).sum(dim=1)
    along, _ = gradient_alignment(tiny_guide, images, images + 0.01 * x.grad, score)
    against, _ = gradient_alignment(tiny_guide, images, images - 0.01 * x.grad, score)
    torch.testing.assert_close(along, torch.ones(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(against, -torch.ones(3), atol=1e-4, rtol=0)
    nowhere, _ = gradient_alignment(tiny_guide, images, images, score)  # no way to go: 0, not nan
    assert torch.equal(nowhere, torch.zeros(3))


def test_the_judge_must_not_be_the_guide(tiny_guide, pictures_csv):
    with pytest.raises(ClipagError, match="another model"):
        targeted_pag(tiny_guide, tiny_guide, sample_pictures(pictures_csv, names=3), progress=False)


def test_wilson_interval():
    low, high = wilson(0.5, 48)
    assert 0.3 < low < 0.5 < high < 0.7 and wilson(0.0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_command_writes_results_report_and_strip(pictures_csv, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "pag"
    judge_file, _ = tiny_checkpoint
    code = main(["pag", str(pictures_csv), "--model", f"{TINY}:random", "--judge", f"{TINY}:{judge_file}", "--names",
                 "4", "--eps", "1", "--attack-steps", "2", "--out", str(out), "--quiet"])
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert set(record["rates"][f"{TINY}:random"]) == {"0", "1"} and record["chance"] == 0.25
    assert "target hit" in (out / "report.md").read_text()
    assert Image.open(out / "strip.png").size[0] > 100
    assert main(["pag", str(tmp_path / "missing.csv"), "--model", f"{TINY}:random", "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    # a second sample that leaves out the first one's names
    assert main(["pag", str(pictures_csv), "--model", f"{TINY}:random", "--judge", f"{TINY}:{judge_file}", "--names",
                 "2", "--eps", "1", "--attack-steps", "1", "--exclude", str(out / "results.json"),
                 "--out", str(tmp_path / "second"), "--quiet"]) == 0
    second = json.loads((tmp_path / "second" / "results.json").read_text())["pictures"]["names"]
    assert len(second) == 2 and not set(second) & set(record["pictures"]["names"])
