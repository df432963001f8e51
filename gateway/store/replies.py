"""Redis replies as text: the one place where the client's loosely typed replies become str.

redis-py types a reply as bytes or str (a client may decode or not) and a stream read as any
shape RESP2 or RESP3 gives; the app reads each shape through one of these, so the rest of the
code sees ``str`` and ``dict[str, str]`` only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Raw = bytes | str
# One stream entry as redis-py types it: the fields are None for an entry deleted meanwhile.
RawEntry = tuple[Raw | None, Mapping[Raw, Raw] | None]
# (entry id, fields) of one stream entry, as text.
Entry = tuple[str, dict[str, str]]
# A JSON object a script returned: its fields are whatever that script writes.
Document = dict[str, Any]


def text(value: Raw | int | float) -> str:
    """A reply's bytes (or number, from a script) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def optional_text(value: Raw | None) -> str | None:
    """A reply that may be nil (a missing key or field) as text, or None."""
    return None if value is None else text(value)


def fields(raw: Mapping[Raw, Raw]) -> dict[str, str]:
    """A hash's or a stream entry's fields as text."""
    return {text(k): text(v) for k, v in raw.items()}


def entries(raw: Iterable[RawEntry] | None) -> list[Entry]:
    """A stream range (XRANGE, XAUTOCLAIM) as text, leaving out entries deleted meanwhile."""
    return [(text(i), fields(f)) for i, f in raw or () if i is not None and f is not None]


def group_read(raw: Any) -> list[Entry]:
    """The entries of the one stream an XREADGROUP read, ``[[stream, entries]]`` or nil.

    redis-py types this reply as the union of every protocol's shape; the client speaks RESP2,
    so the shape is known here, and ``Any`` goes no further.
    """
    return entries(raw[0][1]) if raw else []


def pairs(flat: Iterable[Raw | int]) -> dict[str, str]:
    """A flat [field, value, …] reply from a script as a dict of text."""
    items = [text(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def document(raw: Raw) -> Document:
    """A JSON object a script returned (cjson writes an empty table as ``{}``)."""
    parsed = json.loads(raw)
    if not isinstance(parsed, dict):
        raise TypeError(f"a script returned {type(parsed).__name__}, not a JSON object")
    return parsed


def documents(raw: Raw) -> list[Document]:
    """A JSON list of objects a script returned; an empty one comes as ``{}`` from cjson."""
    parsed = json.loads(raw)
    if parsed == {}:
        return []
    if not isinstance(parsed, list):
        raise TypeError(f"a script returned {type(parsed).__name__}, not a JSON list")
    return parsed


def members(raw: Any) -> list[str]:
    """The members of a set or sorted-set reply (ZRANGE…, SMEMBERS), as text."""
    return [text(m) for m in raw]
