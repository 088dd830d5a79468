"""Open an untrusted image safely: by content (not name), within a pixel budget, fully decoded.

Torch-free, so the web app and the engine share one check. Rejections carry an HTTP-like status
(415 not an image / unsupported type, 413 too many pixels, 400 damaged or too small) and one-sentence text.
"""

from __future__ import annotations

import io
import os

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import StyleDropError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MIN_SIDE = 8


class ImageRejected(StyleDropError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def open_image(source: bytes | str | os.PathLike, label: str = "The image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `source` (bytes or a file path) to RGB with EXIF orientation applied, or raise ImageRejected."""
    if isinstance(source, bytes) and not source:
        raise ImageRejected(400, f"{label} is empty.")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as probe:
            if probe.format not in IMAGE_FORMATS:
                raise ImageRejected(415, f"{label} is a {probe.format} file; use a PNG, JPEG or WebP image.")
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(413, f"{label} is {width}x{height} pixels, more than the {max_pixels:,} allowed.")
            probe.load()
            image = ImageOps.exif_transpose(probe).convert("RGB")
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(413, f"{label} declares far more pixels than the {max_pixels:,} allowed "
                                 "(a decompression bomb).") from None
    except UnidentifiedImageError:
        raise ImageRejected(415, f"{label} is not an image that can be read (PNG, JPEG or WebP expected).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(400, f"{label} is a damaged or truncated image: {exc}") from exc
    if min(image.size) < MIN_SIDE:
        raise ImageRejected(400, f"{label} is only {image.size[0]}x{image.size[1]} pixels; use a real picture.")
    return image
