"""Whether a base model can be loaded on this machine, and what to do when it cannot, said where it is read.

Torch-free, so the web app can ask before a user uploads anything (the new-style page), and the worker can turn
a failed load into advice for the pages instead of the CLI's. A hub model is available when its snapshot is in
the local Hugging Face cache; without it a load needs the hub, which this project's machines cannot reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import StyleDropError
from .presets import PRESETS
from .world.spec import is_built, is_world

DEFAULT_MODEL = "amused/amused-256"
HUB_MODELS = ("amused/amused-256", "amused/amused-512")
# What needs no download: random-weight presets (their images are noise; they exercise the flow and the speed), and
# the shapes world (styledrop.world: a small base model trained on this machine from its seed; available once
# `styledrop world build shapes` has built it).
OFFLINE_PRESETS = tuple(PRESETS)
OFFLINE_WORLDS = ("shapes",)
OFFLINE_CHOICES = OFFLINE_PRESETS + OFFLINE_WORLDS


def offline_choices_text() -> str:
    """The offline choices in one phrase, for the messages below."""
    return (f"{', '.join(OFFLINE_PRESETS)} (random weights), or {' or '.join(OFFLINE_WORLDS)} (a small world of "
            f"shapes trained on this machine: `styledrop world build shapes` once)")


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # one sentence for a person; never a server path


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, by its own precedence of environment variables."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def in_hub_cache(repo_id: str) -> bool:
    """A downloaded snapshot of `repo_id` with the transformer's config (what a load reads first)."""
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return any((snapshot / "transformer" / "config.json").is_file() for snapshot in snapshots.glob("*"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def availability(source: str) -> Availability:
    source = (source or DEFAULT_MODEL).strip()
    if source in PRESETS:
        return Availability(True, f"'{source}' is built from its configuration on this machine.")
    if is_world(source):
        if is_built(source):
            return Availability(True, f"the '{source}' world's base model is built on this machine.")
        return Availability(False, f"the '{source}' world's base model has not been built on this machine yet "
                                   f"(`styledrop world build {source}` trains it from its seed).")
    if os.path.isdir(source):
        if (Path(source) / "transformer" / "config.json").is_file():
            return Availability(True, "a local model folder.")
        return Availability(False, "that folder is not an aMUSEd model in the diffusers layout.")
    if "/" not in source:
        return Availability(False, f"'{source}' is neither a preset, a hub id nor a folder.")
    if in_hub_cache(source):
        return Availability(True, f"'{source}' is in this machine's Hugging Face cache.")
    why = "downloads are switched off (HF_HUB_OFFLINE)" if hub_offline() else "it would be downloaded first"
    return Availability(False, f"'{source}' has not been downloaded to this machine, and {why}.")


class ModelUnavailableError(StyleDropError):
    """A hub model that is neither cached nor downloadable here. Its message is the CLI's (`--model`); the
    service says the same thing in its own words (`service_message`), naming its setting instead of a flag."""

    def __init__(self, source: str):
        self.source = source
        super().__init__(
            f"Cannot load base model '{source}': it is not in the local Hugging Face cache and the hub cannot be "
            f"reached. Download it once where there is network access (`hf download {source}`), then copy the "
            f"cache folder ({hub_cache_dir()}) here or pass the downloaded folder with --model FOLDER. Offline, "
            f"use --model tiny (random weights: the whole flow runs in seconds, its images are noise); every "
            f"offline choice: {offline_choices_text()}."
        )

    def service_message(self) -> str:
        """For the pages and the API: what the server's administrator changes. No server path in it (the
        worker stores it on the job's row)."""
        return (
            f"The base model '{self.source}' is not available on this server: it has not been downloaded and the "
            f"Hugging Face hub cannot be reached. Start the server with STYLEDROP_MODEL set to a model it has "
            f"(offline: {offline_choices_text()}; 'tiny' runs in seconds with random weights, so its images "
            f"are noise), or download '{self.source}' where there is network access (`hf download {self.source}`) "
            f"and copy the Hugging Face cache to this server; then start a new style with that base model."
        )
