"""Pages of a list: `limit` and an opaque `cursor`, in a stable order (by id), with a `next` link.

A cursor is the last id of the previous page (base64 of a small JSON object, so clients treat it as opaque
and we may add to it): unlike an offset, it neither skips nor repeats rows when rows are added or deleted
between two pages. Lists answer an envelope `{"items": [...], "next": URL or null}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from ..errors import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = value["after"]
        if isinstance(after, int) and not isinstance(after, bool) and 0 <= after < 2**63:
            return after
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        pass
    raise ApiError(422, "cursor: not a cursor this server gave out; pass the `next` link of the previous page.")


class PageRequest:
    """`?limit=&cursor=` of a list request."""

    def __init__(self, request: Request,
                 limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
                 cursor: Annotated[str | None, Query(max_length=200, description="the `next` link's cursor "
                                                                               "(opaque)")] = None):
        self.request, self.limit, self.cursor = request, limit, cursor

    def fetch(self, session: Session, query: Select, id_column: Any, descending: bool = False) -> tuple[list, str | None]:
        """The page's rows of `query` (ordered by `id_column`) and the URL of the next page (None: last)."""
        rows, after = page(session, query, id_column, self.limit, self.cursor, descending)
        if after is None:
            return rows, None
        url = self.request.url.include_query_params(limit=self.limit, cursor=after)
        return rows, f"{url.path}?{url.query}"  # relative, like the API's other links


def page(session: Session, query: Select, id_column: Any, limit: int, cursor: str | None,
         descending: bool = False) -> tuple[list, str | None]:
    """Rows of one page and the cursor of the next (None on the last page). `descending`: newest first."""
    if cursor is not None:
        last = decode_cursor(cursor)
        query = query.where(id_column < last if descending else id_column > last)
    query = query.order_by(id_column.desc() if descending else id_column).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more else None)


PageDep = Annotated[PageRequest, Depends(PageRequest)]
