"""A centre calls off a session: its bookings cancelled, or moved to another day's session.

The session's bookings are in the centre's bucket, listed in the session's bookings set
(``keys.session_bookings``: ``book`` adds a ref, ``cancel`` and this take it out), so they
are found without a scan and closed in batches, each one ``close_session`` script that also
queues each person's SMS. Then each person's record on their mobile follows (``person``, the
mobile's bucket), so the person can book again or holds the new date. A repeat finds no open
booking left on the session and tells nobody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.store import keys, replies
from gateway.store.people import name_key

if TYPE_CHECKING:
    from gateway.store import Store

BATCH = 50  # bookings per script call: a session of hundreds is a few short steps


@dataclass
class Closing:
    """What calling off a session did: ``status`` ``ok`` or why it refused (nothing written)."""

    status: str
    date: str = ""  # the session's date (or, refused, the date the refusal is about)
    centre_id: str = ""
    cancelled: list[str] = field(default_factory=list)  # refs cancelled, their people told
    moved: list[str] = field(default_factory=list)  # refs moved, their people told
    target: str = ""  # the session they were moved to

    @property
    def told(self) -> int:
        return len(self.cancelled) + len(self.moved)


def close_session(
    store: Store, session_id: str, reason: str, to_date: str | None, now: datetime
) -> Closing:
    """Call off ``session_id`` with ``reason``; with ``to_date``, move its bookings to that
    day's session at the same centre (same vaccine) where they fit."""
    found = store.r.hget(keys.SESSION_CENTRES, session_id)
    if found is None:
        return Closing("no_session")
    centre_id = replies.text(found)
    target = ""
    if to_date:
        target = _target(store, centre_id, session_id, to_date)
        if not target:
            return Closing("no_target", to_date, centre_id)
    refs = _in_booking_order(store, centre_id, session_id)
    closing = Closing("ok", centre_id=centre_id, target=target)
    for start in range(0, max(len(refs), 1), BATCH):
        status, value = _close_batch(
            store, centre_id, session_id, target, reason, now, refs[start : start + BATCH]
        )
        if status != "ok":
            return Closing(status, value, centre_id)
        _settle(store, json.loads(value) if value != "{}" else [], closing)
    closing.date = replies.text(store.r.hget(keys.session(centre_id, session_id), "date") or b"")
    return closing


def _in_booking_order(store: Store, centre_id: str, session_id: str) -> list[str]:
    """The session's bookings, first booked first: moved in that order, so when the target
    has room for only some, those who booked first keep a place."""
    refs = replies.members(store.r.smembers(keys.session_bookings(centre_id, session_id)))
    with store.r.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.hget(keys.appointment(ref), "at")
        at = [int(x or 0) for x in pipe.execute()]
    return [ref for _, ref in sorted(zip(at, refs, strict=True))]


def _target(store: Store, centre_id: str, session_id: str, to_date: str) -> str:
    """The session at the centre on ``to_date`` with the same vaccine, '' when none."""
    score = to_date.replace("-", "")
    ids = replies.members(store.r.zrangebyscore(keys.centre_sessions(centre_id), score, score))
    with store.r.pipeline(transaction=False) as pipe:
        pipe.hget(keys.session(centre_id, session_id), "vaccine")
        for sid in ids:
            pipe.hmget(keys.session(centre_id, sid), ["vaccine", "cancelled_at"])
        vaccine, *found = pipe.execute()
    same = [
        sid
        for sid, (v, off) in zip(ids, found, strict=True)
        if v == vaccine and not off and sid != session_id
    ]
    return same[0] if same else ""


def _close_batch(
    store: Store,
    centre_id: str,
    session_id: str,
    target: str,
    reason: str,
    now: datetime,
    refs: list[str],
) -> tuple[str, str]:
    partition = keys.partition_of(centre_id)
    reply = store._scripts["close_session"](
        keys=[
            keys.session(centre_id, session_id),
            keys.session(centre_id, target or session_id),
            keys.days(centre_id),
            keys.open_slots(centre_id),
            keys.centre(centre_id),
            keys.open_by_day(partition),
            keys.session_bookings(centre_id, session_id),
            keys.session_bookings(centre_id, target or session_id),
            keys.outbox(partition),
            keys.sms_counts(partition),
            *[keys.appointment(ref) for ref in refs],
        ],
        args=[
            session_id,
            target,
            reason,
            now.date().isoformat(),
            int(now.timestamp()),
            f"{now:%H:%M}",
            ",".join(store.lifecycle.sources("centre_cancel")),
            ",".join(store.lifecycle.sources("reschedule")),
            centre_id,
            *refs,
        ],
    )
    status, value = (replies.text(x) for x in reply)
    return status, value


def _settle(store: Store, done: list[list[str]], closing: Closing) -> None:
    """Each person's record on their mobile follows their booking."""
    person = store._scripts["person"]
    for ref, mobile, name, state, date, sid, slot in done:
        moved = state != "cancelled"
        fields = json.dumps({"d": date, "sid": sid, "slot": slot}) if moved else ""
        person(keys=[keys.beneficiaries(mobile)], args=[name_key(name), ref, state, fields])
        (closing.moved if moved else closing.cancelled).append(ref)
