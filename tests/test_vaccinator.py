"""Journey layer (the SMS webhook, real Redis): vaccinator SMS: VERIFY with the citizen's code,
then DOSE; every refusal its own reply."""

from __future__ import annotations

from datetime import date

import pytest

from flows import messages
from gateway import codes
from gateway.store import keys
from tests.conversation_helpers import (
    OTHER_VACCINATOR,
    VACCINATOR,
    Phone,
    appointments,
    last_template,
    last_text,
    outbox,
    ref_and_code,
    texts,
)


def book_today(phone: Phone, r, settings, name: str = "Asha Devi", day: str = "1") -> tuple:
    """Book at PHC Saket (the first vaccinator's centre) over SMS; (ref, code)."""
    for text in ("BOOK 110017", name, "1990", "1", day, "1", "YES"):
        phone.sms(text)
    return ref_and_code(last_text(r, settings, phone.number))


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def label(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]} {day.day:02d}-{day.month:02d}"


def test_verify_then_dose_queues_the_confirmation_once(client, sample, r, settings, store):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    ref, code = book_today(citizen, r, settings)
    shown = codes.format_reference(ref)

    vaccinator.sms(f"verify {shown} {code}")
    assert last_text(r, settings, VACCINATOR) == (
        f"Code OK. {shown}: Asha Devi, born 1990, dose 1, slot 09:00-11:00. "
        f"After the jab send DOSE {ref}"
    )
    dose_id = vaccinator.sms(f"DOSE {ref} 4121Z015")
    cert = codes.format_certificate(store.certificate_candidates(ref)[0])
    assert last_text(r, settings, VACCINATOR) == (
        f"Dose recorded for Asha Devi (1990), {shown}. Certificate {cert}. "
        "The citizen gets it by SMS."
    )
    final = [t for t in texts(r, settings, citizen.number) if "Certificate ID" in t]
    assert final == [
        f"TikaLine: Asha Devi got dose 1 of COVISHIELD at PHC Saket, "
        f"{messages.day(appointments(r)[ref]['date'])}. Certificate ID {cert}. "
        "To check it: CERT + ID"
    ]
    assert appointments(r)[ref]["batch"] == "4121Z015"

    queued = len(outbox(r))
    vaccinator.sms(f"DOSE {ref} 4121Z015", dose_id)  # the provider retries the callback
    assert len(outbox(r)) == queued
    vaccinator.sms(f"DOSE {ref}")  # the vaccinator sends it again
    assert last_text(r, settings, VACCINATOR) == (
        f"Dose for {shown} is already recorded, certificate {cert}. Nothing sent again."
    )
    assert [t for t in texts(r, settings, citizen.number) if "Certificate ID" in t] == final


def test_dose_alone_records_the_booking_just_verified(client, sample, r, settings):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    ref, code = book_today(citizen, r, settings)
    vaccinator.sms(f"VERIFY {ref}{code}")  # ref and code typed without a space
    assert last_template(r, VACCINATOR) == "vacc.verified"
    vaccinator.sms("dose")
    assert last_text(r, settings, VACCINATOR).startswith(
        f"Dose recorded for Asha Devi (1990), {codes.format_reference(ref)}."
    )
    assert appointments(r)[ref]["state"] == "vaccinated"
    vaccinator.sms("DOSE")  # nothing verified any more: asks for the ref
    assert last_template(r, VACCINATOR) == "vacc.usage_dose"


def book_direct(store, name: str, year: int = 1990, mobile: str = "+919822200000") -> tuple:
    """Book today's first slot at PHC Saket through the store; (ref, code)."""
    ref = store.book(
        mobile=mobile, name=name, birth_year=year, session_id=f"S100-{store.now():%Y%m%d}", slot=0
    ).value
    return ref, store.appointment(ref)["code"]


