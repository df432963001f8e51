"""A centre calls off a session (``flask cancel-session``): nobody can book it again, each
open booking on it is cancelled by the centre, or moved to another day with ``--to-date``,
and each person is told once, in their language, with the reason and how to rebook."""

from __future__ import annotations

import json

import pytest

from flows.messages.sms import render_entry, segments
from gateway.store import keys
from gateway.store.reference import load
from tests.conversation_helpers import VACCINATOR, Phone, appointments, tiny_data
from tests.partitions import outbox_entries, session_key

EN, HI, OTHER = "+919811111111", "+919822222222", "+919833333333"
REASON = "Vaccine stock did not arrive"


@pytest.fixture
def cli(settings):
    from app import create_app

    return create_app({"SETTINGS": settings}).test_cli_runner()


def run(cli, *args: str):
    result = cli.invoke(args=["cancel-session", *args])
    assert "Traceback" not in result.output, result.output
    return result


def texts(r, settings, template: str) -> dict[str, list[str]]:
    """The SMS of ``template`` queued, by phone, as the handset shows them."""
    out: dict[str, list[str]] = {}
    for e in outbox_entries(r):
        if e["t"] == template:
            out.setdefault(e["to"], []).append(render_entry(e, settings.secret_key))
    return out


def session_of(store, days: int = 0, centre: str = "S100") -> str:
    day = store.now().date().fromordinal(store.now().date().toordinal() + days)
    return f"{centre}-{day:%Y%m%d}"


def book(store, mobile, name, session, lang="en"):
    outcome = store.book(
        mobile=mobile, name=name, birth_year=1990, session_id=session, slot=0, lang=lang
    )
    assert outcome.ok, outcome
    return outcome.value


def caps(r, session_id: str) -> list[int]:
    s = {k.decode(): v.decode() for k, v in r.hgetall(session_key(r, session_id)).items()}
    return [int(s[f"cap:{i}"]) for i in range(3) if f"cap:{i}" in s]


def test_calling_off_a_session_cancels_its_bookings_and_tells_each_person_once(
    r, store, sample, settings, cli, clock
):
    today = session_of(store)
    asha, ravi = book(store, EN, "Asha Devi", today), book(store, HI, "Ravi Kumar", today, "hi")
    gone = book(store, OTHER, "Gita Rani", today)
    assert store.cancel(mobile=OTHER, ref=gone).ok  # cancelled by herself before: not told
    clock.at("09:30")
    assert store.verify(vaccinator=VACCINATOR, ref=ravi, code=store.appointment(ravi)["code"]).ok

    result = run(cli, today, "--reason", "Vaccine stock did not arrive")
    assert result.exit_code == 0, result.output
    assert f"session {today} at C100 on {store.today()} is called off" in result.output
    assert "2 people told: 2 cancelled" in result.output

    appts = appointments(r)
    assert [appts[x]["state"] for x in (asha, ravi, gone)] == ["cancelled"] * 3
    assert [appts[x].get("cancelled_by") for x in (asha, ravi, gone)] == ["centre", "centre", None]
    sent = texts(r, settings, "sms.centre_cancelled")
    assert sent[EN] == [
        f"TikaLine: PHC Saket cancelled Asha Devi's booking {asha[:5]} {asha[5:]} on "
        f"{_day(store.today())}: {REASON}. Send BOOK to book another day."
    ]
    assert REASON in sent[HI][0] and "रद्द" in sent[HI][0] and OTHER not in sent
    # Nobody can book it: capacity 0 in the session, its slots shown full.
    assert caps(r, today) == [0, 0, 0]
    assert (
        store.book(mobile=OTHER, name="Mohan", birth_year=1990, session_id=today, slot=1).status
        == "full"
    )
    assert store.centre_today("C100")["open"] == 0
    assert store.centre_today("C100")["booked"] == store.centre_today("C100")["verified"] == 0

    again = run(cli, today, "--reason", REASON)  # repeated: nobody told twice
    assert again.exit_code == 0 and "0 people told" in again.output
    assert sum(map(len, texts(r, settings, "sms.centre_cancelled").values())) == 2
    load(store, sample)  # loading the data file again does not open it again
    assert caps(r, today) == [0, 0, 0]

    # The person may book again, another day; STATUS shows the booking cancelled.
    assert book(store, EN, "Asha Devi", session_of(store, 1))
    Phone(store_client(cli), HI).sms("STATUS")
    assert "Ravi Kumar: cancelled" in render_entry(outbox_entries(r)[-1], settings.secret_key)


def store_client(cli):
    return cli.app.test_client()


def _day(date: str, lang: str = "en") -> str:
    from flows import messages

    return messages.day(date, lang)


