"""Bench layer: the benchmark's own instruments: the race audit, the round-trip counter, the
verdicts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bench import booking, data
from bench.common import RedisSnapshot, RoundTrips, Table
from bench.targets import evaluate
from gateway.store import keys


@pytest.fixture
def race_data(store):
    # From tomorrow: the race's own processes read the real clock, and today's slots may
    # already be over at the hour the tests run.
    prize = data.race(store.now().date() + timedelta(days=1), sessions=2, slots=2, capacity=25)
    data.load_all(store, prize)
    return prize


def test_race_books_exactly_capacity_and_audits_clean(store, race_data, redis_url):
    result = booking.race(redis_url, store.r, race_data, clients=300, processes=2, threads=8)

    assert result["bookings"] == 100 == result["capacity"]
    assert result["outcomes"]["ok"] == 100
    assert result["outcomes"].get("replay", 0) + result["outcomes"].get("already_booked", 0) > 0
    audit = result["audit"]
    assert audit["overbooked"] == audit["duplicate_bookings"] == 0
    assert audit["bookings_without_one_code_sms"] == audit["code_sms_without_booking"] == 0
    assert audit["full_slots"] == 4 and audit["counter_mismatches"] == 0
    assert audit["confirmed_but_missing"] == 0


def test_audit_catches_an_overbooking_and_a_second_code_sms(store, race_data):
    session = race_data["sessions"][0]
    refs = []
    for n in range(25):
        outcome = store.book(
            mobile=booking.mobile(n),
            name=booking.person(n),
            birth_year=data.BIRTH_YEAR,
            session_id=session["id"],
            slot=0,
        )
        refs.append(outcome.value)
    # Forge what a broken store would do: a 26th appointment in the full slot, and a
    # second code SMS for the first booking.
    store.r.hset(
        keys.appointment("1234567890"),
        mapping={
            "centre": data.RACE_CENTRE,
            "state": "booked",
            "sid": session["id"],
            "slot": "0",
            "mobile": booking.mobile(999),
            "name": booking.person(999),
        },
    )
    store.r.xadd(
        keys.outbox(keys.partition_of(booking.mobile(0))),
        {
            "k": f"book:{refs[0]}:0",
            "to": booking.mobile(0),
            "t": "sms.booked",
            "l": "en",
            "p": json.dumps({"ref": refs[0], "ver": 0}),
        },
    )

    audit = booking.audit_race(store.r, race_data)

    assert audit["overbooked"] == 1
    assert audit["counter_mismatches"] == 1
    assert audit["bookings_without_one_code_sms"] == 2  # the forged one has none, refs[0] two
    assert audit["duplicate_message_keys"] == 1


def test_round_trips_count_a_pipeline_or_a_script_once(r):
    script = r.register_script("redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])")
    script(keys=["tk:{tk}:bench"])  # load it, so the measured call is one EVALSHA
    with RoundTrips() as trips:
        with r.pipeline(transaction=False) as pipe:
            pipe.set("tk:{tk}:a", 1).get("tk:{tk}:a").delete("tk:{tk}:a")
            pipe.execute()
        script(keys=["tk:{tk}:bench"])
        r.get("tk:{tk}:bench")
        r.exists("tk:{tk}:bench")
    assert trips.count == 4


def test_a_redis_snapshot_counts_the_commands_of_every_master(r):
    # On a cluster the partitions spread over the masters: a figure read from one node
    # alone would miss most of the work.
    partitions = range(0, keys.PARTITIONS, max(1, keys.PARTITIONS // 32))
    before = RedisSnapshot.take(r)
    for p in partitions:
        r.set(f"{keys.prefix(p)}bench", "1")
    spent = RedisSnapshot.take(r).since(before)

    assert spent.calls["set"] == len(partitions)
    assert spent.cpu > 0


def test_a_missed_target_is_reported_as_missed_not_hidden():
    results = {
        "memory": {
            "checkpoints": [
                {"bookings": 10, "bytes_per_appointment": 640.0, "round_trips_per_booking": 1.0}
            ]
        },
        "race": {
            "audit": {
                "overbooked": 0,
                "duplicate_bookings": 0,
                "bookings_without_one_code_sms": 0,
                "code_sms_without_booking": 0,
                "duplicate_message_keys": 0,
            }
        },
    }
    verdicts = {row["figure"]: row["met"] for row in evaluate(results)}

    assert verdicts["bytes of Redis memory per appointment"] is False
    assert verdicts["Redis round trips per booking (store)"] is True
    assert verdicts["race: overbooked"] is True
    assert verdicts["USSD hops/s, ours / bare (peak)"] is None  # not measured, not passed
    table = Table("t", ["a", "b"], [[1234.5, float("nan")]]).render()
    assert "1,234" in table and "| -" in table