def test_dose_alone_when_two_are_verified_asks_which_naming_both(
    client, sample, r, settings, store, clock
):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    y, y_code = book_direct(store, "Ravi Kumar", 1985)
    vaccinator.sms(f"VERIFY {x} {x_code}")
    clock.advance(60)
    vaccinator.sms(f"VERIFY {y} {y_code}")
    vaccinator.sms("DOSE")
    assert last_text(r, settings, VACCINATOR) == (
        "2 verified, not dosed. Send DOSE and a ref:\n"
        f"{codes.format_reference(x)} Asha Devi 1990\n{codes.format_reference(y)} Ravi Kumar 1985"
    )
    assert {appointments(r)[ref]["state"] for ref in (x, y)} == {"verified"}

    vaccinator.sms(f"DOSE {y}")
    assert last_text(r, settings, VACCINATOR).startswith(
        f"Dose recorded for Ravi Kumar (1985), {codes.format_reference(y)}. Certificate "
    )
    vaccinator.sms("DOSE")  # now only Asha Devi is waiting
    assert last_text(r, settings, VACCINATOR).startswith(
        f"Dose recorded for Asha Devi (1990), {codes.format_reference(x)}. Certificate "
    )
    assert {appointments(r)[ref]["state"] for ref in (x, y)} == {"vaccinated"}


def test_a_refused_verify_does_not_change_who_is_waiting(client, sample, r, settings, store):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    y, y_code = book_direct(store, "Ravi Kumar", 1985)
    vaccinator.sms(f"VERIFY {x} {x_code}")
    vaccinator.sms(f"VERIFY {y} {_wrong(y_code)}")
    vaccinator.sms("DOSE")
    assert last_text(r, settings, VACCINATOR).startswith(
        f"Dose recorded for Asha Devi (1990), {codes.format_reference(x)}."
    )
    assert (appointments(r)[x]["state"], appointments(r)[y]["state"]) == ("vaccinated", "booked")


def test_dose_alone_lists_three_waiting_and_how_many_more(
    client, sample, r, settings, store, clock
):
    vaccinator = Phone(client, VACCINATOR)
    names = [
        "Aishwarya Venkataraman Iyengar",
        "Asha Devi",
        "Ravi Kumar",
        "Meena Kumari",
        "Arjun Singh",
    ]
    for i, name in enumerate(names):
        ref, code = book_direct(store, name, 1980 + i, mobile=f"+91982220000{i}")
        vaccinator.sms(f"VERIFY {ref} {code}")
        clock.advance(60)
    vaccinator.sms("DOSE")
    reply = last_text(r, settings, VACCINATOR)
    assert reply.startswith("5 verified, not dosed. Send DOSE and a ref:\n")
    assert [line.split(" ", 2)[2] for line in reply.split("\n")[1:4]] == [
        "Aishwarya Venkataraman Iyengar 1980",
        "Asha Devi 1981",
        "Ravi Kumar 1982",
    ]
    assert reply.endswith("\nand 2 more")
    assert len(reply) <= 160
    assert not any(a["state"] == "vaccinated" for a in appointments(r).values())


def test_dose_alone_waits_thirty_minutes_after_verify(client, sample, r, settings, store, clock):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    vaccinator.sms(f"VERIFY {x} {x_code}")
    clock.advance(30 * 60 + 1)
    vaccinator.sms("DOSE")
    assert last_template(r, VACCINATOR) == "vacc.usage_dose"
    assert appointments(r)[x]["state"] == "verified"
    vaccinator.sms(f"DOSE {x}")  # with its ref it is still recorded the same day
    assert appointments(r)[x]["state"] == "vaccinated"

    y, y_code = book_direct(store, "Ravi Kumar", 1985)
    vaccinator.sms(f"VERIFY {y} {y_code}")
    clock.advance(29 * 60)
    vaccinator.sms("DOSE")
    assert last_text(r, settings, VACCINATOR).startswith("Dose recorded for Ravi Kumar (1985)")


