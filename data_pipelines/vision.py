"""Images to uint8 [S, S, 3]: decode anything PIL reads, convert to RGB, resize the shorter side, centre crop.

Images are stored as uint8 (4x smaller than float); `normalize` maps them to [-1, 1] for float use, as the
model does on device.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageFile

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Decompression bombs are refused by PIL; this keeps the limit explicit for very large photos.
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000


def to_rgb(array: Any) -> np.ndarray:
    """Any image array -> uint8 [H, W, 3].

    Accepts [H, W] or [H, W, C] with C in 1-4 (grey, grey+alpha, RGB, RGBA; alpha is dropped).
    dtypes: uint8 as is; uint16 scaled by 1/257; other integers clipped to [0, 255]; bool as 0/255;
    floats taken as intensities in [0, 1] and clipped. ValueError for anything else or non-finite values.
    """
    image = np.asarray(array)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"image must be [H, W] or [H, W, 1-4 channels], got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    if image.shape[2] in (2, 4):
        image = image[:, :, :-1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return _to_uint8(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if image.dtype == np.uint16:
        return (image.astype(np.uint32) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        values = image.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("image holds NaN or Inf values")
        return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def decode_image(source: str | os.PathLike | bytes) -> np.ndarray:
    """A file path or encoded bytes (png, jpg, ...) -> uint8 [H, W, 3].

    Handles grey, palette, alpha, 16-bit and 32-bit modes. ValueError if unreadable or truncated.
    """
    if isinstance(source, bytes):
        name, stream = "<bytes>", io.BytesIO(source)
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise ValueError(f"image file not found: {name}")
        with open(name, "rb") as f:
            stream = io.BytesIO(f.read())
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image
    try:
        with Image.open(stream) as image:
            image.load()
            return _pil_to_rgb(image)
    except Image.UnidentifiedImageError as err:
        # Pillow's message names the in-memory stream by its address: a different report every build.
        raise ValueError(f"cannot decode image {name}: not a format Pillow can identify") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot decode image {name}: {err}") from err


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # High bit depth: PIL's convert("RGB") would clip at 255, so scale by the type's range.
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I") and values.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = max(float(np.nanmax(values, initial=1.0)), 1.0)
        return to_rgb(np.nan_to_num(values / top))
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return to_rgb(np.asarray(image.convert("RGB")))


def resize_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]: shorter side to `size` (bicubic), then the centre square."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    image = to_rgb(image)
    height, width = image.shape[:2]
    scale = size / min(height, width)
    new_h = max(size, int(round(height * scale)))
    new_w = max(size, int(round(width * scale)))
    if (new_h, new_w) != (height, width):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def load_image(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """A file path or encoded bytes -> uint8 [size, size, 3]."""
    return resize_and_crop(decode_image(source), size)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images [..., 3] -> float32 in [-1, 1] (x / 127.5 - 1), the model's own mapping."""
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0
