"""Vision front end: any PIL-readable image -> uint8 [S, S, 3]; truncated files are errors."""

import io

import numpy as np
import pytest
from PIL import Image

from data_pipelines import vision


def _encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(RGB),
        Image.fromarray(RGB).convert("L"),
        Image.fromarray(RGB).convert("RGBA"),
        Image.fromarray(RGB).convert("P"),
        Image.fromarray(RGB).convert("LA"),
        Image.fromarray(RGB[:, :, 0].astype(np.uint16) * 257),
        Image.fromarray(RGB).convert("1"),
    ],
    ids=["rgb", "grey", "rgba", "palette", "grey_alpha", "16bit", "bilevel"],
)
def test_every_mode_becomes_uint8_rgb(image):
    out = vision.load_image(_encoded(image), 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8


def test_16_bit_keeps_its_range():
    out = vision.decode_image(_encoded(Image.fromarray(np.full((4, 4), 65535, np.uint16))))
    assert out.min() == 255


def test_resize_keeps_aspect_and_centre_crops():
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, 18:22] = 255  # a bright band in the middle
    out = vision.resize_and_crop(wide, 10)
    assert out.shape == (10, 10, 3) and out[:, 3:7].min() > 200 and out[:, 0].max() < 50


def test_jpeg_file_on_disk(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray(RGB).save(path)
    assert vision.load_image(path, 16).shape == (16, 16, 3)


def test_truncated_and_garbage_images_raise(tmp_path):
    data = _encoded(Image.fromarray(RGB))
    with pytest.raises(ValueError, match="cannot decode"):
        vision.decode_image(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot decode"):
        vision.decode_image(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not found"):
        vision.decode_image(tmp_path / "missing.png")


def test_array_conversion_policy():
    assert vision.to_rgb(np.ones((2, 2), np.float32)).max() == 255
    assert vision.to_rgb(np.full((2, 2, 1), 300, np.int32)).max() == 255
    assert vision.to_rgb(np.ones((2, 2), bool)).max() == 255
    with pytest.raises(ValueError):
        vision.to_rgb(np.full((2, 2), np.nan))
    with pytest.raises(ValueError):
        vision.to_rgb(np.zeros((2, 2, 5)))


def test_normalize_maps_to_unit_interval():
    out = vision.normalize(np.array([0, 255], np.uint8))
    assert out.dtype == np.float32 and np.allclose(out, [-1.0, 1.0])
