"""Store layer: the appointment store against a real Redis: capacity, limits, codes, verify, dose,
outbox."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime, timedelta

import pytest
import redis

from flows.messages.sms import render_entry
from gateway import codes
from gateway.store import Outcome, Store, keys
from gateway.store.redisconn import from_url
from gateway.store.reference import load
from tests.partitions import outbox_entries, session_key

CITIZEN = "+919811111111"
VACCINATOR = "+919800000001"  # C100
OTHER_VACCINATOR = "+919800000002"  # C200
OTHER = "+919833333333"  # a mobile with nobody booked on it


_READERS = {
    "string": lambda r, key: r.get(key),
    "hash": lambda r, key: r.hgetall(key),
    "list": lambda r, key: r.lrange(key, 0, -1),
    "set": lambda r, key: r.smembers(key),
    "zset": lambda r, key: r.zrange(key, 0, -1, withscores=True),
    "stream": lambda r, key: r.xrange(key),
}


def snapshot(r: redis.Redis) -> dict:
    """Every key with its type and full value, to prove a refusal wrote nothing."""
    out = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        out[key] = (kind, _READERS[kind](r, key))
    return out


def outbox(r) -> list[dict]:
    return outbox_entries(r)


def session_id(store, centre="C100", offset=0):
    day = store.now().date() + timedelta(days=offset)
    return f"S{centre[1:]}-{day:%Y%m%d}"


def book(store, mobile=CITIZEN, name="Asha Devi", year=1990, offset=0, slot=0, **kw):
    return store.book(
        mobile=mobile,
        name=name,
        birth_year=year,
        session_id=session_id(store, offset=offset),
        slot=slot,
        **kw,
    )


def code_of(store, ref):
    return store.appointment(ref)["code"]


@pytest.fixture
def small_session(store):
    """One session today at C100 with a single slot of capacity 25."""
    today = store.today()
    load(
        store,
        {
            "centres": [
                {
                    "id": "C100",
                    "name": "PHC Saket",
                    "district": "South Delhi",
                    "state": "Delhi",
                    "pincode": "110017",
                }
            ],
            "sessions": [
                {
                    "id": "RACE",
                    "centre_id": "C100",
                    "date": today,
                    "vaccine": "COVISHIELD",
                    "min_age": 18,
                    "max_age": None,
                    "slots": [{"time": "09:00-11:00", "capacity": 25}],
                }
            ],
        },
    )
    return "RACE"


def _race(store, n, make_args):
    """Run n bookings at once, each thread with its own connection; return the outcomes."""
    results = [None] * n
    barrier = threading.Barrier(n, timeout=30)

    def worker(i):
        own = Store(from_url(store.settings.redis_url), store.settings, store.lifecycle)
        barrier.wait()
        results[i] = own.book(**make_args(i))
        own.r.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_200_concurrent_bookers_get_exactly_the_25_places(store, r, small_session):
    results = _race(
        store,
        200,
        lambda i: dict(
            mobile=f"+9198200{i:05d}",
            name=f"Person {i}",
            birth_year=1980,
            session_id=small_session,
            slot=0,
        ),
    )
    statuses = [o.status for o in results]
    assert statuses.count("ok") == 25
    assert statuses.count("full") == 175  # every loser is told "full"
    assert int(r.hget(session_key(r, small_session), "booked:0")) == 25
    assert store.availability("110017")[0]["open"] == 0
    assert len(outbox(r)) == 25  # one code SMS per booking, none for the losers


def test_concurrent_bookings_from_one_mobile_stop_at_four_beneficiaries(store, r, small_session):
    results = _race(
        store,
        40,
        lambda i: dict(
            mobile=CITIZEN,
            name=f"Family member {i}",
            birth_year=1960 + i,
            session_id=small_session,
            slot=0,
        ),
    )
    statuses = [o.status for o in results]
    assert statuses.count("ok") == 4
    assert statuses.count("too_many") == 36
    assert len(store.beneficiaries(CITIZEN)) == 4
    assert int(r.hget(session_key(r, small_session), "booked:0")) == 4


def test_a_replayed_booking_request_books_once_and_queues_one_sms(store, r, sample):
    first = book(store)
    again = book(store, name=" asha devi ")
    assert first.ok and again.status == "replay" and again.value == first.value
    assert len(outbox(r)) == 1
    assert int(r.hget(session_key(r, session_id(store)), "booked:0")) == 1


def test_the_confirmation_sms_carries_the_reference_and_the_code(store, r, sample):
    ref = book(store).value
    [entry] = outbox(r)
    assert entry["to"] == CITIZEN and entry["k"] == f"book:{ref}:0"
    text = render_entry(entry, store.settings.secret_key)
    assert re.search(rf"Ref {codes.format_reference(ref)} Code {code_of(store, ref)}\b", text)
    assert "PHC Saket" in text and "Asha Devi" in text


def test_one_open_booking_per_beneficiary_whatever_the_spelling(store, sample):
    ref = book(store).value
    assert book(store, name="  asha   DEVI ", offset=1) == Outcome("already_booked", ref)


@pytest.mark.parametrize("year,status", [(2015, "too_young"), (1990, "ok")])
def test_age_limits_are_checked_against_the_birth_year(store, sample, year, status):
    assert book(store, year=year).status == status


def test_refusals_write_nothing(store, r, sample):
    ref = book(store).value
    for i in range(3):
        book(store, name=f"Sibling {i}", year=1991 + i)
    before = snapshot(r)
    refusals = [
        book(store, name="Fifth person"),  # too_many
        book(store, slot=1),  # already_booked
        book(store, mobile="+919822222222", year=2015),  # too_young
        store.book(mobile=OTHER, name="X", birth_year=1990, session_id="NOPE", slot=0),
        store.book(mobile=OTHER, name="X", birth_year=1990, session_id=session_id(store), slot=7),
        store.cancel(mobile="+919822222222", ref=ref),  # someone else's booking
        store.verify(vaccinator=OTHER_VACCINATOR, ref=ref, code=code_of(store, ref)),
        store.verify(vaccinator="+919899999999", ref=ref, code=code_of(store, ref)),
        store.record_dose(vaccinator=VACCINATOR, ref=ref),  # not verified
        store.reissue(mobile="+919822222222", ref=ref),
    ]
    assert [o.status for o in refusals] == [
        "too_many",
        "already_booked",
        "too_young",
        "no_session",
        "no_slot",
        "not_found",
        "wrong_centre",
        "not_vaccinator",
        "not_verified",
        "not_found",
    ]
    # Only the vaccinator limit counts the two refused VERIFY/DOSE attempts.
    failures = {
        keys.verify_failures(c, v).encode()
        for c, v in (("C100", VACCINATOR), ("C200", OTHER_VACCINATOR))
    }
    assert {k: v for k, v in snapshot(r).items() if k not in failures} == before
    assert [r.zcard(k) for k in sorted(failures)] == [1, 1]


def test_a_full_slot_refuses_without_writing(store, r, small_session):
    for i in range(25):
        assert store.book(
            mobile=f"+9198300{i:05d}", name="P", birth_year=1980, session_id=small_session, slot=0
        ).ok
    before = snapshot(r)
    assert (
        store.book(
            mobile=CITIZEN, name="Late", birth_year=1980, session_id=small_session, slot=0
        ).status
        == "full"
    )
    assert snapshot(r) == before


# -- verify ---------------------------------------------------------------------------------


def test_verify_refuses_each_case_with_its_own_reason_and_changes_nothing(store, r, sample):
    today_ref = book(store).value
    tomorrow_ref = book(store, name="Ravi", year=1985, offset=1).value
    cancelled_ref = book(store, name="Meena", year=1988).value
    store.cancel(mobile=CITIZEN, ref=cancelled_ref)
    done_ref = book(store, name="Kiran", year=1979).value
    store.verify(vaccinator=VACCINATOR, ref=done_ref, code=code_of(store, done_ref))
    store.record_dose(vaccinator=VACCINATOR, ref=done_ref)

    before = snapshot(r)
    cases = {
        "wrong_centre": (OTHER_VACCINATOR, today_ref, code_of(store, today_ref)),
        "wrong_day": (VACCINATOR, tomorrow_ref, code_of(store, tomorrow_ref)),
        "cancelled": (VACCINATOR, cancelled_ref, "0000"),
        "already_vaccinated": (VACCINATOR, done_ref, "0000"),
        "not_found": (VACCINATOR, "1234567890", "0000"),
    }
    for reason, (who, ref, code) in cases.items():
        assert store.verify(vaccinator=who, ref=ref, code=code).status == reason
    # Nothing changed but the count of each number's refused attempts.
    failures = {
        keys.verify_failures(c, v).encode()
        for c, v in (("C100", VACCINATOR), ("C200", OTHER_VACCINATOR))
    }
    after = snapshot(r)
    assert {k: v for k, v in after.items() if k not in failures} == before
    assert {k: r.zcard(k) for k in failures} == {
        keys.verify_failures("C100", VACCINATOR).encode(): 4,
        keys.verify_failures("C200", OTHER_VACCINATOR).encode(): 1,
    }


def test_a_wrong_code_tells_the_attempts_left_and_the_fifth_locks_with_one_alert(store, r, sample):
    ref = book(store).value
    right = code_of(store, ref)
    wrong = f"{(int(right) + 1) % 10000:04d}"
    left = [store.verify(vaccinator=VACCINATOR, ref=ref, code=wrong) for _ in range(4)]
    assert [(o.status, o.value) for o in left] == [("wrong_code", str(n)) for n in (4, 3, 2, 1)]
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=wrong).status == "locked"
    assert store.appointment(ref)["state"] == "locked"
    # Locked: even the right code is refused, and no second alert is queued.
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=right).status == "locked"
    alerts = [e for e in outbox(r) if e["t"] == "sms.locked"]
    assert len(alerts) == 1 and alerts[0]["to"] == CITIZEN
    assert f"CODE {ref}" in render_entry(alerts[0], store.settings.secret_key)


def test_a_fresh_code_unlocks_and_the_old_code_no_longer_works(store, r, sample):
    ref = book(store).value
    old = code_of(store, ref)
    for _ in range(5):
        store.verify(vaccinator=VACCINATOR, ref=ref, code=f"{(int(old) + 1) % 10000:04d}")
    assert store.reissue(mobile=CITIZEN, ref=ref) == Outcome("ok", "1")
    appt = store.appointment(ref)
    assert appt["state"] == "booked"
    new = appt["code"]
    resent = [e for e in outbox(r) if e["t"] == "sms.code.new"][-1]
    assert f"Code {new}" in render_entry(resent, store.settings.secret_key)
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=new).ok
    assert store.appointment(ref)["att"] == "0"  # the right code clears the wrong ones


def _wrong(store, ref):
    return f"{(int(code_of(store, ref)) + 1) % 10000:04d}"


def test_a_fresh_code_never_resets_the_wrong_code_count(store, r, sample):
    ref = book(store).value
    for _ in range(5):
        store.verify(vaccinator=VACCINATOR, ref=ref, code=_wrong(store, ref))
    for wrong_so_far in (5, 6, 7):  # each fresh code buys one more try, not five
        assert store.reissue(mobile=CITIZEN, ref=ref).ok
        assert store.appointment(ref)["att"] == str(wrong_so_far)
        assert store.verify(vaccinator=VACCINATOR, ref=ref, code=_wrong(store, ref)) == Outcome(
            "locked", "0"
        )
    assert store.appointment(ref)["state"] == "locked"
    alerts = [e for e in outbox(r) if e["t"] == "sms.locked"]
    assert len(alerts) == 4  # the citizen hears of each lock


def test_at_most_three_fresh_codes_a_booking_a_day(store, r, sample, clock):
    ref = book(store, offset=2).value
    for version in ("1", "2", "3"):
        assert store.reissue(mobile=CITIZEN, ref=ref) == Outcome("ok", version)
    queued = len(outbox(r))
    before = snapshot(r)
    assert store.reissue(mobile=CITIZEN, ref=ref) == Outcome("limit", "3")
    assert snapshot(r) == before and len(outbox(r)) == queued
    clock.at("08:00", days=1)  # a new day, three more
    assert store.reissue(mobile=CITIZEN, ref=ref) == Outcome("ok", "4")


def _refuse_twenty_ways(store, r):
    """20 refused VERIFY/DOSE attempts from VACCINATOR, of every kind, at the clock's time."""
    mine = book(store).value
    other = store.book(
        mobile=CITIZEN,
        name="Ravi",
        birth_year=1985,
        session_id=session_id(store, centre="C200"),
        slot=0,
    ).value
    tomorrow = book(store, name="Kiran", year=1979, offset=1).value
    cancelled = book(store, name="Meena", year=1988).value
    store.cancel(mobile=CITIZEN, ref=cancelled)
    wrong = f"{(int(code_of(store, mine)) + 1) % 10000:04d}"
    attempts = (
        [("verify", codes.new_reference(), "1234")] * 6
        + [("verify", other, code_of(store, other))] * 3
        + [("verify", tomorrow, code_of(store, tomorrow))] * 3
        + [("verify", cancelled, "0000")] * 2
        + [("verify", mine, wrong)] * 2
        + [
            ("dose", mine, ""),
            ("dose", codes.new_reference(), ""),
            ("dose", other, ""),
            ("dose", tomorrow, ""),
        ]
    )
    seen = set()
    for kind, ref, code in attempts:
        if kind == "verify":
            seen.add(store.verify(vaccinator=VACCINATOR, ref=ref, code=code).status)
        else:
            seen.add(store.record_dose(vaccinator=VACCINATOR, ref=ref).status)
    assert seen == {
        "not_found",
        "wrong_centre",
        "wrong_day",
        "cancelled",
        "wrong_code",
        "not_verified",
    }
    return mine


