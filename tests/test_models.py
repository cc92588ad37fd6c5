"""The towers, shared head and teacher: shapes (paper scale, without allocating), padding invariance,
input normalization, dtypes and finite gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from alignment import models
from alignment.models.sound import SoundTower
from alignment.models.text import TextTower
from alignment.models.vision import VisionTower, adaptive_avg_pool, max_pool, normalize_images
from alignment.parallel import init_compiler_options
from experiments.configs import paper
from experiments.configs.base import base_config
from tests import helpers


def _model_config(**overrides) -> ml_collections.ConfigDict:
    """A tiny model: 24x24 images, 16x9 spectrograms, 6 words of 5-d vectors, 16-d everywhere."""
    return ml_collections.ConfigDict({**helpers.TINY_MODEL, "word_head": False, **overrides})


def _paper_config() -> ml_collections.ConfigDict:
    """The paper's scale, as experiments/configs/paper.py runs it."""
    return paper.get_config().model


def _conv(kernel_area: int, fan_in: int, fan_out: int) -> int:
    return kernel_area * fan_in * fan_out + fan_out


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_paper_configuration_shapes_and_parameter_count():
    model = models.create_model(_paper_config())
    params = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
    vision = (
        _conv(121, 3, 96)
        + _conv(25, 96, 256)
        + _conv(9, 256, 384)
        + _conv(9, 384, 384)
        + _conv(9, 384, 256)
        + _conv(1, 6 * 6 * 256, 4096)  # pool5 of a 227x227 image is 6x6x256
    )
    sound = (
        _conv(11, 257, 256)
        + _conv(5, 256, 512)
        + _conv(3, 512, 1024)
        + _conv(3, 1024, 1024)
        + _conv(1, 1024, 4096)
    )
    text = (
        _conv(3, 300, 512)
        + _conv(3, 512, 512)
        + _conv(3, 512, 1024)
        + _conv(3, 1024, 1024)
        + _conv(1, 1024, 4096)
    )
    head = _conv(1, 4096, 4096) * 2 + _conv(1, 4096, 1000)
    counts = {
        name: _count(params[key])
        for name, key in [
            ("vision", "vision"),
            ("sound", "sound"),
            ("text", "text"),
            ("head", "head"),
        ]
    }
    assert counts == {"vision": vision, "sound": sound, "text": text, "head": head}
    print(f"paper configuration: {_count(params):,} parameters {counts}")
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))

    inputs = {
        "image": jax.ShapeDtypeStruct((2, 227, 227, 3), jnp.uint8),
        "sound": jax.ShapeDtypeStruct((2, 500, 257), jnp.float32),
        "text": jax.ShapeDtypeStruct((2, 16, 300), jnp.float32),
    }
    for modality, x in inputs.items():
        out = jax.eval_shape(lambda p, x, m=modality: model.apply({"params": p}, x, m), params, x)
        assert {k: (v.shape, v.dtype) for k, v in out.items()} == {
            "tower": ((2, 4096), jnp.float32),
            "fc6": ((2, 4096), jnp.float32),
            "fc7": ((2, 4096), jnp.float32),
            "logits": ((2, 1000), jnp.float32),
        }


TORCHVISION_ALEXNET = {  # state_dict weight shapes of torchvision.models.alexnet()
    "features.0": (64, 3, 11, 11),
    "features.3": (192, 64, 5, 5),
    "features.6": (384, 192, 3, 3),
    "features.8": (256, 384, 3, 3),
    "features.10": (256, 256, 3, 3),
    "classifier.1": (4096, 9216),
    "classifier.4": (4096, 4096),
    "classifier.6": (1000, 4096),
}


def test_every_key_of_a_tower_block_is_a_field_of_its_tower():
    """A tower setting is a key of its config block and a field of its module, nothing in between."""
    model = base_config().model
    for block, tower in (
        (model.vision, VisionTower),
        (model.sound, SoundTower),
        (model.text, TextTower),
    ):
        assert set(block) <= {f.name for f in dataclasses.fields(tower)}, tower.__name__


def test_modules_take_their_blocks_as_saved_with_training_knobs_left_out():
    """Sequences as a saved config.json holds them (lists) become tuples; a dtype name its dtype; the
    teacher's training knobs (source, total_steps, ...) are not the module's."""
    saved = {**helpers.TINY_MODEL, "word_head": True, "dtype": "bfloat16"}
    saved["vision"] = {**saved["vision"], "channels": [4, 8, 8, 8, 8]}
    model = models.create_model(ml_collections.ConfigDict(saved))
    assert model.vision.channels == (4, 8, 8, 8, 8) and model.vision.tower_dim == 16
    assert model.vision.dtype == model.head.dtype == jnp.bfloat16
    assert model.head.word_dim == helpers.TINY_MODEL["text"]["word_dim"]
    teacher_cfg = paper.get_config().teacher
    teacher = models.create_teacher(teacher_cfg)
    assert teacher.normalization == "imagenet" and teacher.hidden == (4096, 4096)
    assert teacher.dtype == jnp.float32  # the config leaves it to the module


