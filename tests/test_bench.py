"""Bench layer: the benchmark's own instruments: the race audit, the round-trip counter, the
verdicts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bench import booking, cluster, data
from bench.common import RedisSnapshot, RoundTrips, Table
from bench.targets import evaluate, tables
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


def test_the_cluster_bench_gives_every_figure_its_readme_table_reads(r, redis_url, fake, tmp_path):
    # One topology's pieces on a tiny scale, on this run's Redis (one server, or the
    # cluster of a cluster run): the bench itself plays both, with its own servers.
    at = {
        "at_username": fake.username,
        "at_api_key": fake.api_key,
        "at_sender_id": "TIKALINE",
        "at_base_url": fake.base_url,
    }
    scale = cluster.SCALES["tiny"]

    figures = cluster.topology(redis_url, scale, at, str(tmp_path))

    masters = figures["masters"]
    assert figures["journeys"]["bookings"] == scale.journeys  # every journey booked
    assert figures["booking"]["hops_per_booking"] == 9
    assert figures["sms"]["count"] == scale.journeys + scale.extra_sms  # every code SMS sent
    assert len(fake.delivered) >= figures["sms"]["count"]
    hop, booking_ = figures["ussd_hop"], figures["booking"]
    assert 0 < hop["redis_cpu_ms"] < booking_["redis_cpu_ms"]
    assert "evalsha" in hop["top_commands"] and hop["round_trips"] >= 2
    assert "script converse" in hop["by_script"] and hop["round_trip_floor_ms"] > 0
    for search in figures["search"].values():
        assert search["redis_cpu_ms"] > 0 and search["commands"] == 21  # SMEMBERS, 2 × 10 HMGET
    assert figures["search"]["many"]["centres_in_all"] == scale.other_centres + 10
    spread = figures["spread"]
    assert len(spread["keys"]) == len(spread["redis_cpu"]) == masters
    assert sum(spread["partitions"]) == pytest.approx(100, abs=0.5)
    assert figures["capacity"]["bookings_per_s"] > 0
    assert len(figures["capacity"]["redis_headroom_per_master"]) == masters
    audit = figures["race"]["audit"]
    assert audit["booked"] == figures["race"]["capacity"] and audit["overbooked"] == 0

    result = {
        "date": "2026-12-01T00:00:00+00:00",
        "duration_s": 1.0,
        "machine": {
            "cpu": "test",
            "cores": 2,
            "redis": "7",
            "loadavg_at_start": ["1", "1", "1"],
            "loadavg_at_end": ["1", "1", "1"],
        },
        "topologies": {"single": figures, "cluster": figures},
        "projection": cluster.projection(
            hop["redis_cpu_ms"], booking_["redis_cpu_ms"], figures["sms"]["redis_cpu_ms"]
        ),
    }
    result["targets"] = cluster.verdicts(result)
    page = cluster.markdown(result)
    for row in result["targets"]:
        assert row["single"] is not None and row["cluster"] is not None, row
        assert row["figure"] in page
    assert [r["met"] for r in result["targets"] if r["figure"].startswith("race")] == [True] * 4


def test_cowins_peak_needs_ten_masters_at_the_issues_targets_and_more_at_the_old_costs():
    at_targets = cluster.projection(hop_ms=0.12, booking_ms=1.2, sms_ms=0.06)
    before = cluster.projection(hop_ms=0.36, booking_ms=3.3, sms_ms=0.11)

    assert at_targets["bookings_per_s"] == pytest.approx(611.1, abs=0.1)  # 13.2M/day, 4x peak
    assert at_targets["masters"]["balanced"] == 10
    assert at_targets["masters"]["redis_cli"] > 10  # its even slot ranges hold 20 to 30 each
    assert before["masters"]["balanced"] > 25
    assert sum(cluster.redis_cli_split(3)) == keys.PARTITIONS


def test_the_committed_results_render_every_table_the_readme_shows():
    results = json.loads((Path(__file__).parents[1] / "bench" / "results.json").read_text())

    titles = [t.title for t in tables(results)]

    assert any(t.startswith("Partitioned keys") for t in titles)
    assert any(t.startswith("Outbound SMS") for t in titles)
    figures = {row["figure"] for row in results["cluster"]["targets"]}
    assert {"race, overbooked", "Redis CPU per USSD hop, ms"} <= figures
