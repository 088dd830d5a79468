"""A new style's reference upload: checked, shrunk and encoded before any database transaction begins, then
stored with one short write transaction; the per-user quotas (styles, stored bytes) and the base-model
allow-list are checked on the way.

Why: SQLite has one writer. Decoding and re-encoding a large photo takes seconds (a 6300x6300 noisy JPEG
took 19 s as a PNG), and done inside the transaction that inserted the style it held the write lock that
long, failing other users' ratings and a running round with "database is locked".
"""

from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra import storage
from ..settings import Settings
from .models import Style, User

# Stored as PNG (lossless) while that is small; a larger (photographic, noisy) reference as high-quality
# WebP: at 1,024 px it is a few hundred kB instead of megabytes, and the models read it at 256-512 px.
PNG_LIMIT_BYTES = 1024 * 1024
WEBP_QUALITY = 92


@dataclass
class EncodedReference:
    data: bytes
    suffix: str  # ".png" or ".webp"
    size: tuple[int, int]


def encode_reference(picture: Image.Image, max_side: int) -> EncodedReference:
    """Shrink to `max_side` on the longest side (never enlarge) and encode compactly (see PNG_LIMIT_BYTES)."""
    picture = picture.convert("RGB")
    if max(picture.size) > max_side:
        picture = picture.copy()
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    if buffer.tell() <= PNG_LIMIT_BYTES:
        return EncodedReference(buffer.getvalue(), ".png", picture.size)
    buffer = io.BytesIO()
    picture.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4)
    return EncodedReference(buffer.getvalue(), ".webp", picture.size)


def prepare_reference(data: bytes, settings: Settings) -> EncodedReference:
    """Decode by content, check, shrink and encode an upload (no database work: seconds for a large photo)."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"The image is larger than {settings.max_upload_bytes // (1024 * 1024)} MB.")
    try:
        picture = storage.decode_upload(data, settings.max_image_pixels)
    except storage.UploadError as exc:
        raise ApiError(exc.status, exc.detail) from exc
    return encode_reference(picture, settings.reference_max_side)


def check_base_model(name: str | None, settings: Settings) -> str:
    """The style's base model: the default when none is given, else one of STYLEDROP_BASE_MODELS (422).
    The message names the allowed models, never a server path."""
    name = (name or "").strip() or settings.model
    allowed = settings.allowed_base_models
    if name not in allowed:
        # The name is not repeated: it may be a path on this server, and messages never show those.
        raise ApiError(422, f"That base model is not offered here; choose one of: {', '.join(allowed)} "
                            "(an administrator sets the list with STYLEDROP_BASE_MODELS).")
    return name


# ---- quotas -------------------------------------------------------------------------------------------------

def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


def stored_bytes(session: Session, settings: Settings, user_id: int | None) -> int:
    """Bytes under the storage folders of the user's styles (references, candidates, adapters, checkpoints,
    generations): counted from the files, so nothing the worker writes is missed."""
    total = 0
    for style_id in session.scalars(select(Style.id).where(Style.user_id == user_id)):
        folder = storage.resolve(settings.storage_root, storage.style_dir(style_id))
        for dirpath, _, filenames in os.walk(folder):
            for filename in filenames:
                try:
                    total += os.stat(os.path.join(dirpath, filename)).st_size
                except OSError:  # removed meanwhile
                    pass
    return total


def check_storage_quota(session: Session, settings: Settings, user_id: int | None, adding: int = 0) -> None:
    """413 when the user's stored files (plus `adding` bytes) pass STYLEDROP_MAX_STORED_MB_PER_USER."""
    limit = settings.max_stored_mb_per_user * 1024 * 1024
    if not limit:
        return
    used = stored_bytes(session, settings, user_id)
    if used + adding > limit:
        adds = f" plus this upload's {_megabytes(adding)}" if adding else ""
        raise ApiError(413, f"You store {_megabytes(used)}{adds}; the limit is {settings.max_stored_mb_per_user} MB "
                            "per user. Delete styles you no longer need to make room.")


def check_style_quota(session: Session, settings: Settings, user_id: int | None, including_new: bool = False) -> None:
    """429 when the user already has STYLEDROP_MAX_STYLES_PER_USER styles (`including_new`: counted after
    the new style's row was inserted, so concurrent uploads cannot both take the last place)."""
    limit = settings.max_styles_per_user
    if not limit:
        return
    count = (session.scalar(select(func.count(Style.id)).where(Style.user_id == user_id)) or 0) - including_new
    if count >= limit:
        raise ApiError(429, f"You have {count} styles; the limit is {limit} per user. Delete one to make another.")


# ---- the style ----------------------------------------------------------------------------------------------

def create_style(session: Session, settings: Settings, user: User, data: bytes | list[bytes],
                 fields: dict[str, Any]) -> Style:
    """Store a new style from one reference image or a few: `fields` are the Style columns already checked
    (content, descriptor, base_model, adapter_kind, settings). The heavy work (decode, checks, shrink, encode,
    file writes) runs before the write transaction; the transaction only inserts the row and renames the
    written files into place."""
    uploads_data = data if isinstance(data, list) else [data]
    if not uploads_data:
        raise ApiError(422, "Upload at least one reference image.")
    if len(uploads_data) > settings.max_references:
        raise ApiError(422, f"{len(uploads_data)} reference images; a style takes at most {settings.max_references}.")
    session.commit()  # end whatever the request began: no lock is held during the work below
    check_style_quota(session, settings, user.id)  # cheap refusals first
    references = [prepare_reference(item, settings) for item in uploads_data]
    check_storage_quota(session, settings, user.id, adding=sum(len(r.data) for r in references))
    session.commit()  # the quota reads above end here, before the seconds of file work
    uploads = storage.resolve(settings.storage_root, "uploads")
    uploads.mkdir(parents=True, exist_ok=True)
    staged = []
    for reference in references:
        staged.append(uploads / f"{secrets.token_hex(8)}{reference.suffix}")
        staged[-1].write_bytes(reference.data)
    finals: list[Path] = []
    try:
        style = Style(user_id=user.id, reference_path="", **fields)
        session.add(style)
        session.flush()  # the write transaction starts here ...
        check_style_quota(session, settings, user.id, including_new=True)  # again, under the write lock
        paths = [storage.reference_path(style.id, r.suffix, i) for i, r in enumerate(references)]
        style.reference_path, style.extra_references = paths[0], paths[1:]
        for source, relative in zip(staged, paths):
            finals.append(storage.resolve(settings.storage_root, relative))
            finals[-1].parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, finals[-1])  # a rename, not a copy
        try:
            session.commit()  # ... and ends here
        except Exception:
            for final in finals:
                Path(final).unlink(missing_ok=True)
            raise
    except Exception:
        session.rollback()
        for source in staged:
            source.unlink(missing_ok=True)
        raise
    session.refresh(style)
    return style
