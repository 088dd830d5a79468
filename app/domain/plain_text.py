"""Text from users is plain text: no control characters, on every text field of the pages and the API.

Why: PostgreSQL cannot store a NUL character (the driver refuses the statement: a 500 on a log-in name, a
token name, a style name or a callback URL), other control characters render as nothing or garble logs and
exports, and a lone surrogate cannot be encoded at all. Tab, line feed and carriage return are whitespace that
browsers send from text areas (one prompt per line); every other character of Unicode's Cc (C0, DEL, C1) and
Cs categories is refused with 422 before anything is stored or looked up.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from ..errors import ApiError

WHITESPACE = frozenset("\t\n\r")
BLANK = " \t\n\r"  # what form fields are stripped of: str.strip() would also drop U+001C-U+001F unseen


def lines(value: str) -> list[str]:
    """A text area's non-blank lines, stripped. str.splitlines() would also split at control characters
    (U+000B, U+001C-U+001E, U+0085), which must reach the check instead of vanishing."""
    return [line.strip(BLANK) for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if line.strip(BLANK)]


def first_control(value: str) -> str | None:
    """The first refused character of `value`, or None."""
    for char in value:
        if char not in WHITESPACE and unicodedata.category(char) in ("Cc", "Cs"):
            return char
    return None


def control_message(field: str, char: str) -> str:
    return f"{field} contains a control character (U+{ord(char):04X}); write plain text."


def check_plain(value: str | None, field: str) -> str | None:
    """`value` itself, or ApiError 422 naming the field and the character."""
    if value is not None and (char := first_control(value)) is not None:
        raise ApiError(422, control_message(field, char))
    return value


def _plain(value: str) -> str:
    if (char := first_control(value)) is not None:
        raise PydanticCustomError("control_character", "contains a control character (U+{code}); write plain text",
                                  {"code": f"{ord(char):04X}"})
    return value


def _url(value: str) -> str:
    if any(char.isspace() or unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise PydanticCustomError("url_characters", "a URL holds no spaces or control characters")
    return value


# The API's text fields (app/domain/schemas.py): refused by validation, so the answer is the usual 422. The pages'
# forms show these errors' own words (PLAIN_TEXT_ERRORS: their pydantic error types).
PLAIN_TEXT_ERRORS = ("control_character", "url_characters")
PlainText = Annotated[str, AfterValidator(_plain)]
UrlText = Annotated[str, AfterValidator(_url)]
