"""Adapter files: safetensors with metadata, a style folder around them, and diffusers' LoRA format.

A style folder holds `adapter.safetensors` (weights plus metadata: kind, shape, base model, descriptor,
prompts, training settings), `style.json` (the same metadata, readable), the reference image, and for
LoRA adapters `diffusers_lora/pytorch_lora_weights.safetensors`, which diffusers' `load_lora_weights` /
`UVit2DModel.load_lora_adapter` read directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .adapters import Adapter, AdapterConfig, LoraAdapter, create_adapter
from .errors import StyleDropError
from .models import Components

FORMAT = "styledrop-adapter/1"
ADAPTER_FILE = "adapter.safetensors"
MANIFEST_FILE = "style.json"
REFERENCE_FILE = "reference.png"
DIFFUSERS_LORA_DIR = "diffusers_lora"


@dataclass
class AdapterMeta:
    """What was trained, on what, and how: enough to reload it and to reproduce the run."""

    adapter: dict[str, Any]
    base_model: str
    fingerprint: dict[str, Any]
    content: str | None = None
    descriptor: str | None = None
    prompts: list[str] = field(default_factory=list)
    steps: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    @property
    def kind(self) -> str:
        return str(self.adapter["kind"])

    def adapter_config(self) -> AdapterConfig:
        return AdapterConfig.from_dict(self.adapter)

    def to_strings(self) -> dict[str, str]:
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_strings(cls, data: dict[str, str]) -> "AdapterMeta":
        if data.get("format") != FORMAT:
            raise StyleDropError(f"Not a StyleDrop adapter file (format '{data.get('format')}', expected {FORMAT}).")
        plain = {"base_model", "content", "descriptor", "created", "format"}
        values = {k: (v if k in plain else json.loads(v)) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**values)


def describe(components: Components, adapter: Adapter, **fields: Any) -> AdapterMeta:
    return AdapterMeta(adapter=adapter.config.to_dict(), base_model=components.source,
                       fingerprint=components.fingerprint(), **fields)


def save_adapter_file(path: str | os.PathLike, adapter: Adapter, meta: AdapterMeta) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in adapter.adapter_state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta.to_strings())
    os.replace(tmp, path)
    return path


def read_adapter_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], AdapterMeta]:
    path = Path(path)
    if path.is_dir():
        path = path / ADAPTER_FILE
    if not path.exists():
        raise StyleDropError(f"No adapter found at {path}: train a style first (styledrop train ... --out DIR).")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StyleDropError(f"{path} is not a readable safetensors adapter file: {exc}") from exc
    return tensors, AdapterMeta.from_strings(metadata)


def check_compatible(meta: AdapterMeta, components: Components) -> None:
    if meta.fingerprint != components.fingerprint():
        raise StyleDropError(
            f"This adapter was trained for base model '{meta.base_model}' but the loaded model "
            f"'{components.source}' has a different architecture; load it with --model {meta.base_model}."
        )


def load_adapter(path: str | os.PathLike, components: Components) -> tuple[Adapter, AdapterMeta]:
    """Read an adapter file (or style folder), check it fits the base model, attach it, load its weights."""
    tensors, meta = read_adapter_file(path)
    check_compatible(meta, components)
    adapter = create_adapter(meta.adapter_config(), components.transformer)
    device = components.device
    adapter.load_adapter_state_dict({k: v.to(device) for k, v in tensors.items()})
    adapter.set_requires_grad(False)
    return adapter, meta


def export_diffusers_lora(adapter: LoraAdapter, out_dir: str | os.PathLike) -> Path:
    """Write diffusers' LoRA file. The LoRA scale alpha/r is folded into lora_B because that format
    carries no alpha and diffusers then loads with alpha = r."""
    from diffusers.loaders.lora_pipeline import AmusedLoraLoaderMixin

    scale = adapter.alpha / adapter.config.rank
    state = {k: (v * scale if "lora_B" in k else v).to("cpu").contiguous() for k, v in adapter.adapter_state_dict().items()}
    AmusedLoraLoaderMixin.save_lora_weights(str(out_dir), transformer_lora_layers=state)
    return Path(out_dir) / "pytorch_lora_weights.safetensors"


def reference_file(index: int) -> str:
    """reference.png for the first reference image (what a one-image style has), reference-2.png, … after."""
    return REFERENCE_FILE if index == 0 else f"reference-{index + 1}.png"


def reference_files(folder: str | os.PathLike) -> list[Path]:
    """A style folder's reference images, in order (the first is reference.png)."""
    found = []
    while (Path(folder) / reference_file(len(found))).is_file():
        found.append(Path(folder) / reference_file(len(found)))
    return found


def save_style(folder: str | os.PathLike, adapter: Adapter, meta: AdapterMeta,
               references: Image.Image | list[Image.Image] | None = None) -> Path:
    """Write a complete style folder (adapter, manifest, every reference image, diffusers export for LoRA)."""
    folder = Path(folder)
    references = [references] if isinstance(references, Image.Image) else references
    folder.mkdir(parents=True, exist_ok=True)
    save_adapter_file(folder / ADAPTER_FILE, adapter, meta)
    manifest = asdict(meta) | {"num_parameters": adapter.num_parameters(), "files": {"adapter": ADAPTER_FILE}}
    for index, image in enumerate(references or []):
        image.save(folder / reference_file(index))
    if references:
        manifest["files"]["reference"] = REFERENCE_FILE
        manifest["files"]["references"] = [reference_file(i) for i in range(len(references))]
    if isinstance(adapter, LoraAdapter):
        export_diffusers_lora(adapter, folder / DIFFUSERS_LORA_DIR)
        manifest["files"]["diffusers_lora"] = f"{DIFFUSERS_LORA_DIR}/pytorch_lora_weights.safetensors"
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
