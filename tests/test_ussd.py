"""Journey layer: USSD journeys through ``/ussd`` with a real Redis: book, look up, cancel, go
back, resume a dropped session, and replays that change nothing."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

import pytest

from flows.messages.sms import render_entry
from gateway import codes
from gateway.store import Store, keys
from tests.conversation_helpers import (
    Phone,
    all_values,
    appointments,
    counting_round_trips,
    last_text,
    live_codes,
    load_data,
    out_of_memory_after,
    outbox,
    ref_and_code,
    set_maxmemory,
    texts,
    tiny_data,
)

MENU = "CON TikaLine vaccination\n1 Book\n2 My appointments\n3 Cancel\n4 भाषा/Language\n5 Help"


def book(phone: Phone, name: str = "Asha Devi", year: str = "1990", pin: str = "110017") -> str:
    """Dial and book the first centre, date and slot offered; the last screen."""
    phone.dial()
    return phone.press("1", name, year, pin, "1", "1", "1", "1")


def test_booking_over_ussd_queues_the_code_sms(client, sample, r, settings):
    phone = Phone(client)
    assert phone.dial() == MENU
    assert phone.press("1") == "CON Name of the person to vaccinate, as on their ID\n0 Back"
    assert phone.press("Asha Devi") == "CON Year of birth of Asha Devi\n0 Back"
    assert phone.press("1990") == "CON Pincode where Asha Devi will be vaccinated\n0 Back"
    centres = phone.press("110017")
    # Only centres with open capacity for this age: C102 takes 45+ only.
    assert centres == "CON Centres near 110017\n1 PHC Saket\n0 Back"
    dates = phone.press("1")
    assert dates.startswith("CON PHC Saket\n1 ") and dates.count("\n") == 8  # 7 days + back
    slots = phone.press("1")
    assert "\n1 09:00-11:00\n2 11:00-13:00\n3 14:00-16:00\n0 Back" in slots
    confirm = phone.press("2")
    assert confirm.startswith("CON Book Asha Devi (1990)\nPHC Saket\n")
    assert confirm.endswith("11:00-13:00\n1 Yes 2 No 0 Back")
    done = phone.press("1")
    assert done.startswith("END Booked Asha Devi. Ref ")

    sms = last_text(r, settings, phone.number)
    ref, code = ref_and_code(sms)
    assert codes.format_reference(ref) in done
    assert "PHC Saket" in sms and "11:00-13:00" in sms
    appt = appointments(r)[ref]
    assert appt["state"] == "booked" and appt["mobile"] == phone.number
    assert appt["check"] == codes.code_check(settings.secret_key, ref, code)


@pytest.mark.parametrize(
    "steps, junk, hint",
    [
        ([], "7", "Choose a number from the list."),
        (["1"], "Asha 2", "Name: letters only, up to 50."),
        (["1"], "A" * 51, "Name: letters only, up to 50."),
        (["1", "Asha Devi"], "90", "Year of birth: 4 digits, e.g. 1985."),
        (["1", "Asha Devi"], "1776", "Year of birth: 4 digits, e.g. 1985."),
        (["1", "Asha Devi", "1990"], "11001", "Pincode: 6 digits."),
        (
            ["1", "Asha Devi", "1990"],
            "999999",
            "No open slots near 999999 for this age in the next 7 days.",
        ),
        (["1", "Asha Devi", "1990", "110017"], "5", "Choose a number from the list."),
        (["1", "Asha Devi", "1990", "110017", "1"], "8", "Choose a number from the list."),
        (["1", "Asha Devi", "1990", "110017", "1", "1"], "x", "Choose a number from the list."),
        (["1", "Asha Devi", "1990", "110017", "1", "1", "1"], "5", "Reply 1, 2 or 0."),
        (["2"], "7", "Reply 0."),
    ],
)
def test_invalid_input_shows_the_same_screen_with_a_one_line_hint(
    client, sample, r, steps, junk, hint
):
    phone = Phone(client)
    phone.dial()
    screen = phone.press(*steps) if steps else MENU
    before = len(outbox(r))
    assert phone.press(junk) == f"CON {hint}\n{screen[4:]}"
    assert len(outbox(r)) == before
    # The hint goes once the answer is right: the flow was not derailed by the junk.
    if steps == ["1"]:
        assert phone.press("Asha Devi") == "CON Year of birth of Asha Devi\n0 Back"


def test_zero_goes_back_and_double_zero_to_the_main_menu(client, sample):
    phone = Phone(client)
    phone.dial()
    year = phone.press("1", "Asha Devi")
    phone.press("1990")
    assert phone.press("0") == year
    assert phone.press("0") == "CON Name of the person to vaccinate, as on their ID\n0 Back"
    assert phone.press("0") == MENU
    phone.press("1", "Asha Devi", "1990", "110017")
    assert phone.press("00") == MENU
    assert phone.press("1").startswith("CON Name of the person")


def test_a_star_typed_inside_an_answer_stays_in_that_answer(client, sample):
    phone = Phone(client)
    phone.dial()
    phone.press("1")
    # The network joins inputs with "*": "1*Asha*Devi" is the answer "Asha*Devi", not two.
    assert phone.press("Asha*Devi").startswith("CON Name: letters only")
    assert phone.press("Asha Devi") == "CON Year of birth of Asha Devi\n0 Back"


def test_a_repeated_hop_gets_the_same_screen_and_books_once(client, sample, r, settings):
    phone = Phone(client)
    phone.dial()
    confirm = phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1")
    assert phone.again() == confirm  # a repeated middle hop changes nothing
    done = phone.press("1")
    queued = len(outbox(r))
    for _ in range(3):
        assert phone.again() == done
    assert len(appointments(r)) == 1
    assert len(outbox(r)) == queued == 1


def test_an_older_hop_arriving_late_changes_nothing(client, sample, r):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi")
    current = phone.press("1990")
    phone.inputs = phone.inputs[:1]  # the "1" hop again, after "Asha Devi" and "1990"
    assert phone.again() == current
    phone.inputs = ["1", "Asha Devi", "1990"]
    assert phone.press("110017").startswith("CON Centres near 110017")


def test_same_session_id_from_another_number_changes_nothing(client, sample, r):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi")
    intruder = Phone(client, "+919822222222")
    intruder.session, intruder.inputs = phone.session, list(phone.inputs)
    # A session is kept per number: the intruder starts afresh and sees nobody's answers.
    assert intruder.press("1990").startswith("CON TikaLine vaccination\n1 Book")
    assert phone.press("1990").startswith("CON Pincode")


def test_a_dropped_booking_is_offered_again_on_the_next_dial(client, sample, r):
    phone = Phone(client)
    phone.dial()
    slots = phone.press("1", "Asha Devi", "1990", "110017", "1", "1")
    # The caller drops; no end-of-session notice is needed for the offer.
    assert phone.dial() == "CON You were booking for Asha Devi.\n1 Continue\n2 Main menu"
    assert phone.press("1") == slots
    assert phone.press("1", "1").startswith("END Booked Asha Devi.")
    assert phone.dial() == MENU  # nothing left to resume once booked


def test_a_dropped_booking_can_be_declined(client, sample):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990")
    assert phone.dial().startswith("CON You were booking for Asha Devi.")
    assert phone.press("2") == MENU
    assert phone.dial() == MENU


def test_the_end_of_session_notice_keeps_the_offer_when_the_pointer_is_gone(client, sample, r):
    phone = Phone(client)
    phone.dial()
    pincode = phone.press("1", "Asha Devi", "1990")
    r.delete(keys.resume(phone.number))
    assert phone.hang_up("Incomplete").status_code == 200
    assert phone.dial().startswith("CON You were booking for Asha Devi.")
    assert phone.press("1") == pincode


def test_my_appointments_shows_the_code_of_each_open_booking(client, sample, r, settings):
    phone = Phone(client)
    book(phone, "Asha Devi")
    book(phone, "Ravi Kumar", "1985")
    sms = texts(r, settings, phone.number)
    (ref_a, code_a), (ref_b, code_b) = ref_and_code(sms[0]), ref_and_code(sms[1])
    phone.dial()
    first = phone.press("2")
    assert first.startswith("CON 1/2 ")
    assert "1 Next\n0 Back" in first
    second = phone.press("1")
    assert second.startswith("CON 2/2 ") and second.endswith("\n0 Back")
    shown = {re.search(r"Ref (\d{5} \d{5}) Code (\d{4})", s).groups() for s in (first, second)}
    assert shown == {
        (codes.format_reference(ref_a), code_a),
        (codes.format_reference(ref_b), code_b),
    }
    assert phone.press("0") == first
    assert phone.press("0") == MENU


def test_cancel_over_ussd_frees_the_slot_for_the_next_caller(client, store, r, settings):
    load_data(store, tiny_data(store.now().date(), capacity=1))
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    assert book(asha).startswith("END Booked")
    ravi.dial()
    full = ravi.press("1", "Ravi Kumar", "1985", "110017")
    assert full.startswith("CON No open slots near 110017")

    asha.dial()
    pick = asha.press("3")
    assert pick.startswith("CON Cancel which booking?\n1 Asha Devi ")
    confirm = asha.press("1")
    assert confirm.startswith("CON Cancel the booking of Asha Devi?\nPHC Saket\n")
    done = asha.press("1")
    assert done.startswith("END Cancelled: Asha Devi, ref ")
    assert "is cancelled and the slot freed" in last_text(r, settings, asha.number)

    assert book(ravi, "Ravi Kumar", "1985").startswith("END Booked Ravi Kumar.")


def test_nothing_to_cancel_says_so(client, sample):
    phone = Phone(client)
    phone.dial()
    assert phone.press("3") == "CON No booking on this number can be cancelled.\n0 Back"
    assert phone.press("0") == MENU


def test_language_choice_switches_the_menu_and_is_kept(client, sample, r, settings):
    phone = Phone(client)
    phone.dial()
    assert phone.press("4") == "CON Language/भाषा\n1 English\n2 हिन्दी\n0 Back"
    hindi = phone.press("2")
    assert hindi.startswith("CON टीकालाइन टीकाकरण\n1 बुक करें")
    assert phone.dial() == hindi
    phone.sms("HELP")
    assert last_text(r, settings, phone.number).startswith("टीकालाइन:")


def test_the_last_slot_taken_while_confirming_is_said_plainly(client, store, r):
    load_data(store, tiny_data(store.now().date(), capacity=1))
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    for phone, name in ((asha, "Asha Devi"), (ravi, "Ravi Kumar")):
        phone.dial()
        assert phone.press("1", name, "1990", "110017", "1", "1", "1").startswith("CON Book")
    assert asha.press("1").startswith("END Booked")
    late = ravi.press("1")
    # Nothing left anywhere near: said so, with the pincode question to try another.
    assert late.startswith(
        "CON No open slots near 110017 for this age in the next 7 days.\nPincode where Ravi Kumar"
    )
    assert ravi.press("0").startswith("CON Year of birth of Ravi Kumar")
    assert len(appointments(r)) == 1


def test_a_slot_filled_while_confirming_shows_the_slots_still_open(client, store, r):
    data = tiny_data(store.now().date(), capacity=1)
    data["sessions"][0]["slots"].append({"time": "11:00-13:00", "capacity": 1})
    load_data(store, data)
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    for phone, name in ((asha, "Asha Devi"), (ravi, "Ravi Kumar")):
        phone.dial()
        assert phone.press("1", name, "1990", "110017", "1", "1", "1").startswith("CON Book")
    assert asha.press("1").startswith("END Booked")
    late = ravi.press("1")
    assert late.startswith("CON That slot just filled up. Choose another.\nPHC Saket, ")
    assert late.endswith("\n1 11:00-13:00\n0 Back")
    assert ravi.press("1", "1").startswith("END Booked Ravi Kumar.")


def test_a_day_filled_after_the_dates_were_shown_is_refused_at_confirm(client, store, r):
    # The slots shown come from when the centre was picked; the booking itself re-checks.
    load_data(store, tiny_data(store.now().date(), capacity=1, days=2))
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    ravi.dial()
    assert ravi.press("1", "Ravi Kumar", "1985", "110017", "1").startswith("CON PHC Saket\n1 ")
    assert book(asha).startswith("END Booked")
    assert "\n1 09:00-11:00\n" in ravi.press("1")
    assert ravi.press("1").startswith("CON Book Ravi Kumar")
    late = ravi.press("1")
    # The day is full: the other days of that centre, the full one left out.
    assert late.startswith("CON That day just filled up. Choose another.\nPHC Saket\n1 ")
    assert late.count("\n") == 3
    assert ravi.press("1", "1", "1").startswith("END Booked Ravi Kumar.")
    assert len(appointments(r)) == 2


def test_a_booking_kept_before_slots_were_stored_with_its_dates_still_books(client, sample, r):
    # Conversations stored by the previous release list dates without their slots.
    phone = Phone(client)
    phone.dial()
    assert phone.press("1", "Asha Devi", "1990", "110017", "1").startswith("CON PHC Saket\n1 ")
    key = keys.ussd_session(phone.number, phone.session)
    conv = json.loads(r.get(key))
    conv["d"]["dates"] = [d[:2] for d in conv["d"]["dates"]]
    del conv["d"]["at"]  # nor when they were read
    r.set(key, json.dumps(conv))
    assert "\n1 09:00-11:00\n2 11:00-13:00\n3 14:00-16:00\n0 Back" in phone.press("1")
    assert phone.press("1", "1").startswith("END Booked Asha Devi.")


def test_help_screen_and_back(client, sample):
    phone = Phone(client)
    phone.dial()
    assert phone.press("5").startswith("CON Book, see your codes or cancel here.")
    assert phone.press("0") == MENU


def test_a_hop_costs_at_most_five_redis_round_trips(client, sample, monkeypatch, capsys):
    book(Phone(client, "+919833333333"))  # load the scripts once: NOSCRIPT costs extra once
    Phone(client, "+919833333333").dial()
    phone = Phone(client)
    trips = []
    with counting_round_trips(monkeypatch) as sent:
        for step in [
            None,
            "1",
            "Asha Devi",
            "1990",
            "110017",
            "1",
            "1",
            "1",
            "x",
            "0",
            "1",
            "1",
            "again",
            None,
            "2",
            "1",
            "0",
            "3",
            "1",
            "0",
            "00",
            "4",
            "1",
        ]:
            before = len(sent)
            if step is None:
                phone.dial()
            elif step == "again":
                phone.again()
            else:
                phone.press(step)
            trips.append((step, len(sent) - before))
    # Read the hop, commit it; the booking's confirm adds its three steps in two buckets
    # (store/booking.py), a list of centres its two reads (the pincode, each centre's week).
    assert max(n for _, n in trips) <= 5, trips
    assert dict(trips)["again"] == 1  # a replay is read and answered, nothing else
    with capsys.disabled():
        print(f"\nRedis round trips per USSD hop: {trips}")


def test_no_security_code_is_stored_in_redis(client, sample, r, settings):
    phone = Phone(client)
    book(phone)
    book(phone, "Ravi Kumar", "1985")
    phone.dial()
    phone.press("2")  # the slip with codes, stored for replays
    phone.again()
    phone.sms("STATUS")
    phone.sms("BOOK 110017")
    current = live_codes(r, settings.secret_key)
    assert len(current) == 2
    # Everything a caller could be shown renders with the codes...
    assert all(
        any(c in render_entry(e, settings.secret_key) for c in current)
        for e in outbox(r)
        if e["t"] in ("sms.booked", "sms.slip")
    )
    # ...yet no value in Redis holds one as a number of its own.
    benign = {"1990", "1985", str(sample["sessions"][0]["date"][:4])}
    for value in all_values(r):
        found = set(re.findall(r"(?<![0-9A-Za-z])\d{4}(?![0-9A-Za-z])", value))
        assert not (found & (current - benign)), value


def test_a_hop_repeated_at_the_same_moment_books_once(client, sample, r, settings):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1")
    text = "*".join(phone.inputs + ["1"])
    start = threading.Barrier(8)
    bodies = []

    def hop():
        start.wait()
        response = client.application.test_client().post(
            "/ussd",
            data={
                "sessionId": phone.session,
                "serviceCode": "*384*1#",
                "phoneNumber": phone.number,
                "text": text,
            },
        )
        bodies.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=hop) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(appointments(r)) == 1
    assert len(outbox(r)) == 1
    assert len(set(bodies)) == 1 and bodies[0].startswith("END Booked Asha Devi. Ref ")


def test_someone_under_eighteen_is_told_right_after_the_birth_year(client, sample, store):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Chhotu Kumar")
    young = str(store.now().year - 17)
    screen = phone.press(young)
    assert screen.startswith("CON Only people aged 18 or more can book")
    assert screen.endswith("Year of birth of Chhotu Kumar\n0 Back")
    adult = str(store.now().year - 18)  # turns 18 this year: the sessions count years too
    assert phone.press(adult).startswith("CON Pincode where Chhotu Kumar")


def test_a_child_can_book_a_session_for_children_and_sees_only_those(client, sample, store):
    from tests.test_store import _children

    adult = Phone(client, "+919833333333")
    adult.dial()
    adult.press("1", "Asha Devi", "1990")  # the age question answered once before the load
    load_data(store, _children(store.now().date()))
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Chhotu Kumar")
    too_young = phone.press(str(store.now().year - 8))
    assert too_young.startswith("CON Only people aged 12 or more can book")
    assert phone.press(str(store.now().year - 13)).startswith("CON Pincode where Chhotu")
    assert phone.press("110017") == "CON Centres near 110017\n1 School Camp\n0 Back"
    assert "15:00-17:00" in phone.press("1", "1")


def test_the_age_question_costs_no_extra_round_trip(client, sample, monkeypatch):
    book(Phone(client, "+919833333333"))  # load the scripts once: NOSCRIPT costs extra once
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi")
    with counting_round_trips(monkeypatch) as sent:
        assert phone.press("1990").startswith("CON Pincode where Asha Devi")
    assert len(sent) == 2  # the hop's read and its commit


def test_a_birth_year_still_to_come_is_called_that(client, sample, store):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi")
    future = str(store.now().year + 1)
    assert phone.press(future).startswith(f"CON {future} has not come yet.")


def test_cancel_confirm_offers_yes_and_no_like_the_booking_confirm(client, sample, r):
    phone = Phone(client)
    book(phone)
    phone.dial()
    phone.press("3")
    confirm = phone.press("1")
    assert confirm.endswith("\n1 Yes 2 No 0 Back")
    kept = phone.press("2")
    assert kept.startswith("END Not cancelled: Asha Devi keeps the booking")
    assert [a["state"] for a in appointments(r).values()] == ["booked"]
    phone.dial()
    phone.press("3", "1")
    assert phone.press("1").startswith("END Cancelled: Asha Devi")


def test_a_wrong_key_on_page_two_shows_page_two_again(client, store):
    from tests.test_budgets import worst_data

    load_data(store, worst_data(store.now().date()))
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1", "1")
    page_two = phone.press("9")  # the second page of a day's eight slots
    for junk in ("x", "8", "99"):
        assert phone.press(junk) == f"CON Choose a number from the list.\n{page_two[4:]}"


def test_devanagari_zero_goes_back_and_double_zero_to_the_main_menu(client, sample):
    phone = Phone(client)
    phone.dial()
    name = phone.press("1")
    phone.press("Asha Devi")
    assert phone.press("०") == name
    phone.press("Asha Devi", "1990")
    assert phone.press("००") == MENU


def test_the_last_of_my_appointments_hints_only_the_key_it_offers(client, sample):
    phone = Phone(client)
    book(phone, "Asha Devi")
    book(phone, "Ravi Kumar", "1985")
    phone.dial()
    first = phone.press("2")
    assert phone.press("7") == f"CON Reply 1 or 0.\n{first[4:]}"  # "1 Next" is offered here
    last = phone.press("1")
    for junk in ("7", "1"):
        assert phone.press(junk) == f"CON Reply 0.\n{last[4:]}"
    phone.press("0", "0", "4", "2")  # हिन्दी
    phone.dial()
    phone.press("2", "1")
    assert phone.press("1").startswith("CON 0 दबाएँ।\n2/2 ")


def test_my_appointments_shows_open_bookings_before_cancelled_ones(client, sample, r):
    phone = Phone(client)
    book(phone, "Asha Devi")
    book(phone, "Ravi Kumar", "1985")
    phone.dial()
    phone.press("3", "1", "1")  # Asha's, the first listed, is cancelled
    phone.dial()
    first = phone.press("2")
    assert first.startswith("CON 1/2 Ravi Kumar\n") and " Code " in first
    assert phone.press("1").startswith("CON 2/2 Asha Devi\n")


# -- time: only slots that can still be used, read again when the list is old ---------------


def _day(d) -> str:
    return f"{d:%a} {d:%d-%m}"


def test_at_2347_today_is_not_offered_and_at_1030_its_slots_not_yet_over_are(
    client, sample, store, clock
):
    clock.at("23:47")
    phone = Phone(client)
    phone.dial()
    dates = phone.press("1", "Asha Devi", "1990", "110017", "1")
    today = store.now().date()
    assert _day(today) not in dates and dates.count("\n") == 7  # 6 days + back
    assert dates.startswith(f"CON PHC Saket\n1 {_day(today + timedelta(days=1))}\n")
    clock.at("10:30")
    phone = Phone(client, "+919822222222")
    phone.dial()
    slots = phone.press("1", "Asha Devi", "1990", "110017", "1", "1")
    assert slots.startswith(f"CON PHC Saket, {_day(today)}\n")
    assert "\n1 09:00-11:00\n2 11:00-13:00\n3 14:00-16:00\n0 Back" in slots


@pytest.mark.parametrize(
    "lang, hint",
    [
        ("en", "CON That slot has passed. Choose another.\n"),
        ("hi", "CON वह समय निकल चुका है। कोई दूसरा समय चुनें।\n"),
    ],
)
def test_a_slot_that_ends_while_confirming_is_refused_and_the_others_offered(
    client, sample, r, clock, lang, hint
):
    phone = Phone(client)
    if lang == "hi":
        phone.dial()
        phone.press("4", "2")
    clock.at("10:59")
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1")
    clock.at("11:00")
    late = phone.press("1")
    assert late.startswith(hint), late
    assert "09:00-11:00" not in late and "\n1 11:00-13:00\n2 14:00-16:00\n" in late
    assert not appointments(r)
    assert phone.press("1", "1").startswith("END ")
    assert [a["slot"] for a in appointments(r).values()] == ["1"]


def _two_slots(store, capacity: int = 1) -> dict:
    data = tiny_data(store.now().date(), capacity=capacity)
    data["sessions"][0]["slots"] = [
        {"time": "09:00-11:00", "capacity": capacity},
        {"time": "11:00-13:00", "capacity": capacity},
    ]
    load_data(store, data)
    return data


def test_a_resumed_booking_reads_the_slots_again(client, store, r):
    sid = _two_slots(store)["sessions"][0]["id"]
    taken = store.book(
        mobile="+919833333333", name="Ravi Kumar", birth_year=1985, session_id=sid, slot=0
    ).value
    phone = Phone(client)
    phone.dial()
    slots = phone.press("1", "Asha Devi", "1990", "110017", "1", "1")
    assert "\n1 11:00-13:00\n0 Back" in slots
    phone.hang_up()
    assert store.cancel(mobile="+919833333333", ref=taken).ok
    assert phone.dial().startswith("CON ")  # the offer to continue
    again = phone.press("1")
    assert "\n1 09:00-11:00\n2 11:00-13:00\n0 Back" in again


def test_a_list_answered_after_a_minute_is_read_again(client, store, r, clock):
    sid = _two_slots(store)["sessions"][0]["id"]
    taken = store.book(
        mobile="+919833333333", name="Ravi Kumar", birth_year=1985, session_id=sid, slot=0
    ).value
    phone = Phone(client)
    phone.dial()
    assert phone.press("1", "Asha Devi", "1990", "110017", "1").startswith("CON PHC Saket\n1 ")
    assert store.cancel(mobile="+919833333333", ref=taken).ok
    clock.advance(61)
    assert "\n1 09:00-11:00\n2 11:00-13:00\n0 Back" in phone.press("1")
    # A slot list shown, its slot then taken: a minute later the pick is refused, list re-read.
    store.book(mobile="+919844444444", name="Meena Devi", birth_year=1980, session_id=sid, slot=1)
    clock.advance(61)
    late = phone.press("2")
    assert late.startswith("CON That slot is no longer open. Choose another.\n")
    assert "\n1 09:00-11:00\n0 Back" in late


def test_a_list_answered_within_a_minute_is_not_read_again(client, store, r, clock, monkeypatch):
    _two_slots(store)
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1")
    clock.advance(59)
    with counting_round_trips(monkeypatch) as sent:
        assert "\n1 09:00-11:00\n2 11:00-13:00\n0 Back" in phone.press("1")
    assert len(sent) == 2  # the hop's read and its commit: the kept slots were shown


# -- faults: a booking made, its turn not saved ---------------------------------------------


def test_a_booking_made_when_redis_then_runs_out_of_memory_is_still_confirmed(
    client, sample, r, monkeypatch
):
    phone = Phone(client)
    phone.dial()
    assert phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1").startswith("CON Book")
    with out_of_memory_after(monkeypatch, r):
        done = phone.press("1")
    assert done.startswith("END Booked Asha Devi. Ref "), done
    (ref,) = appointments(r)
    assert codes.format_reference(ref) in done
    assert [e["t"] for e in outbox(r)] == ["sms.booked"]
    assert phone.again() == done  # the network repeats the hop: same answer, no second booking
    assert len(appointments(r)) == 1 and len(outbox(r)) == 1


def test_a_booking_refused_for_lack_of_memory_says_busy_and_stores_nothing(client, sample, r):
    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1")
    set_maxmemory(r, "1")
    try:
        busy = phone.press("1")
    finally:
        set_maxmemory(r, "0")
    assert busy.startswith("END Sorry, TikaLine is busy.")
    assert appointments(r) == {} and outbox(r) == []


@pytest.mark.single_redis(reason="CLIENT PAUSE stalls one server; the pool of one server")
def test_a_booking_made_when_redis_then_stalls_past_the_timeout_is_still_confirmed(
    client, sample, r, monkeypatch
):
    pool = client.application.extensions["tikaline"].redis.connection_pool
    pool.connection_kwargs["socket_timeout"] = 0.3  # as 5 s against a 7 s stall, but quicker
    pool.disconnect()
    real_book = Store.book

    def book_then_stall(self, **kwargs):
        outcome = real_book(self, **kwargs)
        r.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # scripts wait, reads go on
        return outcome

    phone = Phone(client)
    phone.dial()
    phone.press("1", "Asha Devi", "1990", "110017", "1", "1", "1")
    monkeypatch.setattr(Store, "book", book_then_stall)
    try:
        done = phone.press("1")
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
    monkeypatch.setattr(Store, "book", real_book)
    assert done.startswith("END Booked Asha Devi. Ref "), done
    assert phone.again() == done
    assert len(appointments(r)) == 1 and [e["t"] for e in outbox(r)] == ["sms.booked"]


def test_a_fifth_person_is_refused_naming_the_four_who_can_be_booked(client, sample, r):
    phone = Phone(client)
    for name in ("Asha Devi", "Ravi Kumar", "Meena Kumari", "Arjun Singh"):
        assert book(phone, name).startswith("END Booked")
    phone.dial()
    phone.press("3", "1", "1")  # Arjun's booking (the first listed) cancelled
    phone.dial()
    phone.press("1")
    assert phone.press("Fifth Person") == "CON Year of birth of Fifth Person\n0 Back"
    phone.press("1990", "110017", "1", "1", "1", "1")
    phone.dial()
    phone.press("1")
    screen = phone.press("Arjun Singh")
    assert screen.startswith(
        "CON Only these 4 people can be booked on this number: Asha "
        "Devi, Fifth Person, Meena Kumari, Ravi Kumar.\nName of the person"
    )


def test_a_cancel_made_when_redis_then_runs_out_of_memory_is_still_confirmed(
    client, sample, r, monkeypatch
):
    phone = Phone(client)
    book(phone)
    phone.dial()
    assert phone.press("3", "1").startswith("CON Cancel the booking of Asha Devi?")
    with out_of_memory_after(monkeypatch, r, "cancel"):
        done = phone.press("1")
    assert done.startswith("END Cancelled: Asha Devi, ref "), done
    assert [a["state"] for a in appointments(r).values()] == ["cancelled"]
    assert [e["t"] for e in outbox(r)].count("sms.cancelled") == 1


@pytest.mark.parametrize(
    "name",
    [
        "रामकुमारी देवी कुशवाहा श्रीवास्तव",  # 33 code points, 17 letters as a reader counts them
        "A" * 50,
        ("क्षत्रिय " * 12)[:-1],  # 47 letters, 107 code points: a conjunct counts once
    ],
)
def test_names_up_to_fifty_letters_as_a_reader_counts_them(client, sample, r, settings, name):
    phone = Phone(client)
    phone.dial()
    phone.press("1")
    assert phone.press(name).startswith("CON Year of birth of ")
    confirm = phone.press("1990", "110017", "1", "1", "1")
    assert confirm.startswith("CON Book ")  # the Phone checks every screen keeps to 160
    assert phone.press("1").startswith("END Booked ")
    assert appointments(r)[ref_and_code(last_text(r, settings, phone.number))[0]]["name"] == name
