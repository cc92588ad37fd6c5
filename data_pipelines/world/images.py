"""Images of the bundled world: 1-3 textured objects of one concept over clutter and distractors.

Everything is drawn with soft masks on one coordinate grid, so one image costs a few dozen numpy
operations on H x W arrays. Objects take a random position, rotation and a jittered scale; the object
radius follows the instance size, the fill follows the instance colour, and the fine variant adds a
visible sub-style (outline, centre mark, inverted texture).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from data_pipelines.world.concepts import COLOURS, SHAPES, Instance, variant_styles

# Object radius as a fraction of the image side, for size_value 0 and 1.
RADIUS_RANGE = (0.10, 0.26)


def _shape_level(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A level function of the unit shape in local coordinates: <= 1 inside, growing outside."""
    if shape == "circle":
        return np.sqrt(u * u + v * v)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) / 0.82
    if shape == "triangle":
        # Equilateral triangle pointing up (v grows downwards): max of the three edge distances.
        return np.maximum.reduce([-v * 2.0, (v + np.sqrt(3.0) * u), (v - np.sqrt(3.0) * u)])
    if shape == "diamond":
        return np.abs(u) + np.abs(v)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au / 0.32, av), np.maximum(av / 0.32, au))
    if shape == "ring":
        r = np.sqrt(u * u + v * v)
        return np.maximum(r, 0.55 / np.maximum(r, 1e-3))
    if shape == "star":
        r = np.sqrt(u * u + v * v)
        theta = np.arctan2(v, u)
        return r / (0.62 + 0.38 * np.cos(5.0 * theta))
    if shape == "ellipse":
        return np.sqrt(u * u + (v / 0.5) ** 2)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u_px: np.ndarray, v_px: np.ndarray, period: float) -> np.ndarray:
    """A 0/1 pattern in object pixel coordinates (it rotates with the object)."""
    w = 2.0 * np.pi / period
    if texture == "solid":
        return np.zeros_like(u_px)
    if texture == "stripes":
        return (np.sin(w * u_px) > 0).astype(np.float32)
    if texture == "checker":
        return (np.sin(w * u_px) * np.sin(w * v_px) > 0).astype(np.float32)
    if texture == "dots":
        du = np.mod(u_px, period) - period / 2
        dv = np.mod(v_px, period) - period / 2
        return (du * du + dv * dv < (period / 3.2) ** 2).astype(np.float32)
    if texture == "rings":
        return (np.sin(w * np.sqrt(u_px * u_px + v_px * v_px)) > 0).astype(np.float32)
    if texture == "split":
        return (v_px > 0).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _alpha(level: np.ndarray, radius: float) -> np.ndarray:
    """Soft coverage of {level <= 1}: about one pixel of anti-aliasing at the border."""
    return np.clip(0.5 + (1.0 - level) * radius, 0.0, 1.0)


def _positions(rng: np.random.Generator, count: int, radius: float, size: int) -> np.ndarray:
    """Object centres [count, 2] (x, y), the most spread of a few random draws, inside the image."""
    lo, hi = 0.55 * radius, size - 0.55 * radius
    cand = rng.uniform(lo, hi, size=(8, count, 2))
    if count == 1:
        return cand[0]
    gaps = np.linalg.norm(cand[:, :, None] - cand[:, None], axis=-1) + np.eye(count) * 1e9
    return cand[int(np.argmax(gaps.min(axis=(1, 2))))]


@functools.cache
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), float32 [n, n] each."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + np.float32(0.5)
    return yy, xx


def render_image(rng: np.random.Generator, instance: Instance, image_size: int) -> np.ndarray:
    """One image of `instance`: uint8 [image_size, image_size, 3]."""
    n = image_size
    yy, xx = _grid(n)
    # Background, clutter and distractors are grey levels (one channel: cheap), tinted at the end.
    direction = rng.normal(size=2)
    direction = (direction / (n * np.linalg.norm(direction))).astype(np.float32)
    grey = np.float32(rng.uniform(0.05, 0.2)) * (xx * direction[0] + yy * direction[1])
    # Clutter: faint blobs and thin lines.
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = (float(v) for v in rng.uniform(0, n, size=2))
        tone = rng.uniform(-0.12, 0.12)
        if rng.random() < 0.5:
            r = rng.uniform(0.05, 0.15) * n
            a = _alpha(np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r, r)
        else:
            t = rng.uniform(0, np.pi)
            a = np.clip(1.0 - np.abs((xx - cx) * math.sin(t) - (yy - cy) * math.cos(t)), 0.0, 1.0)
        grey += a * tone
    # Distractors: small grey shapes of any family.
    for _ in range(int(rng.integers(0, 3))):
        r = rng.uniform(0.05, 0.08) * n
        cx, cy = (float(v) for v in rng.uniform(r, n - r, size=2))
        t = rng.uniform(0, 2 * np.pi)
        u = ((xx - cx) * math.cos(t) + (yy - cy) * math.sin(t)) / r
        v = (-(xx - cx) * math.sin(t) + (yy - cy) * math.cos(t)) / r
        a = _alpha(_shape_level(SHAPES[int(rng.integers(len(SHAPES)))], u, v), r)
        grey += a * (rng.uniform(-0.45, 0.45) - grey)
    base = (rng.uniform(0.3, 0.75) + rng.uniform(-0.06, 0.06, size=3)).astype(np.float32)
    img = base + grey[..., None]
    # The objects.
    concept = instance.concept
    styles = variant_styles(instance.variant)
    lo, hi = RADIUS_RANGE
    radius = (lo + (hi - lo) * instance.size_value) * n
    colour = np.asarray(COLOURS[instance.colour][1], np.float32) / np.float32(255.0)
    period = (0.32 if "outlined" in styles else 0.2) * n * 0.25 + 1.5
    for cx, cy in _positions(rng, instance.count, radius, n).tolist():
        r = radius * rng.uniform(0.92, 1.08)
        t = rng.uniform(0, 2 * np.pi)
        dx, dy = xx - cx, yy - cy
        u_px = dx * math.cos(t) + dy * math.sin(t)
        v_px = -dx * math.sin(t) + dy * math.cos(t)
        level = _shape_level(concept.shape, u_px / r, v_px / r)
        pattern = _texture(concept.texture, u_px, v_px, period)
        if "inverted" in styles and concept.texture != "solid":
            pattern = 1.0 - pattern
        shade = colour * 0.45 if concept.palette == "dark" else colour * 0.6 + 0.4
        fill = colour * rng.uniform(0.9, 1.05)
        obj = fill + pattern[..., None] * (shade - fill)
        if "outlined" in styles:
            border = np.clip((level - (1.0 - 1.6 / r)) * r, 0.0, 1.0)[..., None]
            obj = obj * (1 - border) + border * colour * 0.25
        if "marked" in styles:
            mark = _alpha(np.sqrt(u_px**2 + v_px**2) / max(1.2, 0.22 * r), max(1.2, 0.22 * r))
            obj = obj * (1 - mark[..., None]) + mark[..., None]
        a = _alpha(level, r)[..., None]
        img = img * (1 - a) + a * obj
    noise = rng.random(img.shape, dtype=np.float32) - np.float32(0.5)
    img = img * np.float32(255.0 * rng.uniform(0.85, 1.1)) + np.float32(14.0) * noise
    return (np.clip(img, 0.0, 255.0) + np.float32(0.5)).astype(np.uint8)