def test_twenty_refused_attempts_of_any_kind_in_a_rolling_hour_refuse_the_number(
    store, r, sample, clock, caplog
):
    caplog.set_level("WARNING", logger="tikaline.store")
    mine = _refuse_twenty_ways(store, r)
    assert [m for m in caplog.messages if "event=vaccinator_limit" in m] == [
        "event=vaccinator_limit from=+9198******01 failures=20 window_s=3600"
    ]
    right = code_of(store, mine)
    outcome = store.verify(vaccinator=VACCINATOR, ref=mine, code=right)
    assert outcome == Outcome("blocked", "3600")  # even with the right code
    assert store.record_dose(vaccinator=VACCINATOR, ref=mine).status == "blocked"
    assert store.appointment(mine)["state"] == "booked"
    clock.advance(59 * 60)
    assert store.verify(vaccinator=VACCINATOR, ref=mine, code=right) == Outcome("blocked", "60")
    clock.advance(60)  # the oldest failure is now an hour old
    assert store.verify(vaccinator=VACCINATOR, ref=mine, code=right).ok
    # Another centre's vaccinator was never affected.
    assert store.verify(vaccinator=OTHER_VACCINATOR, ref=mine, code=right).status == "wrong_centre"


def test_refused_attempts_across_a_clock_hour_edge_never_exceed_twenty_an_hour(
    store, r, sample, clock
):
    clock.at("08:40")
    tried = []  # when an attempt was examined (not refused for the number's limit)
    for _ in range(150):  # one unknown ref every 72 s for three hours
        outcome = store.verify(vaccinator=VACCINATOR, ref=codes.new_reference(), code="1234")
        if outcome.status != "blocked":
            tried.append(int(clock()))
        clock.advance(72)
    assert len(tried) > 40  # the number recovers hour after hour...
    for t in tried:  # ...but no rolling hour holds more than 20 tries
        assert sum(1 for u in tried if t - 3600 < u <= t) <= 20


