"""Reading what the store wrote across every bucket (see gateway/store/keys.py), for tests."""

from __future__ import annotations

from gateway.store import keys


def outbox_entries(r) -> list[dict[str, str]]:
    """Every entry on every bucket's outbox stream, as text, in the order of their stream ids
    (the server's clock in ms: entries of one millisecond in two buckets may swap)."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.outbox(p))
        streams = pipe.execute()
    found = [(_order(i), fields) for entries in streams for i, fields in entries]
    return [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in sorted(found, key=lambda e: e[0])
    ]


def _order(entry_id: bytes) -> tuple[int, int]:
    ms, seq = entry_id.decode().split("-")
    return int(ms), int(seq)


def outbox_length(r) -> int:
    return len(outbox_entries(r))


def sms_count(r, field: str) -> int:
    """A counter of ``flask sms stats`` summed over the buckets."""
    with r.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.hget(keys.sms_counts(p), field)
        return sum(int(v or 0) for v in pipe.execute())


def session_key(r, session_id: str) -> str:
    """A session's key, wherever its centre's bucket is (load-data records the centre)."""
    centre = r.hget(keys.SESSION_CENTRES, session_id)
    return keys.session(centre.decode() if centre else "-", session_id)


def matching(r, kind: str) -> list[bytes]:
    """Every key of one kind (the word after the bucket's tag: ``appt``, ``session``, …)."""
    return sorted(r.scan_iter(match=f"tk:{{p*}}:{kind}:*", count=1000))