@pytest.mark.parametrize(
    "batch, kept", [("AB-123/45", "AB-123/45"), ("4121Z015", "4121Z015"), ("b.77-x", "b.77-x")]
)
def test_dose_keeps_a_batch_with_dashes_or_slashes(client, sample, r, settings, store, batch, kept):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    vaccinator.sms(f"VERIFY {x} {x_code}")
    vaccinator.sms(f"DOSE {codes.format_reference(x)} {batch}")
    assert last_text(r, settings, VACCINATOR).startswith("Dose recorded for Asha Devi")
    assert appointments(r)[x]["batch"] == kept


@pytest.mark.parametrize("batch", ["AB<12>", "A" * 21, "AB 12 34", "AB_12"])
def test_dose_refuses_a_batch_too_long_or_with_odd_characters(
    client, sample, r, settings, store, batch
):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    vaccinator.sms(f"VERIFY {x} {x_code}")
    vaccinator.sms(f"DOSE {x} {batch}")
    assert last_text(r, settings, VACCINATOR).startswith("Send DOSE and the booking ref")
    assert appointments(r)[x]["state"] == "verified"


def test_one_attempt_left_is_singular(client, sample, r, settings, store):
    vaccinator = Phone(client, VACCINATOR)
    x, x_code = book_direct(store, "Asha Devi", 1990)
    for _ in range(4):
        vaccinator.sms(f"VERIFY {x} {_wrong(x_code)}")
    assert last_text(r, settings, VACCINATOR) == (
        f"Wrong code for {codes.format_reference(x)}. 1 attempt left."
    )


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("VERFY {ref} {code}", "VERIFY {ref} {code}"),
        ("verifi {ref} {code}", "VERIFY {ref} {code}"),
        ("D0SE", "DOSE"),
        ("DOES {ref}", "DOSE {ref}"),
        ("Todya", "TODAY"),
    ],
)
def test_a_near_miss_from_a_vaccinator_is_asked_back_and_changes_nothing(
    client, sample, r, settings, store, typed, meant
):
    vaccinator = Phone(client, VACCINATOR)
    ref, code = book_direct(store, "Asha Devi", 1990)
    vaccinator.sms(f"VERIFY {ref} {code}" if typed.startswith(("D0SE", "DOES")) else "HELP")
    state = appointments(r)[ref]["state"]
    vaccinator.sms(typed.format(ref=ref, code=code))
    assert last_text(r, settings, VACCINATOR) == (
        f"Did you mean {meant.format(ref=ref, code=code)}? Nothing was done; please send it "
        "again spelt that way."
    )
    assert appointments(r)[ref]["state"] == state


def test_a_near_miss_is_never_an_answer_to_the_vaccinators_own_booking(
    client, sample, r, settings, store
):
    vaccinator = Phone(client, VACCINATOR)
    ref, code = book_direct(store, "Asha Devi", 1990)
    vaccinator.sms("BOOK")
    conversation = r.get(keys.sms_conversation(VACCINATOR))
    vaccinator.sms(f"VERFY {ref} {code}")
    assert last_text(r, settings, VACCINATOR).startswith("Did you mean VERIFY")
    assert r.get(keys.sms_conversation(VACCINATOR)) == conversation  # still asks the name
    vaccinator.sms("LANG HI")
    vaccinator.sms("D0SE")
    assert last_text(r, settings, VACCINATOR) == (
        "क्या आपका मतलब DOSE था? कुछ दर्ज नहीं हुआ; कृपया इसी तरह लिखकर फिर भेजें।"
    )
    vaccinator.sms("Rose")  # a name, not a near miss: the booking goes on
    assert r.get(keys.sms_conversation(VACCINATOR)) != conversation
    assert "Rose" in r.get(keys.sms_conversation(VACCINATOR)).decode()


def test_a_citizen_typing_a_near_miss_gets_what_it_got_before(client, sample, r, settings):
    citizen = Phone(client)
    citizen.sms("D0SE")
    assert last_text(r, settings, citizen.number).startswith("TikaLine")
    assert "Did you mean" not in last_text(r, settings, citizen.number)


