"""A world to see StyleDrop in: procedural shapes in styles, and a base model trained on them from scratch.

Without pretrained weights the method's effect cannot be seen, so the project builds a small world where it
can (DESIGN.md §5, issue 24): pictures of shapes (content) in styles (palette × fill texture × outline ×
background), captions "A {content} in {descriptor} style", a `shapes` base model with aMUSEd's classes (a
UVit2DModel, a CLIP text tower, a VQModel) that every engine path loads unchanged, the world's own CLIP as the
scorer, and oracles that read content and style off any image.

    scene     the pictures, styles, splits (torch-free)
    oracle    content accuracy and style match of any image (torch-free)
    spec      world specs and the cache folder (torch-free)
    tokenizer the exact patch codebook as a diffusers VQModel
    clip      the world's CLIP: training batches, conversion to transformers, the scorer
    build     build_world(): the stages, resumable, with progress
    (its commands, `styledrop world ...`, are styledrop/cli/world.py)
"""

from .spec import WORLDS, is_built, is_world, world_dir  # noqa: F401  (torch-free)


def build_world(*args, **kwargs):
    """styledrop.world.build.build_world (imported on use: it needs torch)."""
    from .build import build_world as build

    return build(*args, **kwargs)
