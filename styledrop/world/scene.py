"""The world's pictures: shapes (content) drawn in styles (palette × fill texture × outline × background).

A picture is a GRID × GRID array of colour ids (cells), shown CELL × CELL pixels per cell. Every colour id is
one code of the world's VQ tokenizer (styledrop.world.tokenizer), so a picture's cells are its tokens and a
world image round-trips through encode and decode exactly. Textures have a period of two cells and are
anchored to the canvas, so each 2×2 block of cells (one position of the transformer's downsampled grid) shows
one whole period.

Numpy only: the oracles (styledrop.world.oracle) and the web app may import this without torch.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

GRID = 16  # cells per side (the token grid)
CELL = 4  # pixels per cell (the VQ tokenizer's patch)
SIDE = GRID * CELL  # image side in pixels

# ---- colours: the codebook ------------------------------------------------------------------------------------

COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (244, 242, 236),
    "black": (18, 18, 22),
    "navy": (22, 34, 92),
    "red": (214, 38, 46),
    "orange": (246, 134, 30),
    "yellow": (250, 222, 40),
    "gold": (186, 150, 46),
    "brown": (120, 72, 36),
    "green": (30, 140, 60),
    "lime": (160, 220, 60),
    "teal": (20, 150, 150),
    "cyan": (110, 220, 240),
    "blue": (40, 96, 226),
    "purple": (130, 60, 180),
    "pink": (246, 140, 190),
}
COLOUR_NAMES = tuple(COLOURS)
COLOUR_ID = {name: i for i, name in enumerate(COLOUR_NAMES)}
RGB = np.array([COLOURS[n] for n in COLOUR_NAMES], dtype=np.uint8)  # (K, 3)
NUM_COLOURS = len(COLOUR_NAMES)

# ---- style factors --------------------------------------------------------------------------------------------

PALETTES: dict[str, tuple[str, str]] = {  # fill colours (primary, secondary)
    "fire": ("red", "orange"),
    "ocean": ("blue", "cyan"),
    "forest": ("green", "lime"),
    "candy": ("pink", "purple"),
    "sunny": ("yellow", "orange"),
    "earth": ("brown", "gold"),
    "dusk": ("purple", "orange"),  # never in the base model's pretraining
    "mint": ("teal", "pink"),  # never in the base model's pretraining
}
TEXTURES = ("solid", "striped", "dotted", "checkered", "two-tone", "diagonal")
BACKGROUNDS = ("white", "black", "navy")
OUTLINE_ON = {"white": "black", "black": "white", "navy": "white"}  # the outline contrasts with the background

UNSEEN_PALETTES = ("dusk", "mint")
UNSEEN_TEXTURES = ("diagonal",)

# ---- content --------------------------------------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "heart", "ring", "arrow", "moon", "house",
          "tree")
# The three content sets never meet: a style's reference shows a REFERENCE shape; round 1's candidate pools draw
# CANDIDATE shapes (so feedback picks those); evaluation prompts are EVAL shapes, which no round trains on or
# draws candidates for. The base model knows all twelve.
REFERENCE_SHAPES = ("house", "tree")
CANDIDATE_SHAPES = ("circle", "square", "triangle", "diamond", "cross")
EVAL_SHAPES = ("star", "heart", "ring", "arrow", "moon")
# What a round's live samples draw while it trains (not trained on): a candidate shape, which round 2 may train on,
# and an evaluation shape, where leakage of the reference's shape shows first.
SAMPLE_SHAPES = ("circle", "star")

SIZES = tuple(range(10, 14))  # a shape's box side in cells
MARGIN = 1  # empty cells kept between a shape's box and the canvas edge
JITTER = 1  # a shape's box sits within this many cells of the centred place, each way


def content_of(shape: str) -> str:
    """The content phrase of a shape: "a circle", "an arrow"."""
    return f"{'an' if shape[0] in 'aeiou' else 'a'} {shape}"


def shape_of(content: str) -> str | None:
    """The shape a content phrase names ("A heart", "a big heart" -> "heart"), or None."""
    words = re.findall(r"[a-z-]+", content.lower())
    for word in reversed(words):
        if word in SHAPES:
            return word
        if word.endswith("s") and word[:-1] in SHAPES:
            return word[:-1]
    return None


@dataclass(frozen=True)
class Style:
    palette: str
    texture: str
    outline: bool
    background: str

    def __post_init__(self) -> None:
        if self.palette not in PALETTES or self.texture not in TEXTURES or self.background not in BACKGROUNDS:
            raise ValueError(f"not a world style: {self}")

    @property
    def descriptor(self) -> str:
        """Short words for the style: "fire striped outlined on navy"."""
        return f"{self.palette} {self.texture}{' outlined' if self.outline else ''} on {self.background}"

    @property
    def unseen(self) -> bool:
        """Made of a palette or texture that the base model never saw."""
        return self.palette in UNSEEN_PALETTES or self.texture in UNSEEN_TEXTURES

    @property
    def fill(self) -> tuple[int, int]:
        primary, secondary = PALETTES[self.palette]
        return COLOUR_ID[primary], COLOUR_ID[secondary]

    @property
    def outline_colour(self) -> int:
        return COLOUR_ID[OUTLINE_ON[self.background]]

    @property
    def background_colour(self) -> int:
        return COLOUR_ID[self.background]

    @classmethod
    def parse(cls, descriptor: str) -> "Style":
        """The style a descriptor names ("dusk striped outlined on black"); ValueError if it names none."""
        words = descriptor.lower().replace(" style", "").split()
        if len(words) < 4 or words[-2] != "on":
            raise ValueError(f"'{descriptor}' is not a world style: PALETTE TEXTURE [outlined] on BACKGROUND")
        outline = words[2] == "outlined"
        if len(words) != (5 if outline else 4):
            raise ValueError(f"'{descriptor}' is not a world style: PALETTE TEXTURE [outlined] on BACKGROUND")
        try:
            return cls(words[0], words[1], outline, words[-1])
        except ValueError:
            raise ValueError(f"'{descriptor}' is not a world style: palettes {', '.join(PALETTES)}; textures "
                             f"{', '.join(TEXTURES)}; backgrounds {', '.join(BACKGROUNDS)}") from None


def all_styles() -> list[Style]:
    return [Style(p, t, o, b) for p in PALETTES for t in TEXTURES for o in (False, True) for b in BACKGROUNDS]


# Held-out styles: EVAL_STYLES are what the experiment (bench/table2.py) reports on, DEV_STYLES are the ones its
# settings were chosen on; neither is ever in the base model's pretraining, nor is any style with an unseen
# palette or texture. Each list mixes the three kinds: an unseen palette, an unseen texture, and a new
# combination of seen words.
EVAL_STYLES = tuple(Style.parse(d) for d in (
    "dusk striped on black",
    "ocean diagonal outlined on white",
    "candy checkered on navy",
    "mint dotted outlined on white",
    "forest two-tone outlined on black",
    "fire diagonal on navy",
    "earth striped on white",
    "dusk checkered outlined on navy",
    "sunny dotted outlined on navy",
    "mint two-tone on black",
    "forest diagonal on white",
    "ocean solid outlined on black",
))
DEV_STYLES = tuple(Style.parse(d) for d in (
    "mint striped on navy",
    "candy diagonal on black",
    "fire checkered outlined on white",
    "dusk solid outlined on white",
    "earth two-tone on navy",
    "sunny striped outlined on black",
))


def pretraining_styles() -> list[Style]:
    """The styles the base model learns: seen palettes and textures, minus the held-out combinations."""
    held = set(EVAL_STYLES) | set(DEV_STYLES)
    return [s for s in all_styles() if not s.unseen and s not in held]


# ---- shapes as masks ------------------------------------------------------------------------------------------

def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    xs, ys = radii * np.cos(angles), radii * np.sin(angles) + 0.1
    return _in_polygon(u, v, xs, ys)


def _in_polygon(u: np.ndarray, v: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    inside = np.zeros(u.shape, dtype=bool)
    j = len(xs) - 1
    for i in range(len(xs)):
        crosses = ((ys[i] > v) != (ys[j] > v)) & (u < (xs[j] - xs[i]) * (v - ys[i]) / (ys[j] - ys[i] + 1e-12) + xs[i])
        inside ^= crosses
        j = i
    return inside


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = u * 1.25, -(v * 1.25) + 0.25
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0


SHAPE_FUNCTIONS = {
    "circle": lambda u, v: u * u + v * v <= 0.95 ** 2,
    "square": lambda u, v: np.maximum(abs(u), abs(v)) <= 0.82,
    "triangle": lambda u, v: (v <= 0.85) & (abs(u) <= (v + 0.95) * 0.55),
    "diamond": lambda u, v: abs(u) + abs(v) <= 1.0,
    "cross": lambda u, v: ((abs(u) <= 0.3) & (abs(v) <= 0.95)) | ((abs(v) <= 0.3) & (abs(u) <= 0.95)),
    "star": _star,
    "heart": _heart,
    "ring": lambda u, v: (u * u + v * v <= 0.97 ** 2) & (u * u + v * v >= 0.5 ** 2),
    "arrow": lambda u, v: ((abs(v) <= 0.28) & (u >= -0.95) & (u <= 0.05)) | ((u >= 0.05) & (abs(v) <= (0.95 - u) * 1.05)),
    "moon": lambda u, v: (u * u + v * v <= 0.95 ** 2) & ((u - 0.5) ** 2 + (v + 0.25) ** 2 >= 0.72 ** 2),
    "house": lambda u, v: ((v >= -0.05) & (v <= 0.92) & (abs(u) <= 0.68))
    | ((v < -0.05) & (v >= -0.95) & (abs(u) <= (v + 0.95) * 1.05)),
    "tree": lambda u, v: ((v >= -0.95) & (v <= 0.45) & (abs(u) <= (v + 0.95) * 0.62)) | ((abs(u) <= 0.2) & (v > 0.45) & (v <= 0.95)),
}


@functools.lru_cache(maxsize=None)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """A (size, size) boolean mask: cells at least half covered by the shape (4×4 samples per cell)."""
    sub = 4
    centres = (np.arange(size * sub) + 0.5) / (size * sub) * 2 - 1
    v, u = np.meshgrid(centres, centres, indexing="ij")
    covered = SHAPE_FUNCTIONS[shape](u, v).reshape(size, sub, size, sub).mean(axis=(1, 3))
    mask = covered >= 0.5
    mask.setflags(write=False)
    return mask


def placements(size: int, grid: int = GRID) -> list[tuple[int, int]]:
    """Every (top, left) of a box of `size` cells within JITTER cells of the centre, inside the margin."""
    centred = (grid - size) // 2
    spots = range(max(MARGIN, centred - JITTER), min(grid - MARGIN - size, centred + JITTER) + 1)
    return [(r, c) for r in spots for c in spots]


# ---- pictures -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    """One picture: which shape, where, how big, in which style."""

    shape: str
    style: Style
    size: int = 11
    top: int = 2
    left: int = 2

    @property
    def content(self) -> str:
        return content_of(self.shape)


def _caption(content: str, descriptor: str | None) -> str:
    phrase = content[0].upper() + content[1:]
    return phrase if descriptor is None else f"{phrase} in {descriptor} style"


def caption(scene: Scene, with_style: bool = True) -> str:
    """The caption of a scene, as StyleDrop writes prompts: "A circle in fire striped on navy style"."""
    return _caption(scene.content, scene.style.descriptor if with_style else None)


def texture_pattern(texture: str, rows: np.ndarray, cols: np.ndarray, top: int, size: int) -> np.ndarray:
    """True where a fill cell takes the secondary colour."""
    if texture == "solid":
        return np.zeros(rows.shape, dtype=bool)
    if texture == "striped":
        return rows % 2 == 1
    if texture == "dotted":
        return (rows % 2 == 1) & (cols % 2 == 1)
    if texture == "checkered":
        return (rows + cols) % 2 == 1
    if texture == "two-tone":
        return rows >= top + size // 2
    if texture == "diagonal":
        return (rows + cols) % 4 >= 2
    raise ValueError(f"unknown texture {texture}")


def outline_cells(mask: np.ndarray) -> np.ndarray:
    """Cells of the mask with a 4-neighbour outside it."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def full_mask(shape: str, size: int, top: int, left: int, grid: int = GRID) -> np.ndarray:
    mask = np.zeros((grid, grid), dtype=bool)
    mask[top:top + size, left:left + size] = shape_mask(shape, size)
    return mask


