"""Shared fixtures: tiny offline models and small synthetic reference images. Nothing touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that reached for the hub would fail loudly, not download

import pytest
import torch
from PIL import Image, ImageDraw

from styledrop.models import Components, load_components


@pytest.fixture
def tiny() -> Components:
    """A fresh tiny model (its transformer gets adapters attached, so never share one between tests)."""
    return load_components("tiny")


def make_reference(size: int = 64) -> Image.Image:
    """A small 'style reference': yellow ground, blue stripes, a red disc — structured, not noise."""
    image = Image.new("RGB", (size, size), (230, 200, 40))
    draw = ImageDraw.Draw(image)
    for x in range(0, size, size // 4):
        draw.rectangle([x, 0, x + size // 8 - 1, size - 1], fill=(20, 40, 160))
    draw.ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(200, 30, 30))
    return image


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