# -- dose -----------------------------------------------------------------------------------


def test_dose_needs_a_verify_first_and_confirms_exactly_once(store, r, sample):
    ref = book(store).value
    assert store.record_dose(vaccinator=VACCINATOR, ref=ref, batch="B7").status == "not_verified"
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=code_of(store, ref)).ok
    first = store.record_dose(vaccinator=VACCINATOR, ref=ref, batch="B7")
    second = store.record_dose(vaccinator=VACCINATOR, ref=ref, batch="B7")
    assert first.ok and json.loads(first.value) == {
        "name": "Asha Devi",
        "by": "1990",
        "cert": store.certificate_candidates(ref)[0],
    }
    assert second.status == "already_recorded" and second.value == json.loads(first.value)["cert"]
    confirmations = [e for e in outbox(r) if e["t"] == "sms.vaccinated"]
    assert len(confirmations) == 1
    text = render_entry(confirmations[0], store.settings.secret_key)
    assert codes.format_certificate(second.value) in text and "COVISHIELD" in text
    appt = store.appointment(ref)
    assert appt["state"] == "vaccinated" and appt["batch"] == "B7" and "code" not in appt
    assert store.centre_today("C100")["vaccinated"] == 1


def test_dose_at_another_centre_is_refused_even_after_verify(store, sample):
    ref = book(store).value
    store.verify(vaccinator=VACCINATOR, ref=ref, code=code_of(store, ref))
    assert store.record_dose(vaccinator=OTHER_VACCINATOR, ref=ref).status == "wrong_centre"


