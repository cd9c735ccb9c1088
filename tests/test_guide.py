import open_clip
import pytest
import torch
import torch.nn.functional as F

from clipag.errors import ClipagError
from clipag.models.guide import Guide


def test_normalisation_is_applied_exactly_once(tiny_guide):
    images = torch.rand(3, 3, 32, 32)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)  # the model's own constants
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    expected = F.normalize(tiny_guide.model.encode_image((images - mean) / std), dim=-1)
    torch.testing.assert_close(tiny_guide.encode_image(images), expected)
    twice = F.normalize(tiny_guide.model.encode_image(((images - mean) / std - mean) / std), dim=-1)
    assert not torch.allclose(tiny_guide.encode_image(images), twice, atol=1e-3)


def test_other_sizes_are_resized_to_the_model_input(tiny_guide):
    images = torch.rand(2, 3, 64, 64)
    resized = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(tiny_guide.encode_image(images), tiny_guide.encode_image(resized))


def test_embeddings_are_unit_length(tiny_guide):
    norms = tiny_guide.encode_image(torch.rand(4, 3, 32, 32)).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(4))
    torch.testing.assert_close(tiny_guide.encode_text(["a", "b c"]).norm(dim=-1), torch.ones(2))


def test_gradients_reach_the_input_pixels_only(tiny_guide):
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    tiny_guide.similarity(images, ["a red apple"]).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_guide.model.parameters())


def test_cached_text_features_equal_fresh_ones(tiny_guide):
    prompts = ["a red apple", "a dog", "a red apple"]
    cached = tiny_guide.encode_text(prompts)
    assert len(tiny_guide._text_cache) == 2
    tokens = tiny_guide.tokenizer(prompts)
    with torch.no_grad():
        fresh = F.normalize(tiny_guide.model.encode_text(tokens), dim=-1)
    torch.testing.assert_close(cached, fresh)
    torch.testing.assert_close(tiny_guide.encode_text(["a dog"]), fresh[1:2])


def test_overlong_prompt_is_truncated_with_a_warning(tiny_guide):
    with pytest.warns(UserWarning, match="truncated"):
        tiny_guide.encode_text(["word " * 100])


def test_bf16_autocast_runs_on_cpu_and_agrees(tiny_model):
    cfg = tiny_model.preprocess_cfg
    make = lambda precision: Guide(tiny_model.model, tiny_model.tokenizer, image_size=cfg["size"],
                                   mean=cfg["mean"], std=cfg["std"], device="cpu", precision=precision)
    images = torch.rand(2, 3, 32, 32)
    fp32, bf16 = make("fp32").encode_image(images), make("bf16").encode_image(images)
    assert bf16.dtype == torch.float32
    assert F.cosine_similarity(fp32, bf16).min() > 0.98


def test_bad_device_and_precision_are_clear_errors(tiny_model):
    cfg = tiny_model.preprocess_cfg
    args = dict(image_size=cfg["size"], mean=cfg["mean"], std=cfg["std"])
    with pytest.raises(ClipagError, match="precision"):
        Guide(tiny_model.model, tiny_model.tokenizer, precision="fp8", **args)
    if not torch.cuda.is_available():
        with pytest.raises(ClipagError, match="no CUDA GPU"):
            Guide(tiny_model.model, tiny_model.tokenizer, device="cuda", **args)


def test_wrong_image_shape_is_rejected(tiny_guide):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny_guide.encode_image(torch.rand(3, 32, 32))


def test_contiguous_attention_changes_no_result(tiny_model):
    import copy
    from clipag.models.guide import ContiguousSelfAttention, use_contiguous_attention
    plain = copy.deepcopy(tiny_model.model)
    swapped = use_contiguous_attention(copy.deepcopy(tiny_model.model))
    assert any(type(m) is ContiguousSelfAttention for m in swapped.modules())
    assert plain.state_dict().keys() == swapped.state_dict().keys()
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    tokens = tiny_model.tokenizer(["a red apple", "a dog"])
    torch.testing.assert_close(swapped.encode_image(images), plain.encode_image(images))
    torch.testing.assert_close(swapped.encode_text(tokens), plain.encode_text(tokens))
    grad_a, = torch.autograd.grad(swapped.encode_image(images).sum(), images)
    grad_b, = torch.autograd.grad(plain.encode_image(images).sum(), images)
    torch.testing.assert_close(grad_a, grad_b)


def test_from_model_reads_size_mean_and_std_from_the_models_own_preprocess_config(tiny_model, tiny_guide):
    import open_clip
    open_clip.set_model_preprocess_cfg(tiny_model.model, {**tiny_model.preprocess_cfg, "mean": (0.5, 0.4, 0.3)})
    guide = Guide.from_model(tiny_model.model, tiny_model.tokenizer, device="cpu")
    assert guide.image_size == tiny_guide.image_size
    assert guide.mean.flatten().tolist() == pytest.approx([0.5, 0.4, 0.3])
    images = torch.rand(2, 3, 20, 20)
    assert not torch.allclose(guide.encode_image(images), tiny_guide.encode_image(images))


def test_from_model_without_a_preprocess_config_says_how_to_build_the_guide(tiny_model):
    del tiny_model.model.visual.preprocess_cfg
    del tiny_model.model.visual.image_mean
    with pytest.raises(ClipagError, match="no OpenCLIP preprocess config"):
        Guide.from_model(tiny_model.model, tiny_model.tokenizer)
