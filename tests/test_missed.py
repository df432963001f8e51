"""Missed appointments: once a booked day is over (IST), the outbox worker's sweep marks its
open bookings missed in Redis, counts them in the centre's day, and texts each person once,
in their language, offering to book again; the person can book again at once."""

from __future__ import annotations

import json

from flows import lifecycle
from flows.messages.sms import render_entry
from gateway.providers.console import kept_messages
from gateway.sample import sample_data
from gateway.store import keys, missed
from gateway.store.reference import load
from tests.conversation_helpers import VACCINATOR, Phone, appointments
from tests.outbox_helpers import running, wait_for
from tests.partitions import outbox_entries

EN, HI = "+919811111111", "+919822222222"


def book(store, mobile: str, name: str, days: int = 0, lang: str = "en") -> str:
    """A booking at PHC Saket (C100), first slot, ``days`` from the store's today."""
    day = store.now().date().toordinal() + days
    session = f"S100-{store.now().date().fromordinal(day):%Y%m%d}"
    outcome = store.book(
        mobile=mobile, name=name, birth_year=1990, session_id=session, slot=0, lang=lang
    )
    assert outcome.ok, outcome
    return outcome.value


def told(r, settings, phone: str) -> list[str]:
    """The "book again" SMS the worker sent to ``phone``, as the handset shows them."""
    return [
        render_entry(m, settings.secret_key)
        for m in kept_messages(r, phone)
        if m["t"] == "sms.missed"
    ]


def day_counts(r, date: str) -> dict[str, int]:
    raw = r.hgetall(keys.days("C100"))
    return {
        k.decode().split(":", 1)[1]: int(v) for k, v in raw.items() if k.decode().startswith(date)
    }


def sweep(store) -> tuple[int, int]:
    return missed.sweep(store.r, lifecycle.OPEN_STATES, store.now())


def test_a_day_over_marks_its_bookings_missed_and_tells_each_person_once(
    r, store, sample, settings, clock, client
):
    today = store.today()
    asha, ravi = book(store, EN, "Asha Devi"), book(store, HI, "Ravi Kumar", lang="hi")
    tomorrow = book(store, EN, "Gita Rani", days=1)
    clock.at("00:05", days=1)  # the booked day is over in IST
    # Two workers at once, as a deployment may run them: one SMS each all the same.
    with running(r, settings, lifecycle=lifecycle), running(r, settings, lifecycle=lifecycle):
        wait_for(lambda: told(r, settings, EN) and told(r, settings, HI), "the missed SMS")
    assert sweep(store) == (0, 0)  # a later sweep, or a restart, finds nothing to do
    assert told(r, settings, EN) == [
        f"TikaLine: Asha Devi missed the booking at PHC Saket on "
        f"{_shown(today)}. Send BOOK to book another day."
    ]
    [hindi] = told(r, settings, HI)
    assert "Ravi Kumar" in hindi and "छूट गई" in hindi and "BOOK भेजें" in hindi
    states = {ref: a["state"] for ref, a in appointments(r).items()}
    assert (states[asha], states[ravi], states[tomorrow]) == ("missed", "missed", "booked")
    assert day_counts(r, today) == {"booked": 2, "missed": 2}
    # STATUS shows the missed one as such; the person may book again at once.
    people = {k.decode(): json.loads(v) for k, v in r.hgetall(keys.beneficiaries(EN)).items()}
    assert people["asha devi"]["s"] == "missed"
    Phone(client, EN).sms("STATUS")
    slip = render_entry(outbox_entries(r)[-1], settings.secret_key)
    assert f"Asha Devi: missed, {_shown(today)}." in slip
    assert book(store, HI, "Ravi Kumar", days=1)


def _shown(date: str) -> str:
    from flows import messages

    return messages.day(date, "en")


def test_catching_up_after_days_away_marks_all_but_tells_only_recent_ones(
    r, store, settings, clock
):
    clock.at("08:00", days=-5)
    load(store, sample_data(store.now().date(), days=5))
    old = book(store, EN, "Asha Devi")
    recent = book(store, HI, "Ravi Kumar", days=4, lang="hi")  # yesterday, seen from today
    clock.at("08:00", days=5)
    assert sweep(store) == (2, 1)
    assert {ref: a["state"] for ref, a in appointments(r).items()} == {
        old: "missed",
        recent: "missed",
    }
    sms = [e for e in outbox_entries(r) if e["t"] == "sms.missed"]
    assert [(e["to"], e["l"]) for e in sms] == [(HI, "hi")]  # no stale offer for 5 days ago
    assert r.zcard(keys.open_by_day(keys.partition_of("C100"))) == 0


def test_cancelled_and_vaccinated_bookings_are_never_called_missed(r, store, sample, clock):
    cancelled, dosed = book(store, EN, "Asha Devi"), book(store, EN, "Ravi Kumar")
    assert store.cancel(mobile=EN, ref=cancelled).ok
    code = store.appointment(dosed)["code"]
    clock.at("10:00")
    assert store.verify(vaccinator=VACCINATOR, ref=dosed, code=code).ok
    assert store.record_dose(vaccinator=VACCINATOR, ref=dosed).ok
    clock.at("00:05", days=1)
    assert sweep(store) == (0, 0)
    assert not [e for e in outbox_entries(r) if e["t"] == "sms.missed"]
    assert {a["state"] for a in appointments(r).values()} == {"cancelled", "vaccinated"}


def test_a_booking_that_meets_a_missed_one_first_closes_it_the_same_way(r, store, sample, clock):
    first = book(store, EN, "Asha Devi")
    clock.at("09:00", days=1)
    again = book(store, EN, "Asha Devi")  # before any sweep: the record is settled first
    assert appointments(r)[first]["state"] == "missed"
    assert [e["to"] for e in outbox_entries(r) if e["t"] == "sms.missed"] == [EN]
    assert sweep(store) == (0, 0)  # told once, counted once
    assert day_counts(r, sample["sessions"][0]["date"]) == {"booked": 1, "missed": 1}
    assert appointments(r)[again]["state"] == "booked"


def test_the_first_runs_worker_sweeps_too(r, store, sample, settings, clock):
    """``python app.py`` runs the worker in its own process: it marks and tells as well."""
    from app import create_app
    from gateway.outbox import start_background

    book(store, EN, "Asha Devi")
    clock.at("00:05", days=1)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    handle = start_background(app, idle=0.05, rate=0)
    try:
        wait_for(lambda: told(r, settings, EN), "the missed SMS from the first run's worker")
    finally:
        handle.stop()
    assert [a["state"] for a in appointments(r).values()] == ["missed"]