def test_a_verify_from_yesterday_does_not_allow_a_dose_today(store, sample, monkeypatch):
    ref = book(store).value
    store.verify(vaccinator=VACCINATOR, ref=ref, code=code_of(store, ref))
    store.r.hset(keys.appointment(ref), "verified_on", "2000-01-01")
    assert store.record_dose(vaccinator=VACCINATOR, ref=ref).status == "not_verified"


# -- cancel and the day being over ----------------------------------------------------------


def test_cancel_frees_the_slot_for_the_next_booker(store, r, small_session):
    refs = [
        store.book(
            mobile=f"+9198300{i:05d}", name="P", birth_year=1980, session_id=small_session, slot=0
        ).value
        for i in range(25)
    ]
    assert (
        store.book(
            mobile=CITIZEN, name="Late", birth_year=1980, session_id=small_session, slot=0
        ).status
        == "full"
    )
    assert store.cancel(mobile="+919830000003", ref=refs[3]).ok
    assert store.cancel(mobile="+919830000003", ref=refs[3]).status == "state"
    assert store.book(
        mobile=CITIZEN, name="Late", birth_year=1980, session_id=small_session, slot=0
    ).ok
    assert int(r.hget(session_key(r, small_session), "booked:0")) == 25
    assert [e["t"] for e in outbox(r)].count("sms.cancelled") == 1


