"""The order service's HTTP API, as the toolkit calls it: JSON in, (status, JSON document) out.

No answer at all (refused, reset, timed out) is an `ExternalFailure` naming the URL; any HTTP status is
an answer and goes back to the caller, which decides what it means. Only loopback or the target's own
front door is ever called; URLs come from the target, never from user input at run time.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from recovery.errors import ExternalFailure


def call(base_url: str, method: str, path: str, body: Any = None, *, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the target's service URL (http or https)
        base_url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw, status = response.read(), int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            raw, status = error.read(), int(error.code)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        name = type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
        raise ExternalFailure(
            f"the order service at {base_url} did not answer {method} {path} ({name})"
        ) from None
    try:
        return status, json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return status, None