def test_moving_a_session_to_another_day_keeps_codes_and_cancels_who_does_not_fit(
    r, store, settings, cli, clock
):
    data = tiny_data(store.now().date(), capacity=2, days=2)
    data["sessions"][1]["slots"][0]["capacity"] = 1  # room for one of the two
    load(store, data)
    first, second = (s["id"] for s in data["sessions"])
    tomorrow = data["sessions"][1]["date"]
    asha = book(store, EN, "Asha Devi", first)
    clock.advance(60)  # Ravi books after Asha: the one place left goes to her
    ravi = book(store, HI, "Ravi Kumar", first, "hi")
    code = store.appointment(asha)["code"]

    result = run(cli, first, "--reason", "Vaccinator on leave", "--to-date", tomorrow)
    assert result.exit_code == 0, result.output
    assert f"2 people told: 1 cancelled, 1 moved to {tomorrow} ({second})" in result.output

    moved = store.appointment(asha)
    assert (moved["date"], moved["sid"], moved["state"], moved["code"]) == (
        tomorrow,
        second,
        "booked",
        code,
    )
    assert appointments(r)[ravi]["state"] == "cancelled"
    assert texts(r, settings, "sms.centre_moved")[EN] == [
        f"TikaLine: PHC Saket moved Asha Devi's booking {asha[:5]} {asha[5:]} to "
        f"{_day(tomorrow)}, 09:00-11:00: Vaccinator on leave. Same code. STATUS shows it."
    ]
    assert "Vaccinator on leave" in texts(r, settings, "sms.centre_cancelled")[HI][0]
    # Her record on the mobile holds the new day, so she cannot book twice; the slip shows it.
    record = json.loads(r.hget(keys.beneficiaries(EN), "asha devi"))
    assert (record["d"], record["sid"], record["s"]) == (tomorrow, second, "booked")
    assert (
        store.book(mobile=EN, name="Asha Devi", birth_year=1990, session_id=first, slot=0).status
        != "ok"
    )
    assert [s["date"] for s in store.slip(EN)] == [tomorrow]
    assert caps(r, first) == [0] and caps(r, second) == [1]
    assert store.availability("110017")[0]["open"] == 0
    again = run(cli, first, "--reason", "Vaccinator on leave", "--to-date", tomorrow)
    assert "0 people told" in again.output


@pytest.mark.parametrize(
    "reason, why",
    [
        ("x" * 61, "at most 60"),
        ("टीका नहीं आया", "Latin letters"),
        ("   ", "empty"),
        ("price 5€ [sic]", "cannot carry"),
    ],
)
def test_a_reason_an_sms_cannot_carry_is_refused_and_nothing_changes(
    reason, why, r, store, sample, cli
):
    today = session_of(store)
    ref = book(store, EN, "Asha Devi", today)
    result = run(cli, today, "--reason", reason)
    assert result.exit_code == 2 and why in result.output
    assert appointments(r)[ref]["state"] == "booked" and caps(r, today) == [25, 25, 20]


def test_a_reason_is_made_plain_and_keeps_the_sms_within_budget(r, store, sample, settings, cli):
    today = session_of(store)
    book(store, HI, "श्रीमती राधा कृष्णमूर्ति देवी शर्मा", today, "hi")
    book(store, EN, "Aishwarya Venkataraman Iyengar Subramaniam Krishna", today)
    typed = "Stock didn\u2019t arrive \u2014 sorry;\n come back  tomorrow " + "x" * 12
    assert run(cli, today, "--reason", typed).exit_code == 0
    sent = texts(r, settings, "sms.centre_cancelled")
    assert "Stock didn't arrive - sorry; come back tomorrow" in sent[EN][0]
    assert segments(sent[EN][0]) == ("gsm7", 2) and segments(sent[HI][0])[1] <= 4


@pytest.mark.parametrize(
    "args, said",
    [
        (["S999-20000101"], "no session S999-20000101"),
        (["S100-{ymd}", "--to-date", "{today}"], "no session with the same vaccine"),
        (["S101-{ymd}", "--to-date", "2000-01-01"], "no session with the same vaccine"),
    ],
)
def test_what_cannot_be_done_is_said_and_changes_nothing(args, said, r, store, sample, cli):
    ymd = session_of(store)[-8:]
    result = run(cli, *[a.format(ymd=ymd, today=store.today()) for a in args], "--reason", REASON)
    assert result.exit_code == 1 and said in result.output
    assert caps(r, session_of(store)) == [25, 25, 20]


def test_a_past_session_cannot_be_called_off(r, store, settings, cli, clock):
    load(store, tiny_data(store.now().date()))
    clock.at("08:00", days=1)
    session = f"S1-{store.now().date().toordinal() - 1}"
    result = run(cli, session, "--reason", REASON)
    assert result.exit_code == 1 and "that day is over" in result.output