def test_an_open_booking_whose_day_is_over_shows_missed_and_frees_the_beneficiary(
    store, sample, monkeypatch
):
    real_now = store.now()
    monkeypatch.setattr(store, "now", lambda: real_now)
    ref = book(store).value
    monkeypatch.setattr(store, "now", lambda: real_now + timedelta(days=1))
    assert store.appointment(ref)["shown_state"] == "missed"
    assert "code" not in store.appointment(ref)
    assert store.cancel(mobile=CITIZEN, ref=ref).status == "past"
    assert book(store, offset=0).ok  # a new booking for the same beneficiary
    assert store.appointment(ref)["state"] == "missed"


def test_a_past_session_cannot_be_booked(store, sample, monkeypatch):
    later = datetime.combine(
        date.today() + timedelta(days=30), datetime.min.time(), store.settings.tz
    )
    sid = session_id(store)
    monkeypatch.setattr(store, "now", lambda: later)
    assert (
        store.book(mobile=CITIZEN, name="A", birth_year=1990, session_id=sid, slot=0).status
        == "past"
    )


# -- the clock: slots whose end has passed ------------------------------------------------

SAKET_TIMES = ["09:00-11:00", "11:00-13:00", "14:00-16:00"]


def _open_today(store) -> list[str]:
    saket = next(c for c in store.availability("110017") if c["id"] == "C100")
    today = [s for s in saket["sessions"] if s["date"] == store.today()]
    return [slot["time"] for s in today for slot in s["slots"] if slot["open"] > 0]


