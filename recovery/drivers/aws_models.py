"""How this process reads botocore's data files (service models, endpoint rules, the endpoints table):
into plain dicts, and with the endpoints table cut down to the services this toolkit calls.

Every process that talks to AWS pays for these files as Python objects, and a backup or restore wants its
memory for its data. Measured, resident memory added by a process's first S3 client: 15.1 MiB with
botocore's own reading, 10.9 MiB with plain dicts (botocore asks the JSON decoder for OrderedDicts, which
cost more per entry and which plain dicts, ordered too, made unnecessary), 7.1 MiB with the endpoints table
cut as well (its entries for some 400 other services are about 6 MiB of objects). The table is cut while it
is decoded, one service at a time, so the others are never all held at once: decoding it whole and cutting
after leaves the freed memory scattered and the process no smaller.

What the cut changes: botocore's older endpoint resolver finds no entry for a service outside
`ENDPOINT_PREFIXES` and falls back to its partition's defaults (`<prefix>.<region>.<dnsSuffix>`); clients
take their endpoints from each service's own rule set anyway.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Collection
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from botocore.loaders import JSONFileLoader

# The services whose clients the toolkit makes (AwsDriver.client and its helpers), and those botocore
# makes itself for credentials (STS for assumed roles, SSO for SSO profiles), by client name: each one's
# endpoint prefix, the key of its entry in the endpoints table.
CLIENT_ENDPOINT_PREFIXES = {
    "cloudwatch": "monitoring",
    "dynamodb": "dynamodb",
    "ec2": "ec2",
    "elbv2": "elasticloadbalancing",
    "kms": "kms",
    "rds": "rds",
    "route53": "route53",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "sns": "sns",
    "sqs": "sqs",
    "sts": "sts",
    "sso": "portal.sso",
    "sso-oidc": "oidc",
}
ENDPOINT_PREFIXES = frozenset(CLIENT_ENDPOINT_PREFIXES.values())
ENDPOINTS_FILE = "endpoints"  # botocore/data/endpoints.json

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_DROPPED = object()
_SUFFIXES = (".json", ".json.gz")  # botocore reads either

Member = Callable[[str, int], tuple[Any, int]]


def _skip(text: str, index: int) -> int:
    end = _WHITESPACE.match(text, index)
    assert end is not None  # the pattern matches the empty string
    return end.end()


def _expect(text: str, index: int, wanted: str) -> None:
    if text[index : index + 1] != wanted:
        raise json.JSONDecodeError(f"Expecting {wanted!r}", text, index)


def _object(text: str, index: int, member: Member) -> tuple[dict[str, Any], int]:
    """The object at `index` (its `{`), each value decoded by `member(key, index)`; values it answers
    `_DROPPED` for are left out."""
    _expect(text, index, "{")
    result: dict[str, Any] = {}
    index = _skip(text, index + 1)
    if text[index : index + 1] == "}":
        return result, index + 1
    while True:
        _expect(text, index, '"')
        key, index = scanstring(text, index + 1)
        index = _skip(text, index)
        _expect(text, index, ":")
        value, index = member(key, _skip(text, index + 1))
        if value is not _DROPPED:
            result[key] = value
        index = _skip(text, index)
        if text[index : index + 1] == "}":
            return result, index + 1
        _expect(text, index, ",")
        index = _skip(text, index + 1)


def _array(text: str, index: int, item: Callable[[int], tuple[Any, int]]) -> tuple[list[Any], int]:
    _expect(text, index, "[")
    result: list[Any] = []
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return result, index + 1
    while True:
        value, index = item(index)
        result.append(value)
        index = _skip(text, index)
        if text[index : index + 1] == "]":
            return result, index + 1
        _expect(text, index, ",")
        index = _skip(text, index + 1)


def read_endpoints(text: str, services: Collection[str]) -> dict[str, Any]:
    """The endpoints table in `text` with each partition's `services` cut down to `services`, decoded
    one service at a time. Pure; raises json.JSONDecodeError (a ValueError) for text that is not JSON."""

    def whole(_key: str, index: int) -> tuple[Any, int]:
        return _DECODER.raw_decode(text, index)

    def service(name: str, index: int) -> tuple[Any, int]:
        value, end = _DECODER.raw_decode(text, index)
        return (value if name in services else _DROPPED), end

    def partition_member(key: str, index: int) -> tuple[Any, int]:
        if key == "services" and text[index : index + 1] == "{":
            return _object(text, index, service)
        return whole(key, index)

    def partitions(key: str, index: int) -> tuple[Any, int]:
        if key == "partitions" and text[index : index + 1] == "[":
            return _array(text, index, lambda at: _object(text, at, partition_member))
        return whole(key, index)

    data, end = _object(text, _skip(text, 0), partitions)
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return data


class ModelFiles(JSONFileLoader):  # type: ignore[misc]
    """botocore's file loader, reading into plain dicts and cutting the endpoints table (see above)."""

    def load_file(self, file_path: str) -> Any:
        """The data of `file_path` (without its `.json` or `.json.gz`), or None when neither exists."""
        for suffix in _SUFFIXES:
            path = Path(file_path + suffix)
            if not path.is_file():
                continue
            data = path.read_bytes()
            text = (gzip.decompress(data) if suffix.endswith(".gz") else data).decode("utf-8")
            if Path(file_path).name == ENDPOINTS_FILE:
                return read_endpoints(text, ENDPOINT_PREFIXES)
            return json.loads(text)
        return None
