"""A booking across two buckets, exact under concurrency and crashes.

The mobile's bucket owns the people on a mobile (at most 4, one open booking each); the
centre's bucket owns the slots and the appointment, and queues the code SMS in the same script
as the appointment (book.lua), so there is never a booking without its code SMS nor a code SMS
without a booking. Three steps, each one atomic script:

1. ``reserve`` (mobile's bucket): check the person limits and mark the person's record
   *pending* with the new reference and a settle-by time; the bucket's ``reserved`` set lists
   it until step 3.
2. ``book`` (centre's bucket): capacity, ages, the appointment, the code SMS. Idempotent by
   reference.
3. ``confirm`` (mobile's bucket): the record becomes the open booking, or the record it
   replaced comes back when the centre refused.

A process that dies between steps leaves a pending record. Past its settle-by time anyone may
settle it (``settle``: the outbox worker sweeps, and a booking that meets one settles it
first): ``void.lua`` in the centre's bucket either finds the appointment (then confirm) or
leaves a tombstone that makes a late step 2 refuse (then release). Both are idempotent, so a
settle that races the original process or another settle changes nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from gateway import codes
from gateway.store import keys, missed, replies
from gateway.store.redisconn import Client
from gateway.store.scripts import Scripts, scripts_for

if TYPE_CHECKING:
    from gateway.store import Outcome, Store

MAX_BENEFICIARIES = 4  # people who may hold places on one mobile
IN_FLIGHT = 30  # seconds a booking may take between its steps before others settle it
TOMBSTONE = 24 * 3600  # seconds a voided reference refuses a late step 2
SETTLE_TRIES = 3  # rounds of settling what a reservation meets before giving up


@dataclass(frozen=True)
class Request:
    mobile: str
    name: str
    name_key: str
    birth_year: int
    centre_id: str
    session_id: str
    slot: int
    lang: str


def book(store: Store, req: Request, now: datetime) -> Outcome:
    """Reserve, book, confirm (see the module's docstring); a fresh reference on the (1 in
    10^6) chance that one is taken."""
    outcome = _reserve(store, req, now)
    for _ in range(5):
        if outcome.status not in ("ok", "joined"):
            return outcome
        ref, joined = outcome.value, outcome.status == "joined"
        outcome = _book_at_centre(store, req, now, ref)
        date = outcome.value if outcome.ok else ""
        _confirm(store._scripts, req.mobile, req.name_key, ref, date)
        if outcome.status != "ref_taken":  # the same booking asked for twice is a replay
            return (
                replace(outcome, status="replay" if joined else "ok", value=ref)
                if outcome.ok
                else outcome
            )
        outcome = _reserve(store, req, now)
    return outcome


def _reserve(store: Store, req: Request, now: datetime) -> Outcome:
    """Step 1. A refusal that rests on the person records is checked against the
    appointments once (a crash may have left a cancel or a dose unrecorded there)."""
    outcome = _reserve_settled(store, req, now)
    if outcome.status in ("already_booked", "replay", "too_many") and _heal(store, req.mobile):
        outcome = _reserve_settled(store, req, now)
    return outcome


def _new_ref(centre_id: str) -> str:
    return codes.new_reference(keys.partition_of(centre_id), keys.PARTITIONS)


def _reserve_settled(store: Store, req: Request, now: datetime) -> Outcome:
    """Step 1, settling first whatever stale record it meets (at most a few rounds)."""
    epoch = int(now.timestamp())
    ref = _new_ref(req.centre_id)
    for _ in range(SETTLE_TRIES):
        outcome = store._run(
            "reserve",
            [keys.beneficiaries(req.mobile), keys.reserved(keys.partition_of(req.mobile))],
            [
                req.name_key,
                ref,
                req.session_id,
                req.slot,
                now.date().isoformat(),
                epoch,
                epoch + IN_FLIGHT,
                MAX_BENEFICIARIES,
                req.mobile,
                ",".join(store.lifecycle.OPEN_STATES),
                req.centre_id,
            ],
        )
        if outcome.status != "check":
            return outcome
        for stale in json.loads(outcome.value):
            settle_ref(store, req.mobile, str(stale), now)
    return replace(outcome, status="busy", value="")


def _heal(store: Store, mobile: str) -> bool:
    """Bring the mobile's open records in line with their appointments; True if any moved."""
    open_states = store.lifecycle.OPEN_STATES
    records = {
        replies.text(k): json.loads(v)
        for k, v in store.r.hgetall(keys.beneficiaries(mobile)).items()
    }
    held = {name: str(r["r"]) for name, r in records.items() if r.get("s") in open_states}
    if not held:
        return False
    with store.r.pipeline(transaction=False) as pipe:
        for ref in held.values():
            pipe.hget(keys.appointment(ref), "state")
        states = [replies.optional_text(x) or "missed" for x in pipe.execute()]
    moved = False
    for (name, ref), state in zip(held.items(), states, strict=True):
        if state != records[name]["s"]:
            store._scripts["person"](keys=[keys.beneficiaries(mobile)], args=[name, ref, state])
            moved = True
    return moved