@pytest.mark.parametrize(
    "hhmm, still_open",
    [
        ("08:00", SAKET_TIMES),
        ("10:30", SAKET_TIMES),
        ("11:00", SAKET_TIMES[1:]),
        ("15:59", SAKET_TIMES[2:]),
        ("23:47", []),
    ],
)
def test_a_slot_is_offered_and_booked_only_until_its_end(store, r, sample, clock, hhmm, still_open):
    clock.at(hhmm)
    assert _open_today(store) == still_open
    for i, time_ in enumerate(SAKET_TIMES):
        before = snapshot(r)
        outcome = book(store, mobile=f"+9198400000{i:02d}", slot=i)
        assert outcome.ok == (time_ in still_open), (time_, outcome)
        if not outcome.ok:
            assert outcome.status == "passed"
            assert [t for _, t in json.loads(outcome.value)] == still_open  # what is left
            assert snapshot(r) == before


def test_at_2347_today_has_nothing_open_and_tomorrow_everything(store, sample, clock):
    clock.at("23:47")
    saket = next(c for c in store.availability("110017") if c["id"] == "C100")
    by_date = {s["date"]: s["open"] for s in saket["sessions"]}
    assert by_date[store.today()] == 0
    assert min(v for d, v in by_date.items() if d > store.today()) == 70
    assert book(store, offset=1, slot=0).ok


def test_verify_and_dose_stay_open_after_the_slot_ends_but_only_on_its_day(store, sample, clock):
    early = book(store, slot=0).value  # booked at 08:00 for 09:00-11:00
    other = book(store, name="Ravi Kumar", slot=0).value
    tomorrow = book(store, name="Meena Devi", offset=1).value
    clock.at("23:47")  # people come late: the day is not over yet
    assert store.verify(vaccinator=VACCINATOR, ref=early, code=code_of(store, early)).ok
    assert store.record_dose(vaccinator=VACCINATOR, ref=early).ok
    assert (
        store.verify(vaccinator=VACCINATOR, ref=tomorrow, code=code_of(store, tomorrow)).status
        == "wrong_day"
    )
    code = code_of(store, other)
    clock.at("00:05", days=1)
    assert store.verify(vaccinator=VACCINATOR, ref=other, code=code).status == "wrong_day"
    assert store.record_dose(vaccinator=VACCINATOR, ref=other).status == "wrong_day"


# -- secrets at rest ------------------------------------------------------------------------


def test_no_security_code_is_stored_in_plain_text(store, r, sample):
    refs = [
        book(
            store, mobile=f"+91985000{i:04d}", name=f"Person {i}", year=1960 + i % 40, offset=i % 7
        ).value
        for i in range(60)
    ]
    for ref in refs[:10]:
        if store.appointment(ref)["date"] == store.today():
            store.verify(vaccinator=VACCINATOR, ref=ref, code=code_of(store, ref))
            store.record_dose(vaccinator=VACCINATOR, ref=ref)
    store.reissue(mobile="+919850000011", ref=refs[11])
    tokens = set()
    for _kind, value in snapshot(r).values():
        tokens |= set(re.findall(r"[0-9A-Za-z]+", repr(value)))  # whole words, not hex runs
    checked = 0
    for ref in refs:
        appt = store.appointment(ref)
        for version in range(int(appt["ver"]) + 1):
            code = codes.derive_code(store.settings.secret_key, ref, version)
            if re.fullmatch(r"(19|20)\d\d", code):
                continue  # a year: dates and birth years legitimately hold it
            assert code not in tokens, f"code of {ref} found in Redis"
            checked += 1
    assert checked > 40


# -- the lifecycle machine is the source of the scripts' rules -------------------------------


def test_scripts_follow_the_lifecycle_machine(store, sample):
    from flows import lifecycle

    assert lifecycle.sources("cancel") == ["booked", "locked", "verified"]
    assert lifecycle.OPEN_STATES == ["booked", "locked", "verified"]
    assert not lifecycle.can("record_dose", "booked")
    assert lifecycle.can("reissue", "locked")


def test_outbox_entries_are_complete_json(store, r, sample):
    book(store)
    [entry] = outbox(r)
    params = json.loads(entry["p"])
    assert set(params) == {"name", "centre", "address", "date", "time", "ref", "ver", "kid"}
    assert entry["l"] == "en"


