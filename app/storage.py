"""The file storage root: uploads, candidates, adapters, generations. Paths are built from ids only.

Every path stored in the database is relative to the storage root, so the root can move (a Docker volume,
another disk) without touching the database.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


class UploadError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def style_dir(style_id: int) -> str:
    return f"styles/{style_id}"


def reference_path(style_id: int) -> str:
    return f"styles/{style_id}/reference.png"


def round_dir(style_id: int, number: int) -> str:
    return f"styles/{style_id}/rounds/{number}"


def adapter_path(style_id: int, number: int) -> str:
    return f"{round_dir(style_id, number)}/adapter.safetensors"


def candidate_path(style_id: int, number: int, candidate_index: int) -> str:
    return f"{round_dir(style_id, number)}/candidates/{candidate_index:04d}.png"


def generation_path(style_id: int, generation_id: int, index: int) -> str:
    return f"styles/{style_id}/generations/{generation_id}/{index:03d}.png"


def resolve(root: Path, relative: str) -> Path:
    path = (Path(root) / relative).resolve()
    if Path(root).resolve() not in path.parents:
        raise ValueError(f"path escapes the storage root: {relative}")
    return path


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Check by content (not by name) that the bytes are an image; return it as RGB, or raise UploadError."""
    if not data:
        raise UploadError(400, "The uploaded image is empty.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ALLOWED_FORMATS:
                raise UploadError(415, f"Unsupported image type {probe.format}; upload a PNG, JPEG or WebP image.")
            width, height = probe.size
            if width * height > max_pixels:
                raise UploadError(413, f"The image is {width}x{height} pixels, more than the {max_pixels:,} allowed.")
            probe.load()
            image = ImageOps.exif_transpose(probe).convert("RGB")
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UploadError(415, "The upload is not an image that can be read; "
                               "upload a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(400, f"The image is damaged or truncated: {exc}") from exc
    if min(image.size) < 8:
        raise UploadError(400, f"The image is only {image.size[0]}x{image.size[1]} pixels; upload a real picture.")
    return image


def save_png(root: Path, relative: str, image: Image.Image) -> Path:
    path = resolve(root, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def remove_tree(root: Path, relative: str) -> None:
    shutil.rmtree(resolve(root, relative), ignore_errors=True)
