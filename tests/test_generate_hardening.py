"""Generation under hostile settings: bounded memory, unique names, re-runs that lose nothing."""
import json

import pytest
import torch

from clipag.generation.views import GuidanceViews, ViewConfig
from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.generation.generate import GenerateConfig, best_of_gmm, generate_to_folder, guidance_step, make_optimizer
from clipag.generation.gmm import ClassGMM
from clipag.io import finished_result, save_result, unique_stems
from clipag.models.memory import plan_views
from clipag.generation.prompts import parse_weighted_prompt

FAST = GenerateConfig(steps=1, init="noise", views=ViewConfig(views=2, crops=1))


def test_chunked_views_are_the_same_views():
    views = GuidanceViews((32, 32), ViewConfig(views=5, crops=3))
    image = torch.rand(1, 3, 48, 48)
    torch.manual_seed(0)
    whole = views(image)
    torch.manual_seed(0)
    parts = list(views.chunks(image, 2))
    assert [first for first, _ in parts] == [0, 2, 4, 5, 7]
    assert torch.equal(torch.cat([batch for _, batch in parts]), whole)


def test_a_chunked_step_has_the_same_gradient(tiny_guide):
    config = GenerateConfig(views=ViewConfig(views=3, crops=2), grad_clip=1e9)
    text = tiny_guide.encode_text(["a cat"])[0]
    grads = []
    for chunk in (None, 2):
        pixels = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        torch.manual_seed(0)
        similarity = guidance_step(tiny_guide, pixels, text, torch.optim.SGD([pixels], lr=0.0),
                                   GuidanceViews(tiny_guide.image_size, config.views), config, chunk)
        grads.append((pixels.grad.clone(), similarity))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-5)  # the same cosines


def test_gmm_candidates_are_scored_at_the_guide_size(tiny_guide):
    gmm = ClassGMM.fit(torch.rand(20, 3 * 4 * 4), torch.arange(20) % 2, ["a", "b"], 4)
    seen = []
    original = tiny_guide.score
    tiny_guide.score = lambda images, text: (seen.append(tuple(images.shape)), original(images, text))[1]
    text = tiny_guide.encode_text(["a cat"])[0]
    image, _, scores = best_of_gmm(tiny_guide, text, gmm, 100, 1024, torch.Generator().manual_seed(0))
    assert image.shape == (1, 3, 1024, 1024) and len(scores) == 200
    assert all(shape[0] <= 64 and shape[-1] == tiny_guide.image_size[0] for shape in seen)


def test_memory_plan_chunks_and_refuses():
    cpu = torch.device("cpu")
    assert plan_views(64, 32, 32, (64, 64), cpu, available=8 * 2**30).chunk == 64
    tight = plan_views(2048, 32, 32, (224, 224), cpu, available=8 * 2**30)
    assert 1 <= tight.chunk < 64 and tight.peak_bytes() <= 8 * 2**30
    with pytest.raises(ClipagError, match="needs about .* GB .* lower --size or --views"):
        plan_views(2048, 512, 0, (224, 224), cpu, available=8 * 2**30)


def test_colliding_and_non_latin_prompts_get_distinct_names():
    stems = unique_stems(["a red apple", "A Red Apple!", "猫", "🍎", "a dog"])
    assert len(set(stems)) == 5
    assert stems[-1] == "a-dog" and all(s.startswith("a-red-apple-") for s in stems[:2])
    assert unique_stems(["猫"]) == unique_stems(["猫", "a dog"])[:1]  # stable across calls


def test_generate_writes_every_prompt(tiny_guide, tmp_path):
    records = generate_to_folder(tiny_guide, ["a red apple", "A Red Apple!", "猫", "🍎"], [0], tmp_path, FAST,
                                 progress=False)
    images = {r["image"] for r in records}
    assert len(images) == 4 and all(finished_result(i[:-4]) for i in images)


def test_rerun_keeps_same_settings_and_refuses_others(tiny_guide, tmp_path):
    first = generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, FAST, progress=False)[0]
    again = generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, FAST, progress=False)[0]
    assert again["skipped"] and again["image_sha256"] == first["image_sha256"]
    other = GenerateConfig(steps=2, init="noise", views=ViewConfig(views=2, crops=1))
    with pytest.raises(ClipagError, match="other settings.*--overwrite"):
        generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, other, progress=False)
    assert finished_result(tmp_path / "a-cat-seed0")["settings"]["steps"] == 1  # nothing lost
    replaced = generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, other, progress=False, overwrite=True)[0]
    assert replaced["settings"]["steps"] == 2 and "skipped" not in replaced


