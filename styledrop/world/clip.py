"""The world's CLIP: a small open_clip model trained contrastively on world pictures and their captions.

Two uses, as in the paper: its text tower, converted to transformers' `CLIPTextModelWithProjection`, is the base
model's frozen text encoder (aMUSEd conditions on CLIP's text tower); the whole model is the world's scorer
through the engine's `ClipScorer` (text and style scores, CLIP feedback).

The vision tower reads the picture at one pixel per cell (the preprocess averages each cell), so a ViT with
2×2-cell patches sees one period of every texture per patch. Captions are the world's three kinds: the full
prompt ("A star in fire striped on navy style"), the content alone ("A star": what CLIP's text score compares
with) and the style alone ("A picture in fire striped on navy style"). A batch has many captions true of one
image (every "A star"), so the loss is contrastive with several positives: each image's target is spread evenly
over the captions true of it, and each caption's over the images it is true of.

open_clip's text tower and transformers' CLIP text model are the same network: GELU (not quick GELU), a causal
mask, the end-of-text token's state after the final LayerNorm, a bias-free projection. `hf_text_encoder`
copies the weights across (q, k, v split from the packed in-projection; the projection transposed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import scene as world

MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation, as open_clip's transforms
STD = (0.26862954, 0.26130258, 0.27577711)
STYLE_ONLY = "A picture"  # the style-only caption's subject: "A picture in fire striped on navy style"


@dataclass(frozen=True)
class ClipSpec:
    embed_dim: int = 96
    patch: int = 2  # cells per patch side
    vision_width: int = 96
    vision_layers: int = 3
    text_width: int = 96
    text_layers: int = 3
    head_width: int = 32
    context_length: int = 20

    def open_clip_kwargs(self) -> dict:
        return dict(embed_dim=self.embed_dim,
                    vision_cfg=dict(layers=self.vision_layers, width=self.vision_width, head_width=self.head_width,
                                    patch_size=self.patch, image_size=world.GRID),
                    text_cfg=dict(context_length=self.context_length, vocab_size=49408, width=self.text_width,
                                  heads=self.text_width // self.head_width, layers=self.text_layers))


def build_clip(spec: ClipSpec, seed: int = 0):
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(**spec.open_clip_kwargs())


def open_clip_tokenizer(spec: ClipSpec):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=spec.context_length)


def hf_tokenizer(spec: ClipSpec):
    """The base model's tokenizer: OpenAI CLIP's vocabulary (offline), cut at the CLIP's context length."""
    from ..tokenizer import clip_tokenizer

    tokenizer = clip_tokenizer()
    tokenizer.model_max_length = spec.context_length
    return tokenizer


# ---- pixels ---------------------------------------------------------------------------------------------------

_MEAN = np.array(MEAN, dtype=np.float32)[:, None, None]
_STD = np.array(STD, dtype=np.float32)[:, None, None]


def cell_pixels(cells: np.ndarray) -> torch.Tensor:
    """(B, GRID, GRID) colour ids -> (B, 3, GRID, GRID) normalised pixels, one per cell (the training path)."""
    rgb = world.RGB[cells].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return torch.from_numpy((rgb - _MEAN) / _STD)


