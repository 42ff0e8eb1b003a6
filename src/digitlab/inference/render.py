"""Digits rendered as phone photos, seeded: test and benchmark inputs for preprocessing.

A 28x28 digit (white ink on black, as MNIST stores it) is enlarged, rotated a little and laid
as ink on paper (`render`); any ink layer can be laid the same way (`photograph`): a paper
colour and texture, uneven light, optionally a hard shadow edge, a dark corner, ruled or
squared lines, then sensor noise and JPEG. The same seed gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Scene:
    """What one rendered photo holds; `random_scene` draws one from a seed."""

    size: tuple[int, int] = (640, 480)  # width, height in pixels
    digit_height: int = 200  # pixels
    centre: tuple[float, float] = (0.5, 0.5)  # of the digit, as fractions of width, height
    angle: float = 0.0  # degrees, counter-clockwise
    stroke_level: float = 0.5  # ink where the enlarged digit exceeds this: lower is bolder
    paper: float = 225.0  # brightness of the lit paper
    gradient: float = 40.0  # brightness lost across the sheet
    shadow: float = 0.0  # fraction of light lost in the shadow (0: no shadow edge)
    dark_corner: float = 0.0  # fraction of light lost in one corner (0: none)
    lines: str = "none"  # "none", "ruled" or "squared"
    line_gap: int = 60  # pixels between lines
    ink: float = 0.85  # fraction of light the ink absorbs
    noise: float = 4.0  # sensor noise, standard deviation in grey levels
    quality: int = 85  # JPEG quality


def random_scene(rng: np.random.Generator) -> Scene:
    width = int(rng.choice([320, 640, 1280]))
    size = (width, width * 3 // 4)
    digit_height = int(size[1] * rng.uniform(0.25, 0.7))
    return Scene(
        size=size, digit_height=digit_height,
        centre=(rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)),
        angle=rng.uniform(-8, 8), stroke_level=rng.uniform(0.2, 0.65),
        paper=rng.uniform(190, 245), gradient=rng.uniform(0, 80),
        shadow=rng.uniform(0.25, 0.5) if rng.random() < 0.4 else 0.0,
        dark_corner=rng.uniform(0.4, 0.8) if rng.random() < 0.3 else 0.0,
        lines=str(rng.choice(["none", "ruled", "squared"], p=[0.4, 0.4, 0.2])),
        line_gap=int(digit_height * rng.uniform(0.5, 1.2)), ink=rng.uniform(0.6, 0.9),
        noise=rng.uniform(2, 8), quality=int(rng.integers(60, 95)))


def ink_layer(digit: np.ndarray, scene: Scene) -> np.ndarray:
    """float [H, W] in [0, 1]: how much ink covers each pixel of the photo. The digit is
    enlarged smoothly and cut at `stroke_level`, so strokes have a pen's sharp edges."""
    side = max(8, int(scene.digit_height * 28 / 20))  # the 28x28 frame around a 20-pixel digit
    big = Image.fromarray(digit.astype(np.float32) / 255.0, "F").resize(
        (side, side), Image.Resampling.BICUBIC).rotate(scene.angle, Image.Resampling.BILINEAR,
                                                      expand=True)
    edge = 0.1 * max(1.0, 28 / side * 4)  # about a pixel of anti-aliasing at this size
    coverage = np.clip((np.asarray(big) - scene.stroke_level) / edge + 0.5, 0.0, 1.0)
    layer = np.zeros(scene.size[::-1], dtype=np.float32)
    x = int(scene.centre[0] * scene.size[0] - big.width / 2)
    y = int(scene.centre[1] * scene.size[1] - big.height / 2)
    top, left = max(y, 0), max(x, 0)
    bottom = min(y + big.height, layer.shape[0])
    right = min(x + big.width, layer.shape[1])
    layer[top:bottom, left:right] = coverage[top - y: bottom - y, left - x: right - x]
    return layer


def light(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """float [H, W]: the paper's brightness under the scene's light, in grey levels."""
    width, height = scene.size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx / width + np.sin(direction) * yy / height + 1) / 2
    brightness = scene.paper - scene.gradient * ramp
    if scene.shadow:  # a hard edge through the sheet, at a random angle
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.3, 0.3)
        side = np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)
        brightness = brightness * np.where(side > offset, 1 - scene.shadow, 1.0)
    if scene.dark_corner:
        cx, cy = rng.choice([0, width]), rng.choice([0, height])
        distance = np.hypot(xx - cx, yy - cy) / (0.35 * np.hypot(width, height))
        brightness = brightness * (1 - scene.dark_corner * np.clip(1 - distance, 0, 1) ** 2)
    texture = rng.normal(0, 3, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture, "F").resize(scene.size,
                                                              Image.Resampling.BICUBIC))
    return brightness + texture


def draw_lines(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """float [H, W] in [0, 1]: the printed lines of ruled or squared paper."""
    layer = Image.new("L", scene.size, 0)
    if scene.lines == "none":
        return np.zeros(scene.size[::-1], dtype=np.float32)
    draw = ImageDraw.Draw(layer)
    width, height = scene.size
    strength = int(rng.uniform(90, 200))
    thickness = int(rng.integers(1, 4))
    start = rng.uniform(0, scene.line_gap)
    for y in np.arange(start, height, scene.line_gap):
        draw.line([(0, y), (width, y)], fill=strength, width=thickness)
    if scene.lines == "squared":
        for x in np.arange(start, width, scene.line_gap):
            draw.line([(x, 0), (x, height)], fill=strength, width=thickness)
    layer = layer.rotate(rng.uniform(-3, 3), Image.Resampling.BILINEAR)
    return np.asarray(layer, dtype=np.float32) / 255.0


def photograph(coverage: np.ndarray, scene: Scene, seed: int) -> bytes:
    """JPEG bytes of ink `coverage` (float [H, W] in [0, 1], the scene's size) on the scene's
    paper, under its light, with its lines, noise and compression."""
    rng = np.random.default_rng(seed)
    paper = light(scene, rng)
    lines = draw_lines(scene, rng)
    tint = np.array([1.0, 0.98, 0.93], dtype=np.float32)  # warm light on white paper
    line_colour = np.array([0.45, 0.6, 0.9], dtype=np.float32)  # blue-grey print
    ink_colour = np.array([0.15, 0.15, 0.35], dtype=np.float32)  # dark blue ballpoint
    rgb = paper[..., None] * tint
    rgb = rgb * (1 - lines[..., None] * (1 - line_colour))
    rgb = rgb * (1 - coverage[..., None] * scene.ink * (1 - ink_colour))
    rgb = rgb + rng.normal(0, scene.noise, rgb.shape).astype(np.float32)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=scene.quality)
    return buffer.getvalue()


def render(digit: np.ndarray, scene: Scene, seed: int) -> bytes:
    """JPEG bytes of `digit` (uint8 [28, 28], white on black) photographed as `scene`."""
    return photograph(ink_layer(digit, scene), scene, seed)
