"""Download all of a generation's images as one zip: the PNGs as they are on disk (stored, not compressed
again: PNG is already compressed), named by prompt and seed, with a manifest.json of what drew them (prompt,
seed, round, decoding settings). Streamed a block at a time: the zip is never built in memory or on disk."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from styledrop.prompts import style_prompt  # torch-free

from ..infra import storage
from .models import Generation

BLOCK = 1 << 16


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "image"


def archive_name(generation: Generation) -> str:
    return f"style{generation.style_id}-generation{generation.id}.zip"


def image_contents_and_seeds(generation: Generation) -> list[tuple[str, int | None]]:
    """Each stored image's content prompt and own seed: image j is prompt j mod n (the engine tiles the prompts
    num_images times) drawn with seed + j (the seed contract, docs/method.md); None where the request had no seed."""
    request = generation.request or {}
    prompts = list(request.get("prompts") or [])
    seed = request.get("seed")
    return [(prompts[j % len(prompts)] if prompts else "", seed + j if seed is not None else None)
            for j in range(len(generation.image_paths or []))]


def generation_files(root: Path, generation: Generation, round_number: int | None) -> tuple[list[tuple[str, Path]],
                                                                                            dict[str, Any]]:
    """The zip's entries (name in the zip, file on disk) and its manifest (image_contents_and_seeds)."""
    request = generation.request or {}
    descriptor = request.get("descriptor")
    files, images = [], []
    for j, (relative, (content, image_seed)) in enumerate(zip(generation.image_paths or [],
                                                              image_contents_and_seeds(generation))):
        name = f"{j:03d}-{_slug(content)}{f'-seed{image_seed}' if image_seed is not None else ''}.png"
        files.append((name, storage.resolve(root, relative)))
        try:
            prompt = style_prompt(content, descriptor or None) if content else ""
        except Exception:  # noqa: BLE001 - a manifest of an older row still lists its image
            prompt = content
        images.append({"file": name, "content": content, "prompt": prompt, "seed": image_seed})
    manifest = {
        "generation": generation.id, "style": generation.style_id, "round": round_number,
        "created_at": generation.created_at.isoformat() if generation.created_at else None,
        "settings": {key: request.get(key) for key in ("num_images", "seed", "steps", "guidance",
                                                       "adapter_guidance", "descriptor")},
        "images": images,
    }
    return files, manifest


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come (zipfile writes to it, the response reads)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def zip_stream(files: list[tuple[str, Path]], manifest: dict[str, Any]) -> Iterator[bytes]:
    """The zip's bytes, a block at a time (a streaming zip: sizes in data descriptors after each file)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            with archive.open(name, "w") as entry, open(path, "rb") as source:
                for block in iter(lambda: source.read(BLOCK), b""):
                    entry.write(block)
                    if chunk := sink.take():
                        yield chunk
            if chunk := sink.take():
                yield chunk
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    yield sink.take()
