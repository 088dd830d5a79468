"""CLIP scores as StyleDrop defines them (paper §4, Table 2), on open_clip.

* text score: cosine similarity of the CLIP embeddings of a generated image and of its *content* prompt,
  without the style descriptor ("A cat", not "A cat in watercolor painting style");
* style score: cosine similarity of the CLIP image embeddings of a generated image and the reference.

The paper does not name its CLIP variant. Our default is open_clip's `ViT-L-14` with OpenAI's weights
(`pretrained="openai"`), the strongest widely used original CLIP; every report names the model it used.
The `tiny` scorer is a small random CLIP built from config with the real BPE tokenizer, for offline tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image

from .errors import StyleDropError
from .world.spec import is_built, is_world, world_dir

DEFAULT_CLIP = ("ViT-L-14", "openai")
BATCH = 32


@dataclass
class ClipScorer:
    """A CLIP model with its preprocessing and tokenizer; embeddings are L2-normalised."""

    name: str
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: torch.device

    @torch.no_grad()
    def image_embeddings(self, images: list[Image.Image]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(images), BATCH):
            pixels = torch.stack([self.preprocess(img.convert("RGB")) for img in images[start:start + BATCH]])
            chunks.append(self.model.encode_image(pixels.to(self.device)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), BATCH):
            tokens = self.tokenizer(texts[start:start + BATCH]).to(self.device)
            chunks.append(self.model.encode_text(tokens).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def reference_embedding(self, reference: Image.Image | list[Image.Image]) -> torch.Tensor:
        """Embed the style reference once per style (the mean direction of several references)."""
        refs = reference if isinstance(reference, list) else [reference]
        return torch.nn.functional.normalize(self.image_embeddings(refs).mean(0), dim=-1)

    def text_scores(self, images: list[Image.Image], contents: list[str],
                    image_embeddings: torch.Tensor | None = None) -> list[float]:
        """Image vs. its content prompt (pass prompts *without* the style descriptor)."""
        if len(images) != len(contents):
            raise StyleDropError(f"{len(images)} images but {len(contents)} content prompts to score them with.")
        if not images:
            return []
        emb = self.image_embeddings(images) if image_embeddings is None else image_embeddings
        unique = sorted(set(contents))
        text = self.text_embeddings(unique)
        index = torch.tensor([unique.index(c) for c in contents], device=text.device)
        return (emb * text[index]).sum(-1).clamp(-1, 1).tolist()

    def style_scores(self, images: list[Image.Image], reference_embedding: torch.Tensor,
                     image_embeddings: torch.Tensor | None = None) -> list[float]:
        if not images:
            return []
        emb = self.image_embeddings(images) if image_embeddings is None else image_embeddings
        return (emb @ reference_embedding.to(emb.device)).clamp(-1, 1).tolist()

    def score(self, images: list[Image.Image], contents: list[str],
              reference_embedding: torch.Tensor) -> tuple[list[float], list[float]]:
        """(text scores, style scores), embedding each image once."""
        emb = self.image_embeddings(images) if images else None
        return (self.text_scores(images, contents, emb), self.style_scores(images, reference_embedding, emb))


def _tiny_scorer(device: torch.device) -> ClipScorer:
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.CLIP(
            embed_dim=32,
            vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=16, image_size=64),
            text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
        )
    preprocess = open_clip.image_transform(64, is_train=False)
    return ClipScorer("tiny (random open_clip, real CLIP tokenizer)", model.eval().to(device), preprocess,
                      open_clip.get_tokenizer("ViT-B-32"), device)


def _pretrained_scorer(model_name: str, pretrained: str, device: torch.device) -> ClipScorer:
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None if pretrained == "random" else pretrained, device=device)
    except Exception as exc:  # open_clip raises RuntimeError/OSError/HF errors when weights are unreachable
        raise StyleDropError(
            f"Cannot load CLIP {model_name}/{pretrained}: its weights are not cached and cannot be downloaded "
            f"({type(exc).__name__}). Run once with network access, or use the offline scorer 'tiny'."
        ) from exc
    return ClipScorer(f"{model_name}/{pretrained}", model.eval(), preprocess, open_clip.get_tokenizer(model_name),
                      device)


def _world_scorer(name: str, device: torch.device) -> ClipScorer:
    from .world.clip import world_scorer

    if not is_built(name):
        raise StyleDropError(f"The '{name}' world is not built yet, so its CLIP is not either: run "
                             f"`styledrop world build {name}` once.")
    return world_scorer(world_dir(name), device, name)


def load_scorer(name: str = "default", device: str | torch.device | None = None) -> ClipScorer:
    """'default' (ViT-L-14/openai), 'tiny' (offline, random), a world's own CLIP ('shapes', once built), or
    'MODEL/PRETRAINED' for any open_clip model;
    'MODEL/random' builds that architecture with random weights (offline: benchmarks time the real size)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if is_world(name):
        return _world_scorer(name, device)
    if name == "tiny":
        return _tiny_scorer(device)
    model_name, pretrained = DEFAULT_CLIP if name == "default" else (name.split("/", 1) + [""])[:2]
    if not pretrained:
        raise StyleDropError(f"CLIP scorer '{name}': use 'default', 'tiny' or 'MODEL/PRETRAINED' (e.g. ViT-B-32/openai).")
    return _pretrained_scorer(model_name, pretrained, device)
