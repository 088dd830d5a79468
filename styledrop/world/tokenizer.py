"""The world's VQ tokenizer: an exact patch codebook written as a diffusers `VQModel`.

A world picture is made of CELL × CELL flat patches, each one of the world's colours, so the codebook the
content needs is the colours themselves: code k is a flat patch of colour k. The weights are set, not trained:

* encoder: `conv_in` scores each pixel against every colour, s_k(c) = 2c·c_k − |c_k|² (= |c|² − |c − c_k|², so
  the largest score is the nearest colour); the downsampling convolutions average 2×2 (so a patch's score is its
  mean colour's); every ResNet block is the identity (its second convolution is zero); the last GroupNorm has one
  group, so it shifts and scales every channel alike, and SiLU is increasing on the range it is pushed into:
  the latent's largest channel is still the nearest colour;
* codebook: the one-hot vectors, so the quantizer's nearest code is that largest channel;
* decoder: one-hot codes pass the identity layers and nearest upsampling unchanged; its GroupNorm sees exactly
  one "on" channel per position, so its statistics do not depend on the picture and its affine maps "off" to
  0 (SiLU(0) = 0); `conv_out` maps the "on" channel to its colour.

So a world picture encodes to its cells exactly and decodes back pixel for pixel (fp32; in bf16 a colour may move
by one level of 255, never to another code), and any other picture encodes to the nearest colour of each
patch's mean: the world sees it as a mosaic of its colours.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import VQModel

ENCODER_SCALE = 0.1  # the encoder GroupNorm's gain: normalised scores lie within ±sqrt(channels × positions)
ENCODER_SHIFT = 10.0  # ... and this shift keeps them where SiLU is increasing (above -1.28)
ON_VALUE = 1.0


def vq_config(num_colours: int, cell: int, side: int) -> dict:
    """A VQModel config with log2(cell) downsamplings and one channel per colour."""
    levels = int(round(math.log2(cell))) + 1
    if 2 ** (levels - 1) != cell:
        raise ValueError(f"the cell size must be a power of two, got {cell}")
    return dict(
        act_fn="silu",
        block_out_channels=[num_colours] * levels,
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        in_channels=3,
        out_channels=3,
        latent_channels=num_colours,
        layers_per_block=1,
        norm_num_groups=1,
        num_vq_embeddings=num_colours,
        sample_size=side,
        mid_block_add_attention=False,
        lookup_from_codebook=True,
    )


def _centre_identity(conv: torch.nn.Conv2d, scale: float = 1.0) -> None:
    conv.weight.zero_()
    k = conv.weight.shape[-1] // 2
    for i in range(min(conv.in_channels, conv.out_channels)):
        conv.weight[i, i, k, k] = scale
    if conv.bias is not None:
        conv.bias.zero_()


def _identity_resnets(module: torch.nn.Module) -> None:
    from diffusers.models.resnet import ResnetBlock2D

    for block in module.modules():
        if isinstance(block, ResnetBlock2D):
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()


@torch.no_grad()
def patch_codebook(rgb: np.ndarray, cell: int, side: int) -> VQModel:
    """A VQModel whose code k is a flat cell × cell patch of colour rgb[k] (uint8 RGB rows)."""
    colours = torch.tensor(np.asarray(rgb, dtype=np.float64) / 255.0)  # (K, 3) in [0, 1]
    num = colours.shape[0]
    vq = VQModel(**vq_config(num, cell, side))
    for p in vq.parameters():
        p.zero_()

    encoder = vq.encoder
    encoder.conv_in.weight[:, :, 1, 1] = (2 * colours).float()
    encoder.conv_in.bias.copy_(-(colours ** 2).sum(1).float())
    for block in encoder.down_blocks:
        for down in block.downsamplers or []:
            down.conv.weight.zero_()
            for i in range(num):
                down.conv.weight[i, i, 0:2, 0:2] = 0.25
            down.conv.bias.zero_()
    _identity_resnets(encoder)
    encoder.conv_norm_out.weight.fill_(ENCODER_SCALE)
    encoder.conv_norm_out.bias.fill_(ENCODER_SHIFT)
    _centre_identity(encoder.conv_out)
    _centre_identity(vq.quant_conv)

    vq.quantize.embedding.weight.copy_(torch.eye(num))

    _centre_identity(vq.post_quant_conv, ON_VALUE)
    decoder = vq.decoder
    _centre_identity(decoder.conv_in)
    _identity_resnets(decoder)
    for block in decoder.up_blocks:
        for up in block.upsamplers or []:
            _centre_identity(up.conv)
    # GroupNorm over one-hot positions: mean v/K and variance v²(K-1)/K², whatever the picture.
    v = ON_VALUE
    sigma = math.sqrt(v * v * (num - 1) / num ** 2 + decoder.conv_norm_out.eps)
    decoder.conv_norm_out.weight.fill_(1.0)
    decoder.conv_norm_out.bias.fill_(v / num / sigma)  # "off" channels -> exactly 0
    on = v / sigma
    silu_on = on / (1 + math.exp(-on))
    decoder.conv_out.weight.zero_()
    decoder.conv_out.weight[:, :, 1, 1] = (colours.T / silu_on).float()
    decoder.conv_out.bias.zero_()
    vq.eval().requires_grad_(False)
    return vq


@torch.no_grad()
def encode_cells(vq: VQModel, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) pixels in [0, 1] -> (N, g, g) codes (what styledrop.images.encode_to_tokens computes)."""
    latents = vq.encode(pixels.to(vq.dtype)).latents
    grid = latents.shape[-1]
    return vq.quantize(latents)[2][2].reshape(pixels.shape[0], grid, grid)