def _wrong(code: str) -> str:
    return "0000" if code != "0000" else "1111"


def test_each_refusal_has_its_own_reply(client, sample, r, settings, store):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    seen = {}

    def ask(text: str, phone: Phone = vaccinator) -> str:
        phone.sms(text)
        return last_text(r, settings, phone.number)

    ref, code = book_today(citizen, r, settings, "Asha Devi")
    shown = codes.format_reference(ref)

    seen["not_vaccinator"] = ask(f"VERIFY {ref} {code}", Phone(client, "+919877777777"))
    seen["not_found"] = ask(f"VERIFY {codes.new_reference()} 1234")
    seen["wrong_centre"] = ask(f"VERIFY {ref} {code}", Phone(client, OTHER_VACCINATOR))
    seen["not_verified"] = ask(f"DOSE {ref}")
    seen["wrong_code"] = ask(f"VERIFY {ref} {_wrong(code)}")
    assert seen["wrong_code"] == f"Wrong code for {shown}. 4 attempts left."
    for _ in range(3):
        ask(f"VERIFY {ref} {_wrong(code)}")
    seen["locked_now"] = ask(f"VERIFY {ref} {_wrong(code)}")
    seen["locked"] = ask(f"VERIFY {ref} {code}")  # even the right code, once locked
    assert appointments(r)[ref]["state"] == "locked"

    later, later_code = book_today(citizen, r, settings, "Ravi Kumar", day="2")
    seen["wrong_day"] = ask(f"VERIFY {later} {later_code}")

    cancelled, cancelled_code = book_today(citizen, r, settings, "Meena Kumari")
    citizen.sms(f"CANCEL {cancelled}")
    seen["cancelled"] = ask(f"VERIFY {cancelled} {cancelled_code}")

    done, done_code = book_today(citizen, r, settings, "Arjun Singh")
    ask(f"VERIFY {done} {done_code}")
    ask(f"DOSE {done}")
    seen["already_recorded"] = ask(f"DOSE {done}")
    seen["already_vaccinated"] = ask(f"VERIFY {done} {done_code}")

    other = Phone(client, "+919822222222")
    missed, missed_code = book_today(other, r, settings, "Sita Ram")
    r.hset(keys.appointment(missed), "state", "missed")  # as the end-of-day sweep marks it
    seen["missed"] = ask(f"VERIFY {missed} {missed_code}")

    # 20 refused attempts in an hour from one number block it, whatever the bookings.
    third = Phone(client, "+919833333333")
    for name in ("Kamla Devi", "Mohan Lal", "Rekha Rani"):
        target, target_code = book_today(third, r, settings, name)
        for _ in range(5):
            ask(f"VERIFY {target} {_wrong(target_code)}")
    seen["blocked"] = ask(f"VERIFY {target} {target_code}")

    later_day = date.fromisoformat(appointments(r)[later]["date"])
    label = f"{WEEKDAYS[later_day.weekday()]} {later_day.day:02d}-{later_day.month:02d}"
    expected = {
        "not_vaccinator": "TikaLine: this number is not a registered vaccinator. "
        "Citizens: send HELP.",
        "not_found": "No booking ",
        "wrong_centre": f"Booking {shown} is for another centre.",
        "not_verified": f"First send VERIFY {shown} and the citizen's code.",
        "locked_now": f"Wrong code. Booking {shown} is now locked; the citizen was told how "
        "to get a new code.",
        "locked": f"Booking {shown} is locked after wrong codes. The citizen must send CODE "
        f"{ref} for a new code.",
        "wrong_day": f"Booking {codes.format_reference(later)} is for {label}, not today.",
        "cancelled": f"Booking {codes.format_reference(cancelled)} was cancelled.",
        "already_recorded": f"Dose for {codes.format_reference(done)} is already recorded",
        "already_vaccinated": f"{codes.format_reference(done)} is already vaccinated.",
        "missed": f"Booking {codes.format_reference(missed)} was missed; its day is over.",
        "blocked": "Too many refused VERIFY/DOSE from this number in the last hour. Please "
        "try again in 60 min.",
    }
    for reason, start in expected.items():
        assert seen[reason].startswith(start), (reason, seen[reason])
    assert len(set(seen.values())) == len(seen)  # every refusal reads differently


