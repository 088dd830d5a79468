"""Shared fixtures: tiny offline models and small synthetic reference images. Nothing touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that reached for the hub would fail loudly, not download

import pytest
import torch
from PIL import Image
from sample_images import make_reference

from styledrop.models import Components, load_components


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


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    """The micro world built in a temporary cache folder that load_components("shapes-micro") finds: once per
    session (about 3 minutes on two CPU cores), shared by the world's tests, the CLI's and the service's."""
    from styledrop.world.build import build_world

    root = tmp_path_factory.mktemp("worlds")
    patch = pytest.MonkeyPatch()
    patch.setenv("STYLEDROP_WORLD_DIR", str(root))
    steps = []
    folder = build_world("shapes-micro", threads=1, on_progress=lambda p: steps.append((p.stage, p.step)))
    yield folder, steps
    patch.undo()


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield
