"""Journey layer (the SMS webhook, real Redis): WALKIN books someone who came without a booking
into today's first open slot at the vaccinator's centre; the citizen gets the code, the
vaccinator the ref, and VERIFY and DOSE then work as for any booking. Every refusal says why
and changes nothing."""

from __future__ import annotations

import threading

import pytest

from flows import messages
from gateway import codes
from tests.conversation_helpers import (
    OTHER_VACCINATOR,
    VACCINATOR,
    Phone,
    appointments,
    booked_counts,
    last_template,
    last_text,
    load_data,
    outbox,
    ref_and_code,
    texts,
    tiny_data,
)
from tests.test_store import snapshot

WALKER = "+919811122222"  # the mobile of the person who walked in


def walk_in(vaccinator: Phone, r, settings, text: str = "WALKIN 98111 22222 Asha Devi 1990"):
    """Send a WALKIN; the vaccinator's reply."""
    vaccinator.sms(text)
    return last_text(r, settings, VACCINATOR)


def test_a_walk_in_gets_the_code_then_verify_and_dose_work(
    client, sample, r, settings, store, clock
):
    clock.at("10:00")  # 09:00-11:00 is on: the first slot still to come
    vaccinator, citizen = Phone(client, VACCINATOR), Phone(client, WALKER)

    reply = walk_in(vaccinator, r, settings)
    [ref] = appointments(r)
    shown = codes.format_reference(ref)
    assert reply == (
        f"Booked {shown}: Asha Devi (1990), today 09:00-11:00. Code sent to {WALKER}. "
        f"Then VERIFY {ref} <code>"
    )
    [code_sms] = texts(r, settings, WALKER)
    assert code_sms.startswith("TikaLine: Asha Devi booked at PHC Saket")
    assert ref_and_code(code_sms)[0] == ref
    code = ref_and_code(code_sms)[1]

    vaccinator.sms(f"VERIFY {ref} {code}")
    assert last_text(r, settings, VACCINATOR).startswith(f"Code OK. {shown}: Asha Devi, born 1990")
    vaccinator.sms("DOSE")
    cert = codes.format_certificate(store.certificate_candidates(ref)[0])
    assert last_text(r, settings, VACCINATOR).startswith("Dose recorded for Asha Devi (1990)")
    assert f"Certificate ID {cert}." in last_text(r, settings, WALKER)

    citizen.sms("STATUS")  # the walk-in is on the citizen's slip like any booking
    assert "Asha Devi" in last_text(r, settings, WALKER)
    vaccinator.sms("TODAY")
    assert "booked 1: 1 vaccinated" in last_text(r, settings, VACCINATOR)


def test_the_slot_is_the_first_still_to_come(client, sample, r, settings, clock):
    clock.at("13:30")  # 09:00-11:00 and 11:00-13:00 are over
    reply = walk_in(Phone(client, VACCINATOR), r, settings, "walk-in +91 98111-22222 Asha 1990")
    assert ", today 14:00-16:00. " in reply
    [appt] = appointments(r).values()
    assert (appt["sid"], appt["slot"], appt["mobile"]) == (
        f"S100-{clock.moment:%Y%m%d}",
        "2",
        WALKER,
    )


def test_the_next_slot_when_the_first_is_full(client, store, r, settings):
    data = tiny_data(store.now().date(), capacity=1)
    data["sessions"][0]["slots"].append({"time": "11:00-13:00", "capacity": 1})
    load_data(store, data)
    vaccinator = Phone(client, VACCINATOR)
    assert ", today 09:00-11:00. " in walk_in(vaccinator, r, settings)
    assert ", today 11:00-13:00. " in walk_in(
        vaccinator, r, settings, "WALKIN 9811133333 Ravi Kumar 1985"
    )


def test_hindi_the_citizens_language_for_the_code_the_vaccinators_for_the_reply(
    client, sample, r, settings
):
    vaccinator, citizen = Phone(client, VACCINATOR), Phone(client, WALKER)
    citizen.sms("LANG HI")
    walk_in(vaccinator, r, settings, "वॉकइन ९८१११ २२२२२ आशा देवी १९९०")
    assert last_template(r, VACCINATOR) == "vacc.walkin.booked"
    assert last_text(r, settings, VACCINATOR).startswith("Booked ")
    code_sms = last_text(r, settings, WALKER)
    assert code_sms.startswith("टीकालाइन: आशा देवी का टीका") and "कोड " in code_sms

    vaccinator.sms("LANG HI")  # a mobile with no language gets the vaccinator's
    reply = walk_in(vaccinator, r, settings, "WALKIN 9811133333 Ravi Kumar 1985")
    assert reply.startswith("बुकिंग ") and "आज 09:00-11:00" in reply
    assert last_text(r, settings, "+919811133333").startswith("टीकालाइन: Ravi Kumar का टीका")