def render_cells(scene: Scene, grid: int = GRID) -> np.ndarray:
    """The scene's (grid, grid) colour ids (its VQ tokens)."""
    style = scene.style
    cells = np.full((grid, grid), style.background_colour, dtype=np.int64)
    mask = full_mask(scene.shape, scene.size, scene.top, scene.left, grid)
    rows, cols = np.indices((grid, grid))
    primary, secondary = style.fill
    secondary_cells = texture_pattern(style.texture, rows, cols, scene.top, scene.size)
    cells[mask] = np.where(secondary_cells, secondary, primary)[mask]
    if style.outline:
        cells[outline_cells(mask)] = style.outline_colour
    return cells


def cells_to_image(cells: np.ndarray, cell: int = CELL) -> Image.Image:
    pixels = RGB[cells].repeat(cell, axis=0).repeat(cell, axis=1)
    return Image.fromarray(pixels, "RGB")


def render(scene: Scene) -> Image.Image:
    return cells_to_image(render_cells(scene))


def random_scene(rng: np.random.Generator, styles: list[Style] | tuple[Style, ...],
                 shapes: tuple[str, ...] | list[str] = SHAPES) -> Scene:
    shape = shapes[rng.integers(len(shapes))]
    style = styles[rng.integers(len(styles))]
    size = int(SIZES[rng.integers(len(SIZES))])
    spots = placements(size)
    top, left = spots[rng.integers(len(spots))]
    return Scene(shape, style, size, int(top), int(left))


def reference_scene(style: Style, index: int = 0) -> Scene:
    """A held-out style's reference picture: a reference shape (house, tree) at a fixed, centred-ish place."""
    shape = REFERENCE_SHAPES[index % len(REFERENCE_SHAPES)]
    return Scene(shape, style, 12, 2, 2)