def test_teacher_has_torchvision_alexnet_layout():
    cfg = paper.get_config().teacher  # torchvision's alexnet() at 224x224
    teacher = models.create_teacher(cfg)
    params = jax.eval_shape(
        lambda: teacher.init(jax.random.key(0), teacher.example_inputs())["params"]
    )
    ours = {
        "features.0": params["features"]["conv1"]["kernel"],
        "features.3": params["features"]["conv2"]["kernel"],
        "features.6": params["features"]["conv3"]["kernel"],
        "features.8": params["features"]["conv4"]["kernel"],
        "features.10": params["features"]["conv5"]["kernel"],
        "classifier.1": params["fc6"]["kernel"],
        "classifier.4": params["fc7"]["kernel"],
        "classifier.6": params["fc8"]["kernel"],
    }
    for name, torch_shape in TORCHVISION_ALEXNET.items():
        kernel = ours[name].shape
        expected = (
            torch_shape[::-1] if len(torch_shape) == 2 else (*torch_shape[2:], *torch_shape[1::-1])
        )
        assert kernel == expected, name
    assert _count(params) == 61_100_840  # torchvision's AlexNet
    logits = jax.eval_shape(
        lambda p: teacher.apply({"params": p}, jnp.zeros((2, 224, 224, 3), jnp.uint8)), params
    )
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32


@pytest.mark.parametrize("side", [13, 6, 4])
def test_adaptive_avg_pool_matches_torch_bins(side):
    x = np.random.default_rng(0).normal(size=(1, side, side + 1, 2)).astype(np.float32)
    expected = np.zeros((1, 6, 6, 2), np.float32)
    for i in range(6):
        for j in range(6):
            r0, r1 = i * side // 6, -(-(i + 1) * side // 6)
            c0, c1 = j * (side + 1) // 6, -(-(j + 1) * (side + 1) // 6)
            expected[0, i, j] = x[0, r0:r1, c0:c1].mean(axis=(0, 1))
    np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(x), 6), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny():
    model = models.create_model(_model_config())
    init = jax.jit(
        lambda key: models.init_params(model, key), compiler_options=init_compiler_options()
    )
    return model, init(jax.random.key(0))


def test_init_params_builds_every_tower(tiny):
    _, params = tiny
    assert set(params) == {"vision", "sound", "text", "head"}
    assert set(params["head"]) == {"fc6", "fc7", "logits"}


@pytest.mark.parametrize("bag", [False, True])
def test_text_padding_does_not_change_the_output(bag):
    model = models.create_model(_model_config(text={**helpers.TINY_MODEL["text"], "bag": bag}))
    params = jax.jit(lambda key: models.init_params(model, key))(jax.random.key(0))
    assert ("bag_norm" in params["text"]) == bag
    rng = np.random.default_rng(1)
    sentence = rng.normal(size=(1, 4, 5)).astype(np.float32)

    def padded(length: int) -> tuple[np.ndarray, np.ndarray]:
        words = np.concatenate([sentence, 1e3 * rng.normal(size=(1, length - 4, 5))], axis=1)
        return words.astype(np.float32), np.arange(length)[None] < 4

    apply = jax.jit(lambda p, words, mask: model.apply({"params": p}, words, "text", mask))
    outputs = [apply(params, *padded(n)) for n in (4, 6, 11)]
    for out in outputs[1:]:
        for name in ("tower", "fc6", "fc7", "logits"):
            np.testing.assert_allclose(out[name], outputs[0][name], rtol=1e-5, atol=1e-6)
    no_mask = model.apply({"params": params}, sentence, "text")
    # jit fuses and reorders float32 sums: ~1e-6 relative per layer, and absolute on outputs near 0
    np.testing.assert_allclose(no_mask["fc7"], outputs[0]["fc7"], rtol=1e-5, atol=1e-6)


def test_uint8_images_are_normalized_on_device(tiny):
    model, params = tiny
    images = np.random.default_rng(2).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x, "image"))
    from_uint8 = apply(params, images)
    from_float = apply(params, (images / 127.5 - 1.0).astype(np.float32))
    np.testing.assert_allclose(from_uint8["fc7"], from_float["fc7"], rtol=1e-5, atol=1e-6)