def _book_at_centre(store: Store, req: Request, now: datetime, ref: str) -> Outcome:
    """Step 2, in the centre's bucket."""
    ring = store.settings.keyring  # new codes: the current key, whose id the booking keeps
    check = codes.code_check(ring.current, ref, codes.derive_code(ring.current, ref, 0))
    partition = keys.ref_partition(ref)
    outcome = store._run(
        "book",
        [
            keys.session(req.centre_id, req.session_id),
            keys.appointment(ref),
            keys.days(req.centre_id),
            keys.open_slots(req.centre_id),
            keys.centre(req.centre_id),
            keys.outbox(partition),
            keys.sms_counts(partition),
            keys.open_by_day(partition),
            keys.session_bookings(req.centre_id, req.session_id),
        ],
        [
            ref,
            req.mobile,
            req.name,
            req.birth_year,
            req.slot,
            now.date().isoformat(),
            int(now.timestamp()),
            check,
            req.lang,
            f"{now:%H:%M}",
            ring.current_id,
            req.centre_id,
        ],
        durable=True,
    )
    return outcome  # ok: value is the session's date, which the person's record keeps


def _confirm(scripts: Scripts, mobile: str, name_key: str, ref: str, date: str) -> bool:
    """Step 3; False when the record had already been settled by someone else."""
    done: int = scripts["confirm"](
        keys=[keys.beneficiaries(mobile), keys.reserved(keys.partition_of(mobile))],
        args=[name_key, ref, date, mobile],
    )
    return done == 1


def settle_ref(store: Store, mobile: str, ref: str, now: datetime) -> None:
    """Settle one stale record of ``mobile`` about ``ref``: a booking in flight past its time
    (void or confirm it), or an open booking whose day is over (missed, unless a dose was
    recorded that the record missed)."""
    epoch = int(now.timestamp())
    for key, raw in store.r.hgetall(keys.beneficiaries(mobile)).items():
        record = json.loads(raw)
        if record.get("r") != ref:
            continue
        name = replies.text(key)
        if record.get("s") == "pending":
            if record.get("u", 0) < epoch:
                _void_or_confirm(store._scripts, mobile, name, ref)
        else:
            now_state = missed.close_one(store.r, ref, store.lifecycle.OPEN_STATES, now)
            store._scripts["person"](keys=[keys.beneficiaries(mobile)], args=[name, ref, now_state])


def _void_or_confirm(scripts: Scripts, mobile: str, name: str, ref: str) -> None:
    state, date = (
        replies.text(x)
        for x in scripts["void"](keys=[keys.appointment(ref)], args=[mobile, TOMBSTONE])
    )
    _confirm(scripts, mobile, name, ref, "" if state == "void" else date)


def settle_due(client: Client, epoch: int, limit: int = 100) -> int:
    """The sweeper (run by the outbox worker): settle every booking left in flight past its
    time, in every bucket; how many. One pipelined look at every bucket's ``reserved`` set."""
    with client.pipeline(transaction=False) as pipe:
        for partition in range(keys.PARTITIONS):
            pipe.zrangebyscore(keys.reserved(partition), "-inf", epoch - 1, 0, limit)
        due = pipe.execute()
    scripts = scripts_for(client)
    settled = 0
    for partition, members in enumerate(due):
        for member in replies.members(members):
            mobile, name = member.split(" ", 1)
            raw = client.hget(keys.beneficiaries(mobile), name)
            record = json.loads(raw) if raw else {}
            if record.get("s") == "pending" and record.get("u", 0) < epoch:
                _void_or_confirm(scripts, mobile, name, str(record["r"]))
            else:  # confirmed meanwhile: only the listing was left
                client.zrem(keys.reserved(partition), member)
            settled += 1
    return settled
