"""Input checks at the edge, before anything reaches the database: the body's length and its JSON.

Every request body is read through here. What passes is a JSON document of bounded size whose numbers
are plain integers (or finite floats) no longer than a bigint and whose strings hold no NUL character
(PostgreSQL cannot store one); anything else is a 400 with one sentence, never a 500 from deep inside.
"""

from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

from orderservice.errors import BadRequest

MAX_BODY = 1 << 20
# A bigint's widest value has 19 digits; the JSON parser never builds a longer integer.
MAX_INT_DIGITS = 19
BIGINT_MAX = 2**63 - 1
_LENGTH = re.compile(r"[0-9]{1,10}")


def content_length(header: str | None) -> int:
    """The body's length from its Content-Length header: digits only, at most MAX_BODY."""
    if header is None or header == "":
        return 0
    if not _LENGTH.fullmatch(header):
        raise BadRequest("Content-Length must be a non-negative number of bytes")
    length = int(header)
    if length > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes")
    return length


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequest(f"a number in the body has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRequest("a number in the body is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number")


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("a string in the body contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or BadRequest naming what is wrong with it. An empty body is {}."""
    if not raw:
        return {}
    try:
        document = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    _check_strings(document)
    return document


def read_body(headers: Any, stream: BinaryIO) -> Any:
    """Read exactly the declared body and parse it."""
    if headers.get("Transfer-Encoding"):
        raise BadRequest("send the body with a Content-Length, not a Transfer-Encoding")
    length = content_length(headers.get("Content-Length"))
    return parse_json(stream.read(length) if length else b"")


def bounded_int(value: Any, what: str, high: int = BIGINT_MAX) -> int:
    """A positive integer that fits its column (bigint by default), or BadRequest."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
        raise BadRequest(f"{what} must be a positive integer up to {high}")
    return value


def bounded_text(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise BadRequest(f"{what} is longer than {max_length} characters")
    return value