def _imagenet(images: np.ndarray) -> np.ndarray:
    """torchvision's ImageNet normalization of uint8 pixels, in float64."""
    return (images / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])


def test_imagenet_normalization_of_uint8_images():
    images = np.random.default_rng(4).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    out = normalize_images(jnp.asarray(images), jnp.float32, "imagenet")
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, _imagenet(images), rtol=1e-6, atol=1e-6)
    half = normalize_images(jnp.asarray(images), jnp.bfloat16, "imagenet")
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(half.astype(np.float32), _imagenet(images), rtol=1e-2, atol=1e-2)
    floats = _imagenet(images).astype(np.float32)  # already normalized: used as given
    np.testing.assert_array_equal(normalize_images(floats, jnp.float32, "imagenet"), floats)


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match=r"'caffe'.*\('symmetric', 'imagenet'\)"):
        normalize_images(jnp.zeros((1, 4, 4, 3), jnp.uint8), jnp.float32, "caffe")


def test_the_vision_tower_uses_the_configured_normalization(tiny):
    model, params = tiny
    vision = {**helpers.TINY_MODEL["vision"], "normalization": "imagenet"}
    imagenet_model = models.create_model(_model_config(vision=vision))
    images = np.random.default_rng(5).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    from_uint8 = imagenet_model.apply({"params": params}, images, "image")
    from_float = model.apply({"params": params}, _imagenet(images).astype(np.float32), "image")
    np.testing.assert_allclose(from_uint8["fc7"], from_float["fc7"], rtol=1e-5, atol=1e-6)


def test_group_norm_normalizes_each_image_on_its_own():
    vision = {**helpers.TINY_MODEL["vision"], "conv_norm": "group"}
    model = models.create_model(_model_config(vision=vision))
    params = models.init_params(model, jax.random.key(0))
    features = params["vision"]["features"]
    assert {f"norm{i}" for i in range(1, 6)} <= set(features)
    assert features["norm2"]["scale"].shape == (8,)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    together = model.apply({"params": params}, images, "image")["tower"]
    # Batch mates of another brightness and contrast leave an image's output unchanged.
    for i in range(3):
        mates = (rng.integers(0, 60, (2, 24, 24, 3)) + 190).astype(np.uint8)
        alone = model.apply({"params": params}, np.concatenate([images[i : i + 1], mates]), "image")
        np.testing.assert_allclose(alone["tower"][0], together[i], rtol=1e-5, atol=1e-6)

    # A conv's scale is normalized away: conv1's kernel and bias x10 leave the output as it was
    # (and do change it without the norm).
    def conv1_times_10(p):
        conv1 = {name: 10.0 * w for name, w in p["vision"]["features"]["conv1"].items()}
        features = {**p["vision"]["features"], "conv1": conv1}
        return {**p, "vision": {**p["vision"], "features": features}}

    louder = model.apply({"params": conv1_times_10(params)}, images, "image")["tower"]
    np.testing.assert_allclose(louder, together, rtol=1e-4, atol=1e-5)
    plain = models.create_model(_model_config())
    plain_params = models.init_params(plain, jax.random.key(0))
    before = plain.apply({"params": plain_params}, images, "image")["tower"]
    after = plain.apply({"params": conv1_times_10(plain_params)}, images, "image")["tower"]
    assert np.abs(after - before).max() > 1e-2


def _with_features(params, times: float):
    """params with every weight of the vision tower's "features" stack multiplied by `times`."""
    features = jax.tree.map(lambda w: times * w, params["vision"]["features"])
    return {**params, "vision": {**params["vision"], "features": features}}


@pytest.mark.parametrize("scale", [0.0, 0.3])
def test_a_fresh_conv_stack_sits_beside_the_first_at_the_configured_weight(scale):
    vision = {**helpers.TINY_MODEL["vision"], "fresh_channels": (8, 8, 8, 8, 8)}
    model = models.create_model(_model_config(vision={**vision, "features_scale": scale}))
    params = models.init_params(model, jax.random.key(0))
    tower = params["vision"]
    assert {f"conv{i}" for i in range(1, 6)} <= set(tower["fresh"])
    assert {f"norm{i}" for i in range(1, 6)} <= set(
        tower["fresh"]
    )  # trained from scratch: GroupNorm
    assert set(tower["features"]) == {f"conv{i}" for i in range(1, 6)}  # what a teacher fills
    np.testing.assert_array_equal(tower["features_norm"]["scale"], np.float32(scale))
    np.testing.assert_array_equal(tower["fresh_norm"]["scale"], 1.0)
    # Both pooled stacks (2 x 8 channels, max ++ mean) feed the tower layer.
    assert tower["tower"]["kernel"].shape == (2 * 16, 16)
    images = np.random.default_rng(3).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    out = model.apply({"params": params}, images, "image")["tower"]
    other = model.apply({"params": _with_features(params, -1.0)}, images, "image")["tower"]
    if scale == 0.0:
        # A zero weight: the first stack does not reach the output until its scale is learned.
        np.testing.assert_allclose(other, out, rtol=1e-6, atol=1e-7)
    else:
        assert np.abs(other - out).max() > 1e-3