def test_todays_counts_follow_a_verified_booking_through_lock_reissue_and_cancel(store, sample):
    ref = book(store).value
    right = code_of(store, ref)
    wrong = f"{(int(right) + 1) % 10000:04d}"
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=right).ok
    assert store.centre_today("C100")["verified"] == 1
    for _ in range(5):
        store.verify(vaccinator=VACCINATOR, ref=ref, code=wrong)
    assert store.appointment(ref)["state"] == "locked"
    assert store.centre_today("C100")["verified"] == 0  # locked is no longer verified
    assert store.reissue(mobile=CITIZEN, ref=ref).ok
    assert store.verify(vaccinator=VACCINATOR, ref=ref, code=code_of(store, ref)).ok
    assert store.centre_today("C100")["verified"] == 1
    assert store.cancel(mobile=CITIZEN, ref=ref).ok
    today = store.centre_today("C100")
    assert (today["booked"], today["verified"]) == (0, 0)


def test_four_people_per_mobile_counts_open_and_vaccinated_not_cancelled_or_missed(
    store, r, sample, clock
):
    asha = book(store, name="Asha Devi").value
    assert store.verify(vaccinator=VACCINATOR, ref=asha, code=code_of(store, asha)).ok
    assert store.record_dose(vaccinator=VACCINATOR, ref=asha).ok
    refs = {
        name: book(store, name=name, offset=1).value
        for name in ("Ravi Kumar", "Meena Kumari", "Arjun Singh")
    }
    assert book(store, name="Fifth Person", offset=1).status == "too_many"
    assert store.cancel(mobile=CITIZEN, ref=refs["Ravi Kumar"]).ok
    # A cancelled booking holds no place: someone else may have it...
    assert book(store, name="Fifth Person", offset=1).ok
    # ...and then the cancelled person would be a fifth.
    assert book(store, name="Ravi Kumar", offset=1).status == "too_many"
    # Bookings missed (their day over) hold no place; a dose had still does.
    clock.at("08:00", days=3)
    for name in ("Sixth Person", "Seventh Person", "Eighth Person"):
        assert book(store, name=name).ok, name
    assert book(store, name="Ninth Person").status == "too_many"
    assert book(store, name="Asha Devi", offset=1).ok  # one of the four may book again


# -- the youngest age any session takes -----------------------------------------------------


def _children(today, min_age=12, max_age=14, sid="K1") -> dict:
    """One centre near 110017 with one session for children of ``min_age``-``max_age``."""
    return {
        "centres": [
            {
                "id": "C9",
                "name": "School Camp",
                "district": "South Delhi",
                "state": "Delhi",
                "pincode": "110017",
                "address": "",
            }
        ],
        "sessions": [
            {
                "id": sid,
                "centre_id": "C9",
                "date": today.isoformat(),
                "vaccine": "COVAXIN",
                "min_age": min_age,
                "max_age": max_age,
                "slots": [{"time": "15:00-17:00", "capacity": 10}],
            }
        ],
        "vaccinators": [],
    }


def test_with_nothing_loaded_only_the_programme_age_is_refused(store):
    assert store.too_young(17) == 18
    assert store.too_young(18) is None


def test_the_refusal_age_is_the_lowest_minimum_of_the_sessions_loaded(store, sample):
    assert store.too_young(17) == 18
    load(store, _children(store.now().date()))
    assert store.too_young(11) == 12  # a refusal reads Redis again: never from an old copy
    assert store.too_young(12) is None
    assert store.too_young(17) is None


def test_a_session_with_no_minimum_age_lets_anyone_past_the_age_question(store):
    load(store, _children(store.now().date(), min_age=None, max_age=None))
    assert store.too_young(0) is None


def test_a_session_reloaded_for_older_people_raises_the_age_within_a_minute(store, r, clock):
    today = store.now().date()
    load(store, _children(today))
    assert store.too_young(13) is None
    # another process loads the same session for 18+
    other = Store(r, store.settings, store.lifecycle)
    load(other, _children(today, min_age=18, max_age=None))
    assert other.too_young(13) == 18
    clock.advance(61)  # this process's copy is over a minute old
    assert store.too_young(13) == 18
