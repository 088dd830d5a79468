"""Ground truth beside CLIP: what a picture shows, read with the world's own masks, templates and colours.

Any image can be read, including one the world did not draw: it is resized to the world's side, each cell's
mean colour is snapped to the nearest world colour (what the VQ tokenizer does), the background is the most
common colour on the border, and the shape is the rest.

* content: the shape whose template (any size, any place) overlaps the foreground best (intersection over union);
  an image shows shape S when S is that best template and the overlap is at least MIN_IOU;
* style: the factors read back (background, outline, fill colours, texture) and a match score in [0, 1] against
  one or more reference images: the mean of background equal, outline equal, fill-colour histogram
  intersection, and texture equal.

Numpy only (no torch), so the web app and the benchmarks can score any image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import scene as world

MIN_IOU = 0.5
TEMPLATE_SIZES = tuple(range(6, world.GRID + 1))
TWO_COLOUR_TEXTURES = tuple(t for t in world.TEXTURES if t != "solid")
SOLID_BELOW = 0.12  # a fill whose second colour covers less than this is solid
OUTLINE_COLOURS = tuple(world.COLOUR_ID[c] for c in sorted(set(world.OUTLINE_ON.values())))


def cells_of(image: Image.Image) -> np.ndarray:
    """(GRID, GRID) world colour ids: each cell's mean colour snapped to the nearest world colour."""
    image = image.convert("RGB")
    if image.size != (world.SIDE, world.SIDE):
        image = image.resize((world.SIDE, world.SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float64).reshape(world.GRID, world.CELL, world.GRID, world.CELL, 3)
    means = pixels.mean(axis=(1, 3))
    distances = ((means[:, :, None, :] - world.RGB[None, None].astype(np.float64)) ** 2).sum(-1)
    return distances.argmin(-1)


def background_of(cells: np.ndarray) -> int:
    border = np.concatenate([cells[0], cells[-1], cells[1:-1, 0], cells[1:-1, -1]])
    return int(np.bincount(border, minlength=world.NUM_COLOURS).argmax())


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Every shape at every size and place: (T, GRID*GRID) float masks, and each template's shape index."""
    masks, owners = [], []
    for index, shape in enumerate(world.SHAPES):
        for size in TEMPLATE_SIZES:
            for top in range(world.GRID - size + 1):
                for left in range(world.GRID - size + 1):
                    masks.append(world.full_mask(shape, size, top, left).ravel())
                    owners.append(index)
    return np.array(masks, dtype=np.float32), np.array(owners)


@dataclass(frozen=True)
class ContentReading:
    shape: str | None  # the best template's shape, None when nothing overlaps it enough
    iou: float  # its overlap with the foreground
    scores: dict[str, float]  # best overlap per shape

    def shows(self, shape: str) -> bool:
        return self.shape == shape


def read_content(image: Image.Image | np.ndarray) -> ContentReading:
    cells = image if isinstance(image, np.ndarray) else cells_of(image)
    return read_contents([cells])[0]


def read_contents(images: list[Image.Image] | list[np.ndarray]) -> list[ContentReading]:
    """Content readings of many images at once (one matrix product against every template)."""
    if not images:
        return []
    cells = np.stack([img if isinstance(img, np.ndarray) else cells_of(img) for img in images])
    masks = np.stack([c != background_of(c) for c in cells]).reshape(len(cells), -1).astype(np.float32)
    templates, owners = _templates()
    inter = masks @ templates.T
    union = masks.sum(1, keepdims=True) + templates.sum(1)[None] - inter
    iou = inter / np.maximum(union, 1)
    readings = []
    for row in iou:
        per_shape = {shape: float(row[owners == i].max()) for i, shape in enumerate(world.SHAPES)}
        best = max(per_shape, key=per_shape.get)
        ok = per_shape[best] >= MIN_IOU
        readings.append(ContentReading(best if ok else None, per_shape[best], per_shape))
    return readings


def content_accuracy(images: list[Image.Image], contents: list[str]) -> float:
    """The share of images that show the shape their content names ("a heart")."""
    if not images:
        return float("nan")
    readings = read_contents(images)
    return float(np.mean([r.shows(world.shape_of(c) or "") for r, c in zip(readings, contents)]))


# ---- style ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleReading:
    background: int
    outline: int | None  # the outline colour, None when not outlined
    fill: np.ndarray  # (K,) share of each colour among the fill cells
    texture: str | None  # None when there is no foreground to read

    def factors(self) -> dict:
        colours = [world.COLOUR_NAMES[i] for i in np.argsort(-self.fill)[:2] if self.fill[i] > 0]
        return {"background": world.COLOUR_NAMES[self.background],
                "outline": world.COLOUR_NAMES[self.outline] if self.outline is not None else None,
                "fill": colours, "texture": self.texture}


def _texture(cells: np.ndarray, fill: np.ndarray) -> str | None:
    if not fill.any():
        return None
    colours = np.bincount(cells[fill], minlength=world.NUM_COLOURS)
    order = np.argsort(-colours)
    if colours[order[1]] < SOLID_BELOW * colours.sum():
        return "solid"
    first, second = order[0], order[1]
    rows, cols = np.indices(cells.shape)
    ys, xs = np.nonzero(fill)
    top, size = ys.min(), ys.max() - ys.min() + 1
    in_two = fill & ((cells == first) | (cells == second))
    best, best_score = "solid", -1.0
    for texture in TWO_COLOUR_TEXTURES:
        pattern = world.texture_pattern(texture, rows, cols, int(top), int(size))[in_two]
        is_second = (cells == second)[in_two]
        score = max((pattern == is_second).mean(), (pattern != is_second).mean())
        if score > best_score:
            best, best_score = texture, score
    return best


def read_style(image: Image.Image | np.ndarray) -> StyleReading:
    cells = image if isinstance(image, np.ndarray) else cells_of(image)
    background = background_of(cells)
    mask = cells != background
    edge = world.outline_cells(mask)
    outline = None
    if edge.sum() >= 4:
        colours = np.bincount(cells[edge], minlength=world.NUM_COLOURS)
        top = int(colours.argmax())
        inner = mask & ~edge
        inner_share = (cells[inner] == top).mean() if inner.any() else 0.0
        if top in OUTLINE_COLOURS and colours[top] >= 0.6 * edge.sum() and inner_share < 0.3:
            outline = top
    fill = mask & ~edge if outline is not None else mask
    if outline is not None and not fill.any():
        fill = mask
    counts = np.bincount(cells[fill], minlength=world.NUM_COLOURS).astype(np.float64)
    share = counts / counts.sum() if counts.sum() else counts
    return StyleReading(background, outline, share, _texture(cells, fill))


def style_similarity(a: StyleReading, b: StyleReading) -> float:
    """Mean of: same background, same outline, fill-colour histogram intersection, same texture."""
    return float(np.mean([a.background == b.background, a.outline == b.outline,
                          np.minimum(a.fill, b.fill).sum(), a.texture == b.texture]))


def style_match(image: Image.Image | np.ndarray, references: list[Image.Image] | Image.Image) -> float:
    """How well an image's style matches the reference(s): the mean similarity over the references, in [0, 1]."""
    refs = references if isinstance(references, list) else [references]
    reading = read_style(image)
    return float(np.mean([style_similarity(reading, read_style(r)) for r in refs]))


def style_matches(images: list[Image.Image], references: list[Image.Image] | Image.Image) -> list[float]:
    refs = references if isinstance(references, list) else [references]
    ref_readings = [read_style(r) for r in refs]
    return [float(np.mean([style_similarity(read_style(img), r) for r in ref_readings])) for img in images]


def style_of(image: Image.Image | np.ndarray) -> world.Style | None:
    """The world style an image reads as, when its colours name one (a reference file's descriptor)."""
    reading = read_style(image)
    names = [world.COLOUR_NAMES[i] for i in np.argsort(-reading.fill)[:2] if reading.fill[i] > 0]
    background = world.COLOUR_NAMES[reading.background]
    if background not in world.BACKGROUNDS or not names or reading.texture is None:
        return None
    for palette, (primary, secondary) in world.PALETTES.items():
        wanted = {primary} if reading.texture == "solid" else {primary, secondary}
        if set(names[:len(wanted)]) == wanted or (reading.texture == "solid" and names[0] == primary):
            return world.Style(palette, reading.texture, reading.outline is not None, background)
    return None
