"""What a downloaded or written file is called: the style, the round or generation, the prompt and the seed, so a
folder of downloads says what each file is. The CLI (`styledrop generate`), the app's zip and the app's single
downloads use these names; torch-free, so the web app imports it."""

from __future__ import annotations

import re

SLUG_CHARS = 40


def slug(text: str, limit: int = SLUG_CHARS, empty: str = "image") -> str:
    """Lower-case words joined by "-", at most `limit` characters: safe in a file name on every system."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or empty


def image_file(index: int, content: str, seed: int | None) -> str:
    """An image of a generation, in its folder or zip: "003-a-cat-seed45.png" (index, prompt, the image's own
    seed)."""
    return f"{index:03d}-{slug(content)}{f'-seed{seed}' if seed is not None else ''}.png"


def style_part(name: str) -> str:
    """The style in a file name, from what the person calls it (its name, else its descriptor)."""
    return slug(name, empty="style")


def generation_image_file(style: str, generation: int, index: int, content: str, seed: int | None) -> str:
    """One generation image downloaded alone: "ink-wash-generation7-003-a-cat-seed45.png"."""
    return f"{style_part(style)}-generation{generation}-{image_file(index, content, seed)}"


def generation_zip_file(style: str, generation: int) -> str:
    """All of a generation's images: "ink-wash-generation7.zip" (inside: image_file names)."""
    return f"{style_part(style)}-generation{generation}.zip"


def candidate_file(style: str, round_number: int, content: str, seed: int | None) -> str:
    """A round's candidate: "ink-wash-round2-a-house-seed11.png"."""
    return f"{style_part(style)}-round{round_number}-{slug(content)}{f'-seed{seed}' if seed is not None else ''}.png"


def adapter_file(style: str, round_number: int) -> str:
    """A round's adapter: "ink-wash-round2-adapter.safetensors"."""
    return f"{style_part(style)}-round{round_number}-adapter.safetensors"
