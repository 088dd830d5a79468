"""StyleDrop's prompt template: "A {content} in {descriptor} style" (paper §3.1).

Content and descriptor stay separate words so that a user can edit the style by editing the descriptor
("melting golden 3d rendering" -> "golden 3d rendering") and so that CLIP's text score can be computed on
the content alone.
"""

from __future__ import annotations

import re

from .errors import StyleDropError

_ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)
MAX_WORDS = 60


def check_prompt_text(value: str, what: str) -> str:
    text = " ".join((value or "").split())
    if not text:
        raise StyleDropError(f"The {what} is empty: describe it in a few words.")
    if len(text.split()) > MAX_WORDS:
        raise StyleDropError(f"The {what} is too long ({len(text.split())} words, at most {MAX_WORDS}).")
    return text


def content_phrase(content: str) -> str:
    """'house' and 'a house' both become 'A house'; 'the Eiffel tower' keeps its article."""
    text = check_prompt_text(content, "content")
    if not _ARTICLE.match(text):
        text = f"a {text}"
    return text[0].upper() + text[1:]


def style_prompt(content: str, descriptor: str | None) -> str:
    """The training and sampling prompt; without a descriptor it is the plain content prompt."""
    phrase = content_phrase(content)
    if descriptor is None:
        return phrase
    return f"{phrase} in {check_prompt_text(descriptor, 'style descriptor')} style"