def test_a_killed_pair_write_is_redone(tiny_guide, tmp_path):
    generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, FAST, progress=False)
    (tmp_path / "a-cat-seed0.json").unlink()  # as after a kill between the picture and its record
    assert finished_result(tmp_path / "a-cat-seed0") is None
    record = generate_to_folder(tiny_guide, ["a cat"], [0], tmp_path, FAST, progress=False)[0]
    assert "skipped" not in record and finished_result(tmp_path / "a-cat-seed0")


def test_the_pair_is_never_new_picture_beside_old_record(tmp_path):
    save_result(torch.zeros(3, 8, 8), {"n": 1}, tmp_path / "x")

    def crash():
        raise KeyboardInterrupt  # killed while writing a companion file
    with pytest.raises(KeyboardInterrupt):
        save_result(torch.ones(3, 8, 8), {"n": 2}, tmp_path / "x", [crash])
    assert finished_result(tmp_path / "x") is None and not (tmp_path / "x.json").exists()


def test_settings_json_is_valid_json_without_nan(tmp_path):
    save_result(torch.zeros(3, 8, 8), {"similarity": float("nan"), "h": [float("inf")]}, tmp_path / "y")
    record = json.loads((tmp_path / "y.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert record["similarity"] is None and record["h"] == [None]


@pytest.mark.parametrize("text", ["a:nan", "a:inf", "a:-inf"])
def test_non_finite_prompt_weights_are_refused(text):
    with pytest.raises(ClipagError, match="not a finite number"):
        parse_weighted_prompt(text)


def test_library_rejects_non_finite_settings():
    for name in ("lr", "weight_decay", "view_weight", "crop_weight", "grad_clip"):
        with pytest.raises(ClipagError, match=name):
            GenerateConfig(**{name: float("inf")}).validate()


@pytest.mark.parametrize("out_kind", ["file", "under-file"])
def test_unwritable_out_fails_before_any_compute(capsys, tmp_path, out_kind):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if out_kind == "file" else tmp_path / "f" / "sub"
    code = main(["generate", "a cat", "--model", "no-such-model", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "file" in err and "unknown model" not in err


def test_every_guided_method_rejects_non_finite_settings():
    from clipag.tools.draw import DrawConfig
    from clipag.tools.style import StyleConfig
    from clipag.tools.vqgan import VQGANCLIPConfig
    for config in (DrawConfig(max_width=float("inf")), StyleConfig(lr=float("nan")), VQGANCLIPConfig(lr=float("inf")),
                   GenerateConfig(views=ViewConfig(noise_std=float("nan")))):
        with pytest.raises(ClipagError, match="finite"):
            config.validate()


def test_per_seed_results_check_every_earlier_one_before_making_any(tmp_path):
    from clipag.io import results_per_seed
    made = []

    def make(seed, stem):
        made.append(seed)
        return save_result(torch.full((3, 4, 4), seed / 10), {"seed": seed, "settings": {"n": 1}}, stem)
    assert [r["seed"] for r in results_per_seed(tmp_path, "a cat", [1, 2, 1], {"settings": {"n": 1}}, make)] == [1, 2]
    again = results_per_seed(tmp_path, "a cat", [1, 2, 3], {"settings": {"n": 1}}, make)
    assert made == [1, 2, 3] and [r.get("skipped", False) for r in again] == [True, True, False]
    with pytest.raises(ClipagError, match="other settings"):
        results_per_seed(tmp_path, "a cat", [4, 1], {"settings": {"n": 2}}, make)
    assert made == [1, 2, 3]  # seed 4 was not made: the conflict on seed 1 came first


def test_the_cli_says_a_result_was_kept_and_overwrite_redoes_it(capsys, tmp_path):
    argv = ["generate", "a cat", "--model", "clipag-tiny:random", "--steps", "1", "--views", "1", "--crops", "1",
            "--init", "noise", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0 and "kept" not in capsys.readouterr().out
    assert main(argv) == 0 and "kept: made earlier with the same settings" in capsys.readouterr().out
    assert main([*argv, "--steps", "2"]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--steps", "2", "--overwrite"]) == 0 and "kept" not in capsys.readouterr().out