@pytest.mark.parametrize(
    "text, reply",
    [
        ("VERIFY", "Send VERIFY, the booking ref and the 4-digit code"),
        ("VERIFY 12345", "TikaLine: 12345 is not a booking ref."),
        ("DOSE", "Send DOSE and the booking ref"),
        ("DOSE AB12 x", "TikaLine: AB12 x is not a booking ref."),
        ("HELP", "TikaLine vaccinator: VERIFY <ref> <code>, then DOSE <ref> [batch]. WALKIN"),
    ],
)
def test_vaccinator_usage_replies(client, sample, r, settings, text, reply):
    vaccinator = Phone(client, VACCINATOR)
    vaccinator.sms(text)
    assert last_text(r, settings, VACCINATOR).startswith(reply)


def test_verify_with_a_mistyped_ref_is_refused_before_counting_a_wrong_code(
    client, sample, r, settings
):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    ref, code = book_today(citizen, r, settings)
    typo = ref[:-1] + str((int(ref[-1]) + 1) % 10)
    vaccinator.sms(f"VERIFY {typo} {code}")
    assert "is not a booking ref" in last_text(r, settings, VACCINATOR)
    assert appointments(r)[ref].get("att", "0") == "0"
    assert r.exists(keys.verify_failures("C100", VACCINATOR)) == 0


def test_today_counts_each_person_once_and_only_slots_still_to_come(
    client, sample, r, settings, store, clock
):
    clock.at("12:00")  # 09:00-11:00 is over
    session = f"S100-{store.now():%Y%m%d}"
    refs = [
        store.book(
            mobile=f"+91981111111{i}", name=name, birth_year=1990, session_id=session, slot=1
        ).value
        for i, name in enumerate(("Asha Devi", "Ravi Kumar", "Meena Kumari"))
    ]
    vaccinator = Phone(client, VACCINATOR)
    for ref in refs[:2]:
        vaccinator.sms(f"VERIFY {ref} {store.appointment(ref)['code']}")
    vaccinator.sms(f"DOSE {refs[0]}")
    vaccinator.sms("today")
    # 25 + 20 places in the slots still to come, three of them booked.
    assert last_text(r, settings, VACCINATOR) == (
        f"Today at PHC Saket ({label(store.now().date())}): booked 3: 1 vaccinated, "
        "1 verified awaiting dose, 1 not verified. 42 places open."
    )

    clock.at("16:30")  # every slot is over
    vaccinator.sms("TODAY")
    assert last_text(r, settings, VACCINATOR).endswith(" 0 places open.")


def test_today_says_one_place_in_the_singular(client, store, r, settings):
    from tests.conversation_helpers import load_data, tiny_data

    load_data(store, tiny_data(store.now().date()))
    vaccinator = Phone(client, VACCINATOR)
    vaccinator.sms("TODAY")
    assert last_text(r, settings, VACCINATOR).endswith("not verified. 1 place open.")
    vaccinator.sms("LANG HI")
    vaccinator.sms("TODAY")
    assert last_text(r, settings, VACCINATOR).endswith("की जांच बाकी। 1 जगह अभी खाली।")
    store.book(
        mobile="+919811111111",
        name="Asha Devi",
        birth_year=1990,
        session_id=f"S1-{store.now().toordinal()}",
        slot=0,
    )
    vaccinator.sms("TODAY")
    assert last_text(r, settings, VACCINATOR).endswith("की जांच बाकी। 0 जगहें अभी खाली।")
