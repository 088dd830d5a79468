"""The file storage root: uploads, candidates, adapters, generations. Paths are built from ids only.

Every path stored in the database is relative to the storage root, so the root can move (a Docker volume,
another disk) without touching the database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from styledrop.image_checks import ImageRejected, open_image  # torch-free


class UploadError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def style_dir(style_id: int) -> str:
    return f"styles/{style_id}"


def reference_path(style_id: int, suffix: str = ".png", index: int = 0) -> str:
    """reference.png for a style's first reference image, reference-2.png, … for more (as the engine names them)."""
    return f"styles/{style_id}/reference{f'-{index + 1}' if index else ''}{suffix}"


MEDIA_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def media_type(relative: str) -> str:
    return MEDIA_TYPES.get(Path(relative).suffix.lower(), "application/octet-stream")


def round_dir(style_id: int, number: int) -> str:
    return f"styles/{style_id}/rounds/{number}"


def adapter_path(style_id: int, number: int) -> str:
    return f"{round_dir(style_id, number)}/adapter.safetensors"


def candidate_path(style_id: int, number: int, candidate_index: int) -> str:
    return f"{round_dir(style_id, number)}/candidates/{candidate_index:04d}.png"


def training_sample_path(style_id: int, number: int, name: str) -> str:
    """An image drawn while the round trained (name: styledrop.training_samples.sample_name, step-000250-a.png)."""
    return f"{round_dir(style_id, number)}/samples/{name}"


def generation_path(style_id: int, generation_id: int, index: int) -> str:
    return f"styles/{style_id}/generations/{generation_id}/{index:03d}.png"


def resolve(root: Path, relative: str) -> Path:
    path = (Path(root) / relative).resolve()
    if Path(root).resolve() not in path.parents:
        raise ValueError(f"path escapes the storage root: {relative}")
    return path


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Check by content (not by name) that the bytes are an image; return it as RGB, or raise UploadError."""
    try:
        return open_image(data, label="The upload", max_pixels=max_pixels)
    except ImageRejected as exc:
        raise UploadError(exc.status, str(exc)) from None


def save_png(root: Path, relative: str, image: Image.Image) -> Path:
    path = resolve(root, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def remove_tree(root: Path, relative: str) -> None:
    shutil.rmtree(resolve(root, relative), ignore_errors=True)
