"""Shared fixtures: tiny offline models and small synthetic reference images. Nothing touches the network."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that reached for the hub would fail loudly, not download

import pytest
import torch
from PIL import Image
from sample_images import make_reference

from styledrop.models import Components, load_components

# World builds (styledrop.world) never touch the developer's cache: until `micro_world` points elsewhere, the
# session's world folder is an empty temporary one (a test that queues a build writes its status there).
_WORLDS = tempfile.mkdtemp(prefix="styledrop-test-worlds-")
os.environ["STYLEDROP_WORLD_DIR"] = _WORLDS
atexit.register(shutil.rmtree, _WORLDS, True)


@pytest.fixture
def tiny() -> Components:
    """A fresh tiny model (its transformer gets adapters attached, so never share one between tests)."""
    return load_components("tiny")


@pytest.fixture
def reference() -> Image.Image:
    return make_reference()


@pytest.fixture
def reference_file(tmp_path, reference) -> str:
    path = tmp_path / "reference.png"
    reference.save(path)
    return str(path)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


# ---- the shapes world's micro world, built once per session -------------------------------------------------

MIDWAY_STEP = 600  # of the micro world's 800 transformer steps: where the build's copy in `micro_world_midway` stops


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    """The micro world built in a temporary cache folder that load_components("shapes-micro") finds; on the way,
    a copy of its folder as it stood at transformer step MIDWAY_STEP (just checkpointed), for `micro_world_midway`."""
    from styledrop.world.build import build_world
    from styledrop.world.spec import WORLDS

    assert MIDWAY_STEP % WORLDS["shapes-micro"].transformer_training.checkpoint_every == 0
    root = tmp_path_factory.mktemp("worlds")
    midway = _midway_copy(tmp_path_factory)
    patch = pytest.MonkeyPatch()
    patch.setenv("STYLEDROP_WORLD_DIR", str(root))
    steps = []

    def progress(p) -> None:
        steps.append((p.stage, p.step))
        if p.stage == "transformer" and p.step == MIDWAY_STEP:  # the checkpoint of this step is written
            shutil.copytree(root / "shapes-micro", midway)

    folder = build_world("shapes-micro", threads=1, on_progress=progress)
    yield folder, steps
    patch.undo()


@pytest.fixture(scope="session")
def micro_world_midway(micro_world, tmp_path_factory):
    """The micro world's folder as an interrupted build left it: tokenizer and CLIP done, the transformer
    checkpointed at step MIDWAY_STEP. Copy it into a world cache folder; a build there resumes from it."""
    return _midway_copy(tmp_path_factory)


def _midway_copy(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "worlds-midway" / "shapes-micro"
