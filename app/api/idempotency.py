"""`Idempotency-Key` on the POSTs that create things (styles, rounds, generations).

A client whose connection broke after the server committed cannot tell whether its style, round or generation
exists; retrying would make a second one. With a key it can retry safely: the first request reserves the key
(a row, unique per user and key) before doing anything, stores its answer when done, and a repeat with the
same key and the same request gets that answer again (header `Idempotent-Replayed: true`). The same key with a
different request is a 409, as is a repeat while the first is still being handled. A request that is refused
(4xx) or fails frees its key, so a corrected retry may use it. Keys are kept `KEEP` and then forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.models import IdempotencyKey, as_utc, utcnow
from ..errors import ApiError

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
KEEP = timedelta(hours=24)
# A reservation still without an answer this long belongs to a request whose process died: a repeat takes it
# over (a create request takes seconds, never minutes).
ABANDONED = timedelta(minutes=10)


def fingerprint(route: str, body: Any, files: dict[str, bytes] | None = None) -> str:
    """What makes two requests "the same": the route, the body as JSON (keys sorted) and the files' hashes."""
    digest = hashlib.sha256(route.encode())
    digest.update(json.dumps(body, sort_keys=True, default=str).encode())
    for name, data in sorted((files or {}).items()):
        digest.update(name.encode() + hashlib.sha256(data).digest())
    return digest.hexdigest()


class Idempotency:
    """One request's key (or none). Uses its own short database sessions, so the reservation is committed
    before the route's work begins and survives the route's rollback."""

    def __init__(self, request: Request, key: str | None):
        self.sessions = request.app.state.sessions
        self.key = key
        self.user_id: int | None = None
        self.row_id: int | None = None

    @contextmanager
    def guard(self, user_id: int, route: str, body: Any, files: dict[str, bytes] | None = None
              ) -> Iterator[JSONResponse | None]:
        """Yields the stored answer to return as is, or None: do the work and `done()` it. An exception
        inside frees the key."""
        if self.key is None:
            yield None
            return
        self.user_id = user_id
        replay = self._reserve(fingerprint(route, body, files))
        try:
            yield replay
        except BaseException:
            self._release()
            raise

    def done(self, status: int, out: BaseModel) -> BaseModel:
        """Store the answer (what a repeat will get) and return it."""
        if self.row_id is not None:
            with self.sessions() as session:
                row = session.get(IdempotencyKey, self.row_id)
                row.response_status, row.response_body = status, out.model_dump(mode="json")
                session.commit()
        return out

    def _reserve(self, print_: str) -> JSONResponse | None:
        with self.sessions() as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == self.user_id,
                                                         IdempotencyKey.created_at < utcnow() - KEEP))
            session.commit()
            row = IdempotencyKey(user_id=self.user_id, key=self.key, fingerprint=print_)
            session.add(row)
            try:
                session.commit()
                self.row_id = row.id
                return None
            except IntegrityError:
                session.rollback()
            first = session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == self.user_id,
                                                                IdempotencyKey.key == self.key))
            if first is None:  # freed between our insert and this read: the caller may simply retry
                raise ApiError(409, f"The {HEADER} was in use a moment ago; retry the request.")
            if first.response_status is None and as_utc(first.created_at) < utcnow() - ABANDONED:
                taken = session.execute(  # take the abandoned reservation over; of two repeats, one wins
                    update(IdempotencyKey).where(IdempotencyKey.id == first.id,
                                                 IdempotencyKey.created_at == first.created_at,
                                                 IdempotencyKey.response_status.is_(None))
                    .values(created_at=utcnow(), fingerprint=print_)).rowcount
                session.commit()
                if taken:
                    self.row_id = first.id
                    return None
                raise ApiError(409, f"The first request with this {HEADER} is still being handled; retry "
                                    f"in a moment to get its answer.", headers={"Retry-After": "1"})
            if first.fingerprint != print_:
                raise ApiError(409, f"This {HEADER} was used for a different request; use a new key for a new "
                                    f"request.")
            if first.response_status is None:
                raise ApiError(409, f"The first request with this {HEADER} is still being handled; retry "
                                    f"in a moment to get its answer.", headers={"Retry-After": "1"})
            return JSONResponse(first.response_body, status_code=first.response_status,
                                headers={"Idempotent-Replayed": "true"})

    def _release(self) -> None:
        if self.row_id is not None:
            with self.sessions() as session:
                session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == self.row_id))
                session.commit()
            self.row_id = None


def get_idempotency(request: Request, key: Annotated[str | None, Header(
        alias=HEADER, max_length=MAX_KEY_CHARS,
        description="any unique string (a UUID); a retry with the same key and request returns the first "
                    "answer instead of creating a second one")] = None) -> Idempotency:
    if key is not None and (not key.strip() or not key.isprintable()):
        raise ApiError(422, f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable characters.")
    return Idempotency(request, key)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