def preprocess(image: Image.Image) -> torch.Tensor:
    """Any image -> (3, GRID, GRID): resized to the world's side, each cell's mean colour, normalised."""
    image = image.convert("RGB")
    if image.size != (world.SIDE, world.SIDE):
        image = image.resize((world.SIDE, world.SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(world.GRID, world.CELL, world.GRID, world.CELL, 3)
    means = pixels.mean(axis=(1, 3)).transpose(2, 0, 1) / 255.0
    return torch.from_numpy((means - _MEAN) / _STD)


# ---- captions -------------------------------------------------------------------------------------------------

def style_caption(style: world.Style) -> str:
    return f"{STYLE_ONLY} in {style.descriptor} style"


@dataclass
class CaptionTable:
    """Every caption CLIP trains on, tokenised once: full prompts, contents, styles."""

    texts: list[str]
    tokens: torch.Tensor  # (N, context)
    full: dict[tuple[str, world.Style], int]
    content: dict[str, int]
    style: dict[world.Style, int]


def caption_table(spec: ClipSpec, styles: list[world.Style]) -> CaptionTable:
    texts: list[str] = []
    full, content, style_index = {}, {}, {}
    for shape in world.SHAPES:
        content[shape] = len(texts)
        texts.append(world.caption(world.Scene(shape, styles[0]), with_style=False))
    for style in styles:
        style_index[style] = len(texts)
        texts.append(style_caption(style))
        for shape in world.SHAPES:
            full[(shape, style)] = len(texts)
            texts.append(world.caption(world.Scene(shape, style)))
    return CaptionTable(texts, open_clip_tokenizer(spec)(texts), full, content, style_index)


def multi_positive_loss(image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor,
                        truth: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where truth[i, j] says caption j is true of image i (several may be)."""
    logits = scale * image_features @ text_features.T
    to_text = truth / truth.sum(1, keepdim=True)
    to_image = truth.T / truth.T.sum(1, keepdim=True)
    loss_i = -(to_text * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(to_image * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def clip_batch(rng: np.random.Generator, table: CaptionTable, styles: list[world.Style], batch: int,
               caption_kinds: tuple[float, float, float] = (0.5, 0.3, 0.2), group: int = 4) -> tuple[
                   torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch: pixels, caption tokens, and which captions are true of which images.

    Pictures come in groups of `group` sharing a style, each of another shape: a full caption is then told from
    its group's other captions by the shape alone, so the contrastive loss cannot be met by the style only (it
    otherwise is: a batch seldom holds two pictures of one style, and CLIP learns colours long before shapes)."""
    scenes: list[world.Scene] = []
    while len(scenes) < batch:
        style = styles[rng.integers(len(styles))]
        for shape in rng.choice(len(world.SHAPES), size=min(group, batch - len(scenes)), replace=False):
            size = int(world.SIZES[rng.integers(len(world.SIZES))])
            spots = world.placements(size)
            top, left = spots[rng.integers(len(spots))]
            scenes.append(world.Scene(world.SHAPES[shape], style, size, int(top), int(left)))
    cells = np.stack([world.render_cells(s) for s in scenes])
    kinds = rng.choice(3, size=batch, p=np.array(caption_kinds) / sum(caption_kinds))
    ids = [table.full[(s.shape, s.style)] if k == 0 else table.content[s.shape] if k == 1 else table.style[s.style]
           for s, k in zip(scenes, kinds)]
    shapes = np.array([world.SHAPES.index(s.shape) for s in scenes])
    style_ids = np.array([styles.index(s.style) for s in scenes])
    same_shape = shapes[:, None] == shapes[None, :]
    same_style = style_ids[:, None] == style_ids[None, :]
    kind = kinds[None, :]
    truth = np.where(kind == 0, same_shape & same_style, np.where(kind == 1, same_shape, same_style))
    return cell_pixels(cells), table.tokens[ids], torch.from_numpy(truth.astype(np.float32))


# ---- files ----------------------------------------------------------------------------------------------------

CLIP_DIR = "clip"
CLIP_WEIGHTS = "open_clip_model.safetensors"
CLIP_CONFIG = "open_clip_config.json"


def save_clip(model, spec: ClipSpec, folder: Path) -> None:
    from safetensors.torch import save_file

    target = Path(folder) / CLIP_DIR
    target.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(target / CLIP_WEIGHTS))
    (target / CLIP_CONFIG).write_text(json.dumps({"spec": asdict(spec), "open_clip": spec.open_clip_kwargs(),
                                                  "preprocess": "cell means (styledrop.world.clip.preprocess)"},
                                                 indent=2) + "\n")


def load_clip(folder: Path, device: torch.device | str = "cpu"):
    from safetensors.torch import load_file

    source = Path(folder) / CLIP_DIR
    spec = ClipSpec(**json.loads((source / CLIP_CONFIG).read_text())["spec"])
    model = build_clip(spec)
    model.load_state_dict(load_file(str(source / CLIP_WEIGHTS)))
    return model.eval().requires_grad_(False).to(device), spec


def hf_text_encoder(model, spec: ClipSpec):
    """The CLIP's text tower as transformers' CLIPTextModelWithProjection (the same function, weights copied)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=spec.text_width, intermediate_size=4 * spec.text_width,
                            projection_dim=spec.embed_dim, num_hidden_layers=spec.text_layers,
                            num_attention_heads=spec.text_width // spec.head_width,
                            max_position_embeddings=spec.context_length, hidden_act="gelu", layer_norm_eps=1e-5,
                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    hf = CLIPTextModelWithProjection(config)
    src = model.state_dict()
    width = spec.text_width
    state = {"text_model.embeddings.token_embedding.weight": src["token_embedding.weight"],
             "text_model.embeddings.position_embedding.weight": src["positional_embedding"],
             "text_model.final_layer_norm.weight": src["ln_final.weight"],
             "text_model.final_layer_norm.bias": src["ln_final.bias"],
             "text_projection.weight": src["text_projection"].T.contiguous()}
    for i in range(spec.text_layers):
        a, b = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        q, k, v = src[a + "attn.in_proj_weight"].split(width)
        qb, kb, vb = src[a + "attn.in_proj_bias"].split(width)
        state.update({b + "self_attn.q_proj.weight": q, b + "self_attn.k_proj.weight": k,
                      b + "self_attn.v_proj.weight": v, b + "self_attn.q_proj.bias": qb,
                      b + "self_attn.k_proj.bias": kb, b + "self_attn.v_proj.bias": vb,
                      b + "self_attn.out_proj.weight": src[a + "attn.out_proj.weight"],
                      b + "self_attn.out_proj.bias": src[a + "attn.out_proj.bias"],
                      b + "layer_norm1.weight": src[a + "ln_1.weight"], b + "layer_norm1.bias": src[a + "ln_1.bias"],
                      b + "layer_norm2.weight": src[a + "ln_2.weight"], b + "layer_norm2.bias": src[a + "ln_2.bias"],
                      b + "mlp.fc1.weight": src[a + "mlp.c_fc.weight"], b + "mlp.fc1.bias": src[a + "mlp.c_fc.bias"],
                      b + "mlp.fc2.weight": src[a + "mlp.c_proj.weight"],
                      b + "mlp.fc2.bias": src[a + "mlp.c_proj.bias"]})
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"CLIP text tower conversion: missing {missing}, unexpected {unexpected}")
    return hf.eval().requires_grad_(False)


def world_scorer(folder: Path, device: torch.device | str = "cpu", name: str = "shapes"):
    """The world's CLIP as the engine's ClipScorer (text and style scores, CLIP feedback)."""
    from ..clip_scores import ClipScorer

    model, spec = load_clip(folder, device)
    return ClipScorer(f"{name} (the world's own CLIP: open_clip ViT, {spec.vision_layers}+{spec.text_layers} layers)",
                      model, preprocess, open_clip_tokenizer(spec), torch.device(device))
