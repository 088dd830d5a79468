"""Hostile uploads: every rejection is a 4xx with a clear message, nothing is stored, and what is stored is
a re-encoded PNG without the upload's metadata."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .conftest import png_bytes

API = "/api/v1"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb() -> bytes:
    """A valid 100,000 x 100,000 PNG header (10 gigapixels) in a few hundred bytes."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * 3 * 16
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(row * 16))
            + _png_chunk(b"IEND", b""))


def polyglot() -> bytes:
    """An HTML page with a PNG appended: a browser may sniff HTML; it must not pass as an image."""
    return b"<html><script>alert(1)</script></html>" + png_bytes()


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'

CORPUS = [
    ("text-with-png-name", b"definitely not an image", 415, "not an image"),
    ("polyglot-html-png", polyglot(), 415, "not an image"),
    ("truncated-png", png_bytes()[: len(png_bytes()) // 2], 400, "damaged or truncated"),
    ("decompression-bomb", decompression_bomb(), 413, "pixels"),
    ("zero-bytes", b"", 400, "empty"),
    ("svg", SVG, 415, "not an image"),
    ("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\n", 415, "not an image"),
    ("tiny-image", tiny_png(), 400, "real picture"),
    ("oversized-file", b"\x89PNG\r\n\x1a\n" + b"\x00" * 260_000, 413, "larger than"),
]


@pytest.mark.parametrize("name, payload, status, words", CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_uploads_are_refused_clearly_and_store_nothing(stub_app, name, payload, status, words):
    response = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                             files={"image": (f"{name}.png", payload, "image/png")})
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert stub_app.get(f"{API}/styles").json()["items"] == []
    stored = list((stub_app.settings.storage_root).rglob("*")) if stub_app.settings.storage_root.exists() else []
    assert [p for p in stored if p.is_file()] == []


def test_stored_reference_is_re_encoded_without_metadata(stub_app):
    info = PngInfo()
    info.add_text("Author", "someone@example.com")
    info.add_text("Comment", "GPS 48.8584 N, 2.2945 E")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).save(buffer, "PNG", pnginfo=info)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).save(jpeg, "JPEG", exif=exif.tobytes())
    for upload in (buffer.getvalue(), jpeg.getvalue()):
        style = stub_app.post(f"{API}/styles", data={"content": "a house", "descriptor": "oil painting"},
                              files={"image": ("r.png", upload, "image/png")}).json()
        stored = stub_app.settings.storage_root / "styles" / str(style["id"]) / "reference.png"
        data = stored.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and not image.text and not image.getexif()
        assert b"someone@example.com" not in data and b"CameraMaker" not in data
