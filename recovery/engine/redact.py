"""Keep secrets out of journals, displays and reports.

Everything the engine records (parameters, step outputs, notes, error messages, tracebacks) passes
through here first. Two rules: a value stored under a key whose name says it is secret is replaced
whole, and secrets embedded in text (URL passwords; `password=`, `PGPASSWORD=`, `"password": ...` and
`'password': ...` under any secret-sounding name; `--password VALUE`; pgpass lines; PEM private keys;
bearer tokens) are cut out of any string. Over-redaction is the safe failure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"

# Fragments that mark a key as secret wherever they appear in its name (PGPASSWORD, client_secret).
_SECRET_FRAGMENTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
)
# Short words that only count as whole words (pwd, not "pwdx").
_SECRET_WORDS = frozenset({"pwd", "pw", "cookie"})
# Word pairs that mark key material (a bare "key" word is too common: kms_key_id, ssh_key path).
_SECRET_PAIRS = frozenset(
    {
        ("private", "key"),
        ("key", "material"),
        ("data", "key"),
        ("api", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("session", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# A name that says its value is secret, wherever it is embedded: PGPASSWORD, AWS_SECRET_ACCESS_KEY,
# db_password, "password" as a JSON or Python mapping key, --password as a command-line option.
# Bounded runs around the fragment, and matches that start only where a name starts (_NAME_START), keep
# the search linear on long strings.
_HIDDEN_NAME = (
    r"[A-Za-z0-9_.-]{0,40}(?:password|passwd|passphrase|pwd|secret|token|credential|api_?key|private_?key)"
    r"[A-Za-z0-9_.-]{0,40}"
)
_NAME_START = r"(?<![A-Za-z0-9_.-])"
# A value: quoted (either quote), or a run of characters up to a separator.
_VALUE = r"""('[^']*'|"[^"]*"|[^\s;,)'"}\]]+)"""
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:<redacted>@host
    (
        re.compile(r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^:/@\s]*):([^@/\s]+)@"),
        rf"\1:{REDACTED}@",
    ),
    # key=value, key: value, 'key': value, "key": value (conninfo, environment, JSON, Python reprs)
    (
        re.compile(rf"""{_NAME_START}(["']?{_HIDDEN_NAME}["']?)(\s*[=:]\s*){_VALUE}""", re.IGNORECASE),
        rf"\1\2{REDACTED}",
    ),
    # --password VALUE (an option and its value as separate words)
    (re.compile(rf"{_NAME_START}(--?{_HIDDEN_NAME})(\s+){_VALUE}", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # a pgpass line: host:port:database:user:password
    (re.compile(r"^([^:\s#]+:(?:\d+|\*):[^:\s]+:[^:\s]+:)(\S+)$", re.MULTILINE), rf"\1{REDACTED}"),
    (re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL), REDACTED),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
)


def is_secret_key(name: str) -> bool:
    """True when a mapping key's name says its value is a secret (password, token, key material...)."""
    words = [w for w in re.split(r"[^a-z0-9]+", _CAMEL.sub("_", name).lower()) if w]
    if name.lower() == "key" or any(word in _SECRET_WORDS for word in words):
        return True
    if any(fragment in "".join(words) for fragment in _SECRET_FRAGMENTS):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


# Secret values the process read at run time (a database password from Secrets Manager): cut from any
# text verbatim, whatever surrounds them. Short values are not remembered: they would cut common words.
_KNOWN_SECRETS: set[str] = set()
_KNOWN_SECRET_MIN_LENGTH = 6


def remember_secret(value: str) -> None:
    """From now on, `redact_text` cuts `value` wherever it appears."""
    if len(value) >= _KNOWN_SECRET_MIN_LENGTH:
        _KNOWN_SECRETS.add(value)


def redact_text(text: str) -> str:
    """Cut secrets embedded in a string (URL passwords, password=..., PEM private keys, bearer tokens,
    and every value given to `remember_secret`)."""
    for known in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(known, REDACTED)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secrets replaced; mappings become dicts, sequences lists."""
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if is_secret_key(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def contains_redaction(value: Any) -> bool:
    """True when a recorded value had something redacted (it can no longer be replayed as given)."""
    if isinstance(value, Mapping):
        return any(contains_redaction(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_redaction(item) for item in value)
    return isinstance(value, str) and REDACTED in value
