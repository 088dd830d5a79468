"""Reading user images safely and turning them into aMUSEd's VQ tokens (and tokens back into images)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .errors import StyleDropError
from .image_checks import open_image
from .models import Components


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, or explain in one sentence why it cannot be used."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StyleDropError(f"Image file not found: {path}")
    if os.path.isdir(path):
        raise StyleDropError(f"Expected an image file but got a folder: {path}")
    return open_image(path, label=path)


@dataclass
class PreparedImage:
    pixels: torch.Tensor  # (3, R, R) in [0, 1], as aMUSEd's VQ-GAN expects
    original_size: tuple[int, int]  # (width, height) before resizing: a micro-condition
    crop: tuple[int, int]  # (top, left) of the crop in the resized image: a micro-condition


def prepare_image(image: Image.Image, resolution: int) -> PreparedImage:
    """Resize the short side to `resolution` and centre-crop, as diffusers' aMUSEd training does."""
    width, height = image.size
    scale = resolution / min(width, height)
    new_w, new_h = max(resolution, round(width * scale)), max(resolution, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    cropped = resized.crop((left, top, left + resolution, top + resolution))
    pixels = torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    return PreparedImage(pixels, (width, height), (top, left))


@torch.no_grad()
def encode_to_tokens(components: Components, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, R, R) pixels in [0, 1] -> (N, h, w) VQ token ids."""
    vq = components.vqvae
    pixels = pixels.to(vq.device, vq.dtype)
    latents = vq.encode(pixels).latents
    indices = vq.quantize(latents)[2][2]
    grid = pixels.shape[-1] // components.vae_scale_factor
    return indices.reshape(pixels.shape[0], grid, grid)


@torch.no_grad()
def decode_tokens(components: Components, tokens: torch.Tensor) -> list[Image.Image]:
    """(N, h, w) token ids -> PIL images, rounding as AmusedPipeline's image processor does."""
    vq = components.vqvae
    n, h, w = tokens.shape
    out = vq.decode(tokens.to(vq.device), force_not_quantize=True, shape=(n, h, w, vq.config.latent_channels))
    arrays = (out.sample.clip(0, 1).permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype("uint8")
    return [Image.fromarray(a) for a in arrays]


def decode_each(components: Components, tokens: torch.Tensor) -> list[Image.Image]:
    """decode_tokens one image at a time. oneDNN's fp32 convolutions on a CPU round some pixels differently at
    another batch size (measured: half the images of a batch of 8 differed from themselves decoded alone), and
    the seed contract says an image never depends on its batch; the decoder's cost per image barely changes."""
    return [decode_tokens(components, tokens[i:i + 1])[0] for i in range(tokens.shape[0])]
