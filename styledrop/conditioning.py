"""Text conditioning for aMUSEd: the CLIP encoder's penultimate hidden states and its pooled projection,
plus the micro-conditioning vector (original size, crop, aesthetic score) the transformer also reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .models import Components

AESTHETIC_SCORE = 6.0


@dataclass
class TextConditioning:
    hidden: torch.Tensor  # (B, 77, D) penultimate hidden states
    pooled: torch.Tensor  # (B, P) projected pooled embedding

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def index(self, idx: torch.Tensor | list[int]) -> "TextConditioning":
        return TextConditioning(self.hidden[idx], self.pooled[idx])

    def repeat(self, n: int) -> "TextConditioning":
        """Tile the batch n times ([p0, p1, p0, p1]), the order AmusedPipeline uses for several images."""
        return TextConditioning(self.hidden.repeat(n, 1, 1), self.pooled.repeat(n, 1))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "TextConditioning":
        return TextConditioning(self.hidden.to(device, dtype), self.pooled.to(device, dtype))

    @staticmethod
    def cat(parts: list["TextConditioning"]) -> "TextConditioning":
        return TextConditioning(torch.cat([p.hidden for p in parts]), torch.cat([p.pooled for p in parts]))


@torch.no_grad()
def encode_prompts(components: Components, prompts: list[str]) -> TextConditioning:
    """Encode prompts exactly as AmusedPipeline does (max-length padding, hidden_states[-2], text_embeds)."""
    tokenizer = components.tokenizer
    input_ids = tokenizer(prompts, return_tensors="pt", padding="max_length", truncation=True,
                          max_length=tokenizer.model_max_length).input_ids
    encoder = components.text_encoder
    out = encoder(input_ids.to(encoder.device), return_dict=True, output_hidden_states=True)
    return TextConditioning(out.hidden_states[-2], out.text_embeds)


def micro_conds(width: int, height: int, batch: int, device: torch.device, dtype: torch.dtype,
                crop: tuple[int, int] = (0, 0), aesthetic: float = AESTHETIC_SCORE) -> torch.Tensor:
    """aMUSEd's micro-conditioning rows: [width, height, crop_top, crop_left, aesthetic score]."""
    row = torch.tensor([width, height, crop[0], crop[1], aesthetic], device=device, dtype=dtype)
    return row.unsqueeze(0).expand(batch, -1)