def test_at_most_the_daily_limit_and_a_refused_booking_gives_its_count_back(
    client, sample, r, settings
):
    settings.walkin_daily_limit = 2
    vaccinator = Phone(client, VACCINATOR)
    walk_in(vaccinator, r, settings)
    assert walk_in(vaccinator, r, settings, "WALKIN 9811122222 asha  devi 1990").startswith(
        "asha devi already has booking"  # the same person: refused, not counted
    )
    walk_in(vaccinator, r, settings, "WALKIN 9811133333 Ravi Kumar 1985")
    queued = len(outbox(r))
    reply = walk_in(vaccinator, r, settings, "WALKIN 9811144444 Meena Kumari 1980")
    assert reply == "Walk-in limit reached: 2 a day from this number. Nothing was booked."
    assert len(appointments(r)) == 2 and len(outbox(r)) == queued + 1  # the reply alone
    assert texts(r, settings, "+919811144444") == []


def test_the_limit_holds_under_concurrency(store, sample, settings):
    settings.walkin_daily_limit = 5
    outcomes = []

    def one(i: int) -> None:
        outcomes.append(
            store.walk_in(
                vaccinator=VACCINATOR,
                centre_id="C100",
                mobile=f"+9198111{i:05d}",
                name="Asha Devi",
                birth_year=1990,
                session_id=f"S100-{store.now():%Y%m%d}",
                slot=0,
                lang="en",
                now=store.now(),
            ).status
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["limit"] * 7 + ["ok"] * 5
    assert booked_counts(store.r)[(f"S100-{store.now():%Y%m%d}", 0)][0] == 5


def test_a_full_day_is_refused(client, store, r, settings):
    load_data(store, tiny_data(store.now().date(), capacity=1))
    vaccinator = Phone(client, VACCINATOR)
    walk_in(vaccinator, r, settings)
    reply = walk_in(vaccinator, r, settings, "WALKIN 9811133333 Ravi Kumar 1985")
    assert reply == "No place left today: no slot still to come has room. Nothing was booked."
    assert len(appointments(r)) == 1


def test_a_slot_whose_end_has_come_is_not_booked(client, store, r, settings, clock):
    load_data(store, tiny_data(store.now().date(), capacity=5))
    clock.at("11:00")
    assert walk_in(Phone(client, VACCINATOR), r, settings).startswith("No place left today")
    assert appointments(r) == {}


def test_no_session_today(client, store, r, settings):
    data = tiny_data(store.now().date(), days=2)
    data["sessions"] = data["sessions"][1:]  # tomorrow only
    load_data(store, data)
    reply = walk_in(Phone(client, VACCINATOR), r, settings)
    assert reply == "No session at your centre today. Nothing was booked."
    assert appointments(r) == {}


def test_someone_outside_the_age_range_is_refused(client, store, r, settings):
    load_data(store, tiny_data(store.now().date()))
    year = store.now().year - 12
    reply = walk_in(Phone(client, VACCINATOR), r, settings, f"WALKIN 9811122222 Munni {year}")
    assert reply == (
        f"Munni (born {year}) is outside the age range of every session today. Nothing was booked."
    )
    assert appointments(r) == {} and texts(r, settings, WALKER) == []


def test_a_fifth_person_on_a_mobile_is_refused(client, sample, r, settings, store):
    for name in ("Asha Devi", "Ravi Kumar", "Meena Kumari", "Arjun Singh"):
        assert store.book(
            mobile=WALKER,
            name=name,
            birth_year=1990,
            session_id=f"S101-{store.now():%Y%m%d}",
            slot=1,
        ).ok
    settings.walkin_daily_limit = 1
    vaccinator = Phone(client, VACCINATOR)
    reply = walk_in(vaccinator, r, settings, "WALKIN 9811122222 Gita Rani 1990")
    assert reply == (
        f"{WALKER} already has 4 people booked or vaccinated: no more can be booked on it. "
        "Nothing was booked."
    )
    assert len(appointments(r)) == 4
    # Not counted: the one walk-in of the day is still there to make.
    assert walk_in(vaccinator, r, settings, "WALKIN 9811133333 Gita Rani 1990").startswith(
        "Booked "
    )


def test_a_person_with_an_open_booking_is_refused(client, sample, r, settings, store):
    tomorrow = store.now().date().toordinal() + 1
    ref = store.book(
        mobile=WALKER,
        name="Asha Devi",
        birth_year=1990,
        session_id=f"S100-{store.now().date().fromordinal(tomorrow):%Y%m%d}",
        slot=0,
    ).value
    reply = walk_in(Phone(client, VACCINATOR), r, settings)
    assert reply == (
        f"Asha Devi already has booking {codes.format_reference(ref)} on {WALKER} "
        "(one open booking each). STATUS from that mobile shows its code."
    )
    assert list(appointments(r)) == [ref]


def test_a_number_that_is_not_a_vaccinators_books_nothing(client, sample, r, settings):
    stranger = Phone(client, "+919811155555")
    stranger.sms("WALKIN 9811122222 Asha Devi 1990")
    assert last_template(r, stranger.number) == "vacc.not_vaccinator"
    assert appointments(r) == {} and texts(r, settings, WALKER) == []


USAGE = "vacc.walkin.usage"


@pytest.mark.parametrize(
    "text, reply",
    [
        ("WALKIN", USAGE),
        ("WALKIN Asha Devi 1990", USAGE),
        ("walkin: please", USAGE),
        ("WALKIN 12345 Asha Devi 1990", "vacc.walkin.bad_mobile"),
        ("WALKIN +14155550123 Asha Devi 1990", "vacc.walkin.bad_mobile"),  # another country
        ("WALKIN 011 2612 3456 Asha Devi 1990", "vacc.walkin.bad_mobile"),  # a landline
        ("WALKIN 5811122222 Asha Devi 1990", "vacc.walkin.bad_mobile"),  # no such mobile
        ("WALKIN 9811122222 1990", "vacc.walkin.bad_name"),
        ("WALKIN 9811122222 A5ha Devi 1990", "vacc.walkin.bad_name"),
        ("WALKIN 9811122222 " + "A" * 51 + " 1990", "vacc.walkin.bad_name"),
        ("WALKIN 9811122222 Asha Devi", "vacc.walkin.bad_year"),
        ("WALKIN 9811122222 Asha Devi 90", "vacc.walkin.bad_year"),
        ("WALKIN 9811122222 Asha Devi 1890", "vacc.walkin.bad_year"),
        ("WALKIN 9811122222 Asha Devi 2999", "vacc.walkin.bad_year"),
        ("WALKIN 9811122222 Asha Devi ²⁰²⁰", "vacc.walkin.bad_name"),
    ],
)
def test_bad_input_gets_the_usage_and_changes_nothing(client, sample, r, settings, text, reply):
    Phone(client, VACCINATOR).sms(text)
    assert last_template(r, VACCINATOR) == reply
    assert appointments(r) == {} and [e["to"] for e in outbox(r)] == [VACCINATOR]


def test_the_usage_replies_read_well(client, sample, r, settings, clock):
    vaccinator = Phone(client, VACCINATOR)
    assert walk_in(vaccinator, r, settings, "WALKIN") == (
        "Send WALKIN, the citizen's mobile, name and birth year, "
        "e.g. WALKIN 9876543210 Asha Devi 1990"
    )
    assert walk_in(vaccinator, r, settings, "WALKIN 12345 Asha 1990").startswith(
        "12345 is not a valid mobile number in this country. "
    )
    year = clock.moment.year
    assert walk_in(vaccinator, r, settings, "WALKIN 9811122222 Asha 90").startswith(
        f"The birth year: 4 digits from {year - 120} to {year}. "
    )
    assert messages.text("vacc.walkin.bad_name").startswith("The name: letters only")


def _walk_in(store, name: str = "Asha Devi", year: int = 1990, **kw):
    return store.walk_in(
        vaccinator=kw.pop("vaccinator", VACCINATOR),
        centre_id="C100",
        mobile=kw.pop("mobile", WALKER),
        name=name,
        birth_year=year,
        session_id=f"S100-{store.now():%Y%m%d}",
        slot=kw.pop("slot", 0),
        lang="en",
        now=store.now(),
    )


@pytest.mark.parametrize(
    "case", ["limit", "too_many", "already_booked", "too_young", "passed", "not_vaccinator"]
)
def test_a_refused_walk_in_writes_nothing(store, sample, r, settings, clock, case):
    settings.walkin_daily_limit = 1 if case == "limit" else 60
    if case == "limit":
        assert _walk_in(store, mobile="+919811133333").ok
    elif case == "too_many":
        for name in ("Asha Kumari", "Ravi Kumar", "Meena Kumari", "Arjun Singh"):
            assert _walk_in(store, name).ok
    elif case == "already_booked":
        assert _walk_in(store, slot=1).ok
    elif case == "passed":
        clock.at("11:30")
    before = snapshot(r)
    outcome = _walk_in(
        store,
        year=store.now().year - 10 if case == "too_young" else 1990,
        vaccinator=OTHER_VACCINATOR if case == "not_vaccinator" else VACCINATOR,
    )
    assert outcome.status == case
    assert snapshot(r) == before
