"""A booking spans two buckets in three steps (gateway/store/booking.py). A process killed
between any two of them leaves nothing a citizen would notice once settled: no slot taken
without its appointment, no appointment without exactly one code SMS, no person held twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.store import keys
from tests.conversation_helpers import appointments
from tests.partitions import outbox_entries, session_key

PHONE = "+919811111111"
NAME = "Asha Devi"


def crash_after(step: str, settings, session_id: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.crash_booking",
            settings.redis_url,
            str(settings.clock()),
            step,
            PHONE,
            NAME,
            session_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 137, done.stderr


def record(r) -> dict | None:
    raw = r.hget(keys.beneficiaries(PHONE), NAME.casefold())
    return json.loads(raw) if raw else None


def settled(r, session_id: str) -> tuple[int, int, int]:
    """(appointments, code SMS, places taken) for the session: equal when all is well."""
    appts = {ref: a for ref, a in appointments(r).items() if a.get("sid") == session_id}
    queued = {e["k"] for e in outbox_entries(r) if e["t"] == "sms.booked"}
    sent = {  # a worker may have sent one already: its status hash says so
        f"book:{ref}:0"
        for ref in appts
        if r.exists(keys.message(keys.ref_partition(ref), f"book:{ref}:0"))
    }
    return len(appts), len(queued | sent), int(r.hget(session_key(r, session_id), "booked:0"))


@pytest.fixture
def session_id(sample, store):
    return f"S100-{store.now():%Y%m%d}"


@pytest.mark.parametrize("step", ["reserve", "book", "confirm"])
def test_a_booking_killed_after_any_step_is_settled_by_the_sweeper(
    step, store, r, settings, clock, session_id
):
    crash_after(step, settings, session_id)
    assert store.settle() == 0  # nothing is due yet: the process might still be running
    clock.advance(31)
    assert store.settle() == (0 if step == "confirm" else 1)
    booked = step != "reserve"
    assert settled(r, session_id) == ((1, 1, 1) if booked else (0, 0, 0))
    assert (record(r) or {}).get("s") == ("booked" if booked else None)
    assert r.zcard(keys.reserved(keys.partition_of(PHONE))) == 0
    again = store.book(mobile=PHONE, name=NAME, birth_year=1990, session_id=session_id, slot=0)
    assert again.status == ("replay" if booked else "ok")
    assert settled(r, session_id) == (1, 1, 1)


@pytest.mark.parametrize("step", ["reserve", "book"])
def test_the_next_booking_on_the_mobile_settles_what_a_crash_left_without_a_sweeper(
    step, store, r, settings, clock, session_id
):
    crash_after(step, settings, session_id)
    clock.advance(31)
    other = store.book(
        mobile=PHONE, name="Ravi Kumar", birth_year=1990, session_id=session_id, slot=0
    )
    assert other.ok
    assert (record(r) or {}).get("s") == ("booked" if step == "book" else None)
    assert settled(r, session_id)[0] == settled(r, session_id)[1] == (2 if step == "book" else 1)


def test_a_step_two_arriving_after_the_sweeper_voided_it_books_nothing(
    store, r, settings, clock, session_id
):
    from gateway.store import booking

    crash_after("reserve", settings, session_id)
    ref = record(r)["r"]
    clock.advance(31)
    assert store.settle() == 1
    request = booking.Request(PHONE, NAME, NAME.casefold(), 1990, "C100", session_id, 0, "en")
    late = booking._book_at_centre(store, request, store.now(), ref)
    assert late.status == "void"
    assert settled(r, session_id) == (0, 0, 0)


def test_the_outbox_worker_sweeps_what_a_crash_left(store, r, settings, clock, session_id):
    from tests.outbox_helpers import running, wait_for

    crash_after("book", settings, session_id)
    clock.advance(31)
    with running(r, settings):  # its sweep runs as it starts, then every few seconds
        wait_for(lambda: (record(r) or {}).get("s") == "booked", "the booking to be settled")
    assert r.zcard(keys.reserved(keys.partition_of(PHONE))) == 0
    assert settled(r, session_id) == (1, 1, 1)
