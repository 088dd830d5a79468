"""Styles: create one from its reference images, rename it or change its descriptor, decode an upload, delete one
with its files."""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra import storage
from ..settings import Settings
from .limits import check_train_steps, clean_prompts, clean_text
from .models import Style, User
from .queries import active_round
from .schemas import STYLE_NAME_CHARS, StyleCreate
from .uploads import check_base_model
from .uploads import create_style as store_style
from .worlds import refuse_unbuilt

MAX_NAME_CHARS = 500  # a base model id or folder: what its database column holds


def create_style(session: Session, settings: Settings, user: User, body: StyleCreate,
                 image: bytes | list[bytes]) -> Style:
    """Store a new style and its reference image or images (at most STYLEDROP_REFERENCE_MAX_SIDE px, PNG when small,
    else WebP). Training starts with start_round. Refused before anything is stored: 422 (text, a base model
    not in STYLEDROP_BASE_MODELS), 409 (a world not built here yet), 413 (too large, over the stored-MB quota),
    429 (styles quota), 400/415 (not an image). The image work runs outside any transaction (app.domain.uploads.create_style)."""
    content = clean_text(body.content, "The content", settings)
    count = len(image) if isinstance(image, list) else 1
    contents = reference_contents(body, content, count, settings)
    descriptor = clean_text(body.descriptor, "The descriptor", settings)
    if body.base_model is not None and len(body.base_model) > MAX_NAME_CHARS:
        raise ApiError(422, f"base_model is {len(body.base_model)} characters long; the limit is {MAX_NAME_CHARS}.")
    model = check_base_model(body.base_model, settings)
    refuse_unbuilt(model)  # 409: a world not built here yet (its build is a job: app.domain.worlds)
    name = clean_name(body.name)
    check_train_steps(body.steps, settings)
    # The style's defaults for its rounds (new_round reads them; round 1's adapter width `rank` goes into its plan).
    style_settings = body.model_dump(include={"steps", "seed", "learning_rate", "rank", "sample_every"},
                                     exclude_none=True)
    if body.sample_prompts is not None:
        style_settings["sample_prompts"] = clean_prompts(body.sample_prompts, settings, "sample_prompts")
    return store_style(session, settings, user, image, {
        "content": content, "descriptor": descriptor, "base_model": model, "adapter_kind": body.adapter,
        "settings": style_settings, "name": name, "reference_contents": contents})


def clean_name(name: str | None) -> str | None:
    """What the person calls the style, whitespace collapsed; None (show the descriptor) when blank. 422 when
    longer than STYLE_NAME_CHARS or holding control characters."""
    text = " ".join((name or "").split())
    if len(text) > STYLE_NAME_CHARS:
        raise ApiError(422, f"The name is {len(text)} characters long; the limit is {STYLE_NAME_CHARS}.")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise ApiError(422, "The name contains control characters; write plain text.")
    return text or None


def check_descriptor_change(session: Session, settings: Settings, style: Style, descriptor: str) -> str:
    """The new descriptor, cleaned; 422 when it is not usable text, 409 while a round is queued or running (the
    worker reads the descriptor when the round starts, so it cannot change under it)."""
    descriptor = clean_text(descriptor, "The style descriptor", settings)
    busy = active_round(session, style.id)
    if descriptor != style.descriptor and busy is not None:
        raise ApiError(409, f"Round {busy.number} is {busy.status} and reads the descriptor; change it when the "
                            "round has ended (or cancel it).")
    return descriptor


def update_style(session: Session, settings: Settings, style: Style, changes: dict[str, Any]) -> Style:
    """PATCH: the name and/or the descriptor, both checked before either changes (all or nothing)."""
    name = clean_name(changes["name"]) if "name" in changes else style.name
    descriptor = check_descriptor_change(session, settings, style, changes["descriptor"]) \
        if changes.get("descriptor") is not None else style.descriptor
    style.name, style.descriptor = name, descriptor
    session.commit()
    return style


def reference_contents(body: StyleCreate, content: str, count: int, settings: Settings) -> list[str]:
    """Each reference image's own content: `contents`, one per image (the first is `content`), or `content` for
    every image when none are given. 422, before anything is stored, for a list that does not fit the images."""
    if not body.contents:
        return [content] * count
    if len(body.contents) != count:
        raise ApiError(422, f"contents has {len(body.contents)} entries for {count} reference image(s); give one "
                            "per image, in order (image first, then more_images), or none.")
    contents = [clean_text(c, f"contents[{i}]", settings) for i, c in enumerate(body.contents)]
    if contents[0] != content:
        raise ApiError(422, f"contents[0] ({contents[0]!r}) is the first image's content, which content says is "
                            f"{content!r}; make them the same.")
    return contents


def decode_image(data: bytes, settings: Settings) -> Any:
    """An uploaded image, checked by its content: 413 when larger than the upload limit, 400/415 otherwise."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB.")
    try:
        return storage.decode_upload(data, settings.max_image_pixels)
    except storage.UploadError as exc:
        raise ApiError(exc.status, exc.detail) from exc


def delete_style(session: Session, settings: Settings, style: Style) -> None:
    """Remove a style, its rows and its files, and with them its jobs of every kind, queued or running: what
    the user's quotas count (jobs, styles, stored megabytes) is given back at once.

    A job that a worker is running is fenced by its row's deletion: a round's next fenced write (its heartbeat,
    within seconds) finds no row and the attempt stops (StaleAttempt); an evaluation stops before its next
    model; a generation's end is refused. Each then removes what it wrote after this deletion
    (app.domain.fencing.remove_if_deleted). Ids are never reused (app/domain/models.py), so no late write can
    reach another job."""
    style_id = style.id
    session.delete(style)
    session.commit()
    storage.remove_tree(settings.storage_root, storage.style_dir(style_id))