def test_the_word_head_maps_fc7_of_every_modality_into_the_word_space(tiny):
    _, plain = tiny
    model = models.create_model(_model_config(word_head=True))
    params = models.init_params(model, jax.random.key(0))
    assert set(params["head"]) == {"fc6", "fc7", "logits", "words"}
    word_dim = helpers.TINY_MODEL["text"]["word_dim"]
    inputs = model.example_inputs(3)
    for modality in ("image", "sound", "text"):
        mask = inputs["text_mask"] if modality == "text" else None
        reps = model.apply({"params": params}, inputs[modality], modality, mask)
        assert reps["words"].shape == (3, word_dim)
        kernel, bias = params["head"]["words"]["kernel"], params["head"]["words"]["bias"]
        np.testing.assert_allclose(reps["words"], reps["fc7"] @ kernel + bias, rtol=1e-5, atol=1e-6)
    tiny_model, _ = tiny
    assert "words" not in tiny_model.apply({"params": plain}, inputs["image"], "image")


def test_unknown_conv_norm_is_refused():
    vision = {**helpers.TINY_MODEL["vision"], "conv_norm": "batch"}
    model = models.create_model(_model_config(vision=vision))
    with pytest.raises(ValueError, match=r"'batch'.*\('none', 'group'\)"):
        models.init_params(model, jax.random.key(0))


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    model = models.create_model(_model_config(dtype="bfloat16"))
    params = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    out = jax.eval_shape(
        lambda p: model.apply({"params": p}, jnp.zeros((2, 16, 9)), "sound"), params
    )
    assert all(v.dtype == jnp.float32 for v in out.values())


def test_gradients_are_finite_for_every_modality(tiny):
    model, params = tiny
    rng = np.random.default_rng(3)
    inputs = {
        "image": rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8),
        "sound": rng.normal(size=(2, 16, 9)).astype(np.float32),
        "text": rng.normal(size=(2, 6, 5)).astype(np.float32),
    }
    for modality, x in inputs.items():
        grads = jax.jit(
            jax.grad(
                lambda p, x, m=modality: jnp.sum(model.apply({"params": p}, x, m)["logits"] ** 2)
            )
        )(params, x)
        leaves = jax.tree.leaves(grads)
        assert all(np.all(np.isfinite(g)) for g in leaves)
        assert any(np.any(g != 0) for g in leaves)


def test_unknown_modality_is_rejected(tiny):
    model, params = tiny
    with pytest.raises(ValueError, match="modality"):
        model.apply({"params": params}, np.zeros((1, 3)), "smell")


@pytest.mark.parametrize("size", [(9, 9), (10, 7), (2, 5), (1, 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_matches_flax_max_pool(size, ties):
    x = jax.random.normal(jax.random.key(0), (2, *size, 3))
    if ties:  # few distinct values: most windows hold their maximum more than once
        x = jnp.round(x)
    window = min(3, *size)

    def reference(x):
        return nn.max_pool(x, (window, window), strides=(2, 2), padding="VALID")

    np.testing.assert_array_equal(max_pool(x), reference(x))
    # The gradient goes to each window's first maximum, as select_and_scatter's does; jit as well
    # as eager, since the backward pass is hand-written. (atol=1e-6: an element that is the maximum
    # of up to four overlapping windows sums their shares, |w| < 4, in another order, a few float32
    # ulps apart, any relative error where they cancel; a share sent astray, |w| ~ 1, still fails.)
    weights = jax.random.normal(jax.random.key(1), reference(x).shape)

    def loss(pool):
        return lambda x: jnp.sum(pool(x) * weights)

    expected = jax.grad(loss(reference))(x)
    np.testing.assert_allclose(jax.grad(loss(max_pool))(x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(loss(max_pool)))(x), expected, rtol=1e-6, atol=1e-6)
