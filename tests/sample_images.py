"""The synthetic 'style reference' every test uses: structured (stripes and a disc), not noise."""

from __future__ import annotations

from PIL import Image, ImageDraw


def make_reference(size: int = 64) -> Image.Image:
    """Yellow ground, blue stripes, a red disc."""
    image = Image.new("RGB", (size, size), (230, 200, 40))
    draw = ImageDraw.Draw(image)
    for x in range(0, size, size // 4):
        draw.rectangle([x, 0, x + size // 8 - 1, size - 1], fill=(20, 40, 160))
    draw.ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(200, 30, 30))
    return image
