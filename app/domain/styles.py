"""Styles: create one from its reference images, decode an upload, delete one with its files."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra import storage
from ..settings import Settings
from .limits import check_train_steps, clean_text
from .models import Style, User
from .queries import active_round
from .schemas import StyleCreate
from .uploads import check_base_model
from .uploads import create_style as store_style

MAX_NAME_CHARS = 500  # a base model id or folder: what its database column holds


def create_style(session: Session, settings: Settings, user: User, body: StyleCreate,
                 image: bytes | list[bytes]) -> Style:
    """Store a new style and its reference image or images (at most STYLEDROP_REFERENCE_MAX_SIDE px, PNG when small,
    else WebP). Training starts with start_round. Refused before anything is stored: 422 (text, a base model
    not in STYLEDROP_BASE_MODELS), 413 (too large, over the stored-MB quota), 429 (styles quota), 400/415
    (not an image). The image work runs outside any transaction (app.domain.uploads.create_style)."""
    content = clean_text(body.content, "The content", settings)
    descriptor = clean_text(body.descriptor, "The descriptor", settings)
    if body.base_model is not None and len(body.base_model) > MAX_NAME_CHARS:
        raise ApiError(422, f"base_model is {len(body.base_model)} characters long; the limit is {MAX_NAME_CHARS}.")
    model = check_base_model(body.base_model, settings)
    check_train_steps(body.steps, settings)
    # The style's defaults for its rounds (new_round reads them; the first round's adapter width `rank` goes into its plan).
    style_settings = body.model_dump(include={"steps", "seed", "learning_rate", "rank"}, exclude_none=True)
    return store_style(session, settings, user, image, {
        "content": content, "descriptor": descriptor, "base_model": model, "adapter_kind": body.adapter,
        "settings": style_settings})


def decode_image(data: bytes, settings: Settings) -> Any:
    """An uploaded image, checked by its content: 413 when larger than the upload limit, 400/415 otherwise."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB.")
    try:
        return storage.decode_upload(data, settings.max_image_pixels)
    except storage.UploadError as exc:
        raise ApiError(exc.status, exc.detail) from exc


def delete_style(session: Session, settings: Settings, style: Style) -> None:
    """Remove a style, its rows and its files; 409 while one of its rounds is queued or running."""
    if (running := active_round(session, style.id)) is not None:
        raise ApiError(409, f"Round {running.number} of style {style.id} is {running.status}; cancel it first.")
    style_id = style.id
    session.delete(style)
    session.commit()
    storage.remove_tree(settings.storage_root, storage.style_dir(style_id))

