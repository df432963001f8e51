"""Journey layer: citizen SMS through ``/sms/inbound`` with a real Redis: the replies are read back
from the outbox exactly as the sender will render them."""

from __future__ import annotations

import json
import re
import threading

import pytest

from flows import messages
from flows.messages.sms import segments
from gateway import codes
from gateway.store import keys
from gateway.store.redisconn import from_url
from tests.conversation_helpers import (
    VACCINATOR,
    Phone,
    appointments,
    booked_counts,
    counting_round_trips,
    last_hinted,
    last_template,
    last_text,
    load_data,
    out_of_memory_after,
    outbox,
    ref_and_code,
    texts,
    tiny_data,
)
from tests.partitions import matching


def sms_book(
    phone: Phone, name: str = "Asha Devi", year: str = "1990", pin: str = "110017"
) -> None:
    for text in ("BOOK", name, year, pin, "1", "1", "1", "YES"):
        phone.sms(text)


def test_booking_over_sms_one_question_at_a_time(client, sample, r, settings):
    phone = Phone(client)
    answers = [
        (
            "BOOK",
            "TikaLine booking: reply with the name of the person to vaccinate, as on their ID.",
        ),
        ("Asha Devi", "Reply with the year of birth of Asha Devi, e.g. 1985."),
        ("1990", "Reply with the 6-digit pincode where Asha Devi will be vaccinated."),
        ("110017", "Centres near 110017, reply with a number:\n1 PHC Saket"),
    ]
    for text, reply in answers:
        phone.sms(text)
        assert last_text(r, settings, phone.number) == reply
    phone.sms("1")
    dates = last_text(r, settings, phone.number)
    assert dates.startswith("PHC Saket, reply with a number:\n1 ")
    phone.sms("1")
    assert last_text(r, settings, phone.number).endswith(
        "reply with a number:\n1 09:00-11:00\n2 11:00-13:00\n3 14:00-16:00"
    )
    phone.sms("3")
    confirm = last_text(r, settings, phone.number)
    assert confirm.startswith("Book Asha Devi (1990) at PHC Saket, ")
    assert confirm.endswith(" 14:00-16:00? Reply YES or NO")
    phone.sms("yes")
    booked = last_text(r, settings, phone.number)
    assert booked.startswith(
        "TikaLine: Asha Devi booked at PHC Saket (J Block, Saket, New Delhi) on "
    )
    ref, code = ref_and_code(booked)
    assert appointments(r)[ref]["slot"] == "2"  # the third slot, 14:00-16:00
    assert r.get(keys.sms_conversation(phone.number)) is None  # the conversation is over
    assert outbox(r)[-1]["t"] == "sms.booked"


def test_book_with_a_pincode_skips_that_question(client, sample, r, settings):
    phone = Phone(client)
    for text in ("Book 110017", "Ravi Kumar", "1985"):
        phone.sms(text)
    assert last_text(r, settings, phone.number).startswith("Centres near 110017")


def test_a_replayed_sms_id_has_no_second_effect_and_no_second_reply(client, sample, r, settings):
    phone = Phone(client)
    for text in ("BOOK", "Asha Devi", "1990", "110017", "1", "1", "1"):
        phone.sms(text)
    confirm_id = phone.sms("YES")
    queued = len(outbox(r))
    for _ in range(3):
        phone.sms("YES", confirm_id)
        phone.sms("BOOK", confirm_id)  # even a different text: the id was handled
    assert len(outbox(r)) == queued
    assert len(appointments(r)) == 1
    assert r.get(keys.sms_conversation(phone.number)) is None


def test_status_shows_every_booking_with_its_code(client, sample, r, settings):
    phone = Phone(client)
    people = [
        ("Asha Devi", "1990"),
        ("Ravi Kumar", "1985"),
        ("Meena Kumari", "1970"),
        ("Arjun Singh", "2000"),
    ]
    for name, year in people:
        sms_book(phone, name, year)
    booked = {
        ref_and_code(t)
        for t in texts(r, settings, phone.number)
        if t.startswith("TikaLine: ") and " booked at " in t
    }
    assert len(booked) == 4
    start = len(outbox(r))
    phone.sms("STATUS")
    slip = texts(r, settings, phone.number, start)
    assert 1 <= len(slip) <= 2
    joined = "\n".join(slip)
    for ref, code in booked:
        assert f"Ref {codes.format_reference(ref)} Code {code}" in joined
    for name, _ in people:
        assert f"{name}: PHC Saket, " in joined
    for text in slip:
        assert segments(text) == ("gsm7", segments(text)[1]) and segments(text)[1] <= 3


def test_status_without_bookings_says_how_to_book(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("status")
    assert last_text(r, settings, phone.number) == (
        "TikaLine: no bookings on this number. Send BOOK to book."
    )


def test_cancel_frees_the_slot_and_a_new_booker_gets_it(client, store, r, settings):
    load_data(store, tiny_data(store.now().date(), capacity=1))
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    sms_book(asha)
    ref, _ = ref_and_code(last_text(r, settings, asha.number))
    for text in ("BOOK 110017", "Ravi Kumar", "1985"):
        ravi.sms(text)
    assert last_text(r, settings, ravi.number).startswith(
        "No open slots near 110017 for this age in the next 7 days. Reply with the 6-digit"
    )

    asha.sms(f"cancel {codes.format_reference(ref)}")
    assert last_text(r, settings, asha.number).startswith(
        f"TikaLine: booking {codes.format_reference(ref)} for Asha Devi on "
    )
    assert appointments(r)[ref]["state"] == "cancelled"
    assert set(booked_counts(r).values()) == {(0, 1)}

    for text in ("110017", "1", "1", "1", "YES"):
        ravi.sms(text)
    assert " booked at PHC Saket " in last_text(r, settings, ravi.number)
    assert set(booked_counts(r).values()) == {(1, 1)}


@pytest.mark.parametrize("typed", ["CANCEL 12345 67891", "cancel 1234", "Cancel: abc"])
def test_cancel_with_a_mistyped_ref_says_so_before_any_lookup(client, sample, r, settings, typed):
    phone = Phone(client)
    phone.sms(typed)
    assert "is not a booking ref. Please check the digits" in last_text(r, settings, phone.number)


def test_cancel_refusals(client, sample, r, settings):
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    sms_book(asha)
    ref, _ = ref_and_code(last_text(r, settings, asha.number))
    shown = codes.format_reference(ref)
    ravi.sms(f"CANCEL {ref}")  # not his booking: nothing happens to it
    assert last_text(r, settings, ravi.number) == (
        f"No booking {shown} on this number. STATUS shows yours."
    )
    assert appointments(r)[ref]["state"] == "booked"
    asha.sms(f"CANCEL {ref[:5]}-{ref[5:]}")
    asha.sms(f"CANCEL {ref}")
    assert last_text(r, settings, asha.number) == f"Booking {shown} is already cancelled."
    asha.sms("CANCEL")
    assert last_text(r, settings, asha.number).startswith("To cancel, send CANCEL and the")


def test_new_code_after_a_lock(client, sample, r, settings, store):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    sms_book(citizen, pin="110017")
    ref, old_code = ref_and_code(last_text(r, settings, citizen.number))
    assert appointments(r)[ref]["date"] == store.today()  # the first day offered is today
    wrong = "0000" if old_code != "0000" else "1111"
    for _ in range(5):
        vaccinator.sms(f"VERIFY {ref} {wrong}")
    locked = last_text(r, settings, citizen.number)
    assert locked.endswith(f"For a new code send CODE {ref}")
    citizen.sms(f"CODE {ref}")
    fresh = last_text(r, settings, citizen.number)
    # Its own text: a second "booked" SMS would read as a second booking.
    assert fresh.startswith("TikaLine: new code for Asha Devi's booking at PHC Saket, ")
    assert " booked " not in fresh
    new_ref, new_code = ref_and_code(fresh)
    assert new_ref == ref
    assert appointments(r)[ref]["state"] == "booked" and appointments(r)[ref]["ver"] == "1"
    assert new_code == codes.derive_code(settings.secret_key, ref, 1)
    vaccinator.sms(f"VERIFY {ref} {new_code}")
    assert last_text(r, settings, vaccinator.number).startswith("Code OK.")


def test_a_new_code_in_hindi_is_not_told_as_a_booking(client, sample, r, settings):
    citizen = Phone(client)
    citizen.sms("LANG HI")
    sms_book(citizen, pin="110017")
    booked = last_text(r, settings, citizen.number)
    assert "बुक हुआ" in booked
    ref = re.search(r"बुकिंग नंबर (\d{5} \d{5})", booked).group(1).replace(" ", "")
    citizen.sms(f"CODE {ref}")
    fresh = last_text(r, settings, citizen.number)
    assert fresh.startswith("टीकालाइन: Asha Devi की ") and "बुक हुआ" not in fresh
    code = codes.derive_code(settings.secret_key, ref, 1)
    assert f"नया कोड {code}" in fresh and codes.format_reference(ref) in fresh


def test_a_fourth_new_code_in_a_day_is_refused_and_wrong_codes_still_lock(
    client, sample, r, settings, store
):
    citizen, vaccinator = Phone(client), Phone(client, VACCINATOR)
    sms_book(citizen, pin="110017")
    ref, code = ref_and_code(last_text(r, settings, citizen.number))
    for _ in range(3):
        citizen.sms(f"CODE {ref}")
    assert appointments(r)[ref]["ver"] == "3"
    citizen.sms(f"CODE {ref}")
    assert last_text(r, settings, citizen.number) == (
        f"TikaLine: {codes.format_reference(ref)} already got 3 new codes today, the most "
        f"allowed. Use the last one; if locked, CANCEL {ref} and BOOK another day."
    )
    assert appointments(r)[ref]["ver"] == "3"
    citizen.sms("LANG HI")
    citizen.sms(f"CODE {ref}")
    assert "आज 3 नए कोड भेजे जा चुके हैं" in last_text(r, settings, citizen.number)
    code = codes.derive_code(settings.secret_key, ref, 3)
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(5):
        vaccinator.sms(f"VERIFY {ref} {wrong}")
    assert appointments(r)[ref]["state"] == "locked"


def test_code_refusals(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("CODE")
    assert last_template(r, phone.number) == "sms.code.usage"
    ref = codes.new_reference()
    typo = ref[:-1] + str((int(ref[-1]) + 1) % 10)  # one digit off: the check digit fails
    phone.sms(f"CODE {typo}")
    assert last_text(r, settings, phone.number) == (
        f"TikaLine: {typo} is not a booking ref. Please check the digits (e.g. 12345 67890)."
    )
    phone.sms(f"CODE {ref}")
    assert last_text(r, settings, phone.number) == (
        f"TikaLine: no booking {codes.format_reference(ref)} on this number. STATUS shows yours."
    )


def test_lang_hi_then_hindi_keywords_and_devanagari_digits(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("LANG HI")
    assert last_text(r, settings, phone.number).startswith("टीकालाइन: अब से जवाब हिंदी में")
    assert r.get(keys.language(phone.number)) == b"hi"
    phone.sms("मदद")
    assert last_text(r, settings, phone.number).startswith("टीकालाइन: टीका बुक करने के लिए BOOK")
    for text in ("बुक", "आशा देवी", "१९९०", "११००१७", "१", "१", "१", "हाँ"):
        phone.sms(text)
    booked = last_text(r, settings, phone.number)
    assert booked.startswith("टीकालाइन: आशा देवी का टीका ")
    phone.sms("स्थिति")
    slip = last_text(r, settings, phone.number)
    assert slip.startswith("टीकालाइन, आपकी बुकिंग:\nआशा देवी: PHC Saket, ")
    ref = [a for a in appointments(r)][0]
    phone.sms(f"रद्द {ref}")
    assert "वाली बुकिंग" in last_text(r, settings, phone.number)
    assert "रद्द हो गई है" in last_text(r, settings, phone.number)
    phone.sms("lang en")
    assert last_text(r, settings, phone.number).startswith("TikaLine: replies in English")


@pytest.mark.parametrize("text", ["  book. ", "#BOOK!", "Book,", "bOoK   110017"])
def test_keywords_forgive_case_spaces_and_punctuation(client, sample, r, settings, text):
    phone = Phone(client)
    phone.sms(text)
    assert outbox(r)[-1]["t"] == "sms.book.name"


@pytest.mark.parametrize("text", ["Hi", "", "what is this?", "1", "YES", "🙂"])
def test_a_text_that_fits_nothing_gets_the_help(client, sample, r, settings, text):
    phone = Phone(client)
    phone.sms(text)
    assert last_template(r, phone.number) == "sms.help"


def test_a_bad_answer_gets_a_hint_and_the_question_again(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("BOOK")
    phone.sms("Asha Devi")
    phone.sms("ninety")
    assert last_hinted(r, phone.number) == ("hint.birth_year", "sms.book.birth_year")
    assert "Asha Devi" in last_text(r, settings, phone.number)
    phone.sms("1990")
    assert last_template(r, phone.number) == "sms.book.pincode"


def test_a_command_in_the_middle_of_a_booking_leaves_it_open(client, sample, r, settings):
    phone = Phone(client)
    for text in ("BOOK", "Asha Devi", "STATUS"):
        phone.sms(text)
    assert last_template(r, phone.number) == "sms.slip.none"
    phone.sms("1990")
    assert last_template(r, phone.number) == "sms.book.pincode"


def test_cancel_alone_stops_a_booking_and_no_stops_at_the_end(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("BOOK")
    phone.sms("CANCEL")
    assert last_template(r, phone.number) == "sms.book.stopped"
    assert r.get(keys.sms_conversation(phone.number)) is None
    for text in ("BOOK 110017", "Asha Devi", "1990", "1", "1", "1", "no"):
        phone.sms(text)
    assert last_template(r, phone.number) == "sms.book.stopped"
    assert appointments(r) == {}


def test_one_open_booking_per_person_and_four_people_per_number(client, sample, r, settings):
    phone = Phone(client)
    sms_book(phone, "Asha Devi")
    ref, _ = ref_and_code(last_text(r, settings, phone.number))
    phone.sms("BOOK")
    phone.sms("asha  devi")  # the same person, however typed: said at once
    assert last_text(r, settings, phone.number) == (
        f"Asha Devi already has booking {codes.format_reference(ref)}. TikaLine booking: "
        "reply with the name of the person to vaccinate, as on their ID."
    )
    phone.sms("CANCEL")
    for name in ("Ravi Kumar", "Meena Kumari", "Arjun Singh"):
        sms_book(phone, name)
    phone.sms("BOOK")
    phone.sms("Fifth Person")
    refused = last_text(r, settings, phone.number)
    assert refused.startswith(
        "Only these 4 people can be booked on this number: Arjun, "
        "Asha, Meena, Ravi. TikaLine booking: reply"
    )
    assert segments(refused) == ("gsm7", 1)
    phone.sms("Ravi Kumar")  # one of them may be named instead
    assert last_text(r, settings, phone.number).startswith("Ravi Kumar already has booking ")
    phone.sms("CANCEL")
    phone.sms(f"CANCEL {ref}")  # Asha's booking cancelled: her place is free again
    phone.sms("BOOK")
    phone.sms("Fifth Person")
    assert last_template(r, phone.number) == "sms.book.birth_year"
    assert len(appointments(r)) == 4


def test_vaccinator_commands_from_other_numbers_change_nothing(client, sample, r, settings):
    citizen = Phone(client)
    sms_book(citizen)
    ref, code = ref_and_code(last_text(r, settings, citizen.number))
    stranger = Phone(client, "+919877777777")
    before = appointments(r)
    for text in (f"VERIFY {ref} {code}", f"DOSE {ref}", "TODAY"):
        stranger.sms(text)
        assert last_text(r, settings, stranger.number) == (
            "TikaLine: this number is not a registered vaccinator. Citizens: send HELP."
        )
    assert appointments(r) == before
    assert not [k for k in matching(r, "vfail") if k.decode().endswith(stranger.number)]
    assert json.loads(outbox(r)[-1]["p"]) == {}


def test_an_sms_turn_costs_at_most_five_redis_round_trips(
    client, sample, r, settings, monkeypatch, capsys
):
    warm = Phone(client, "+919833333333")  # load the scripts once: NOSCRIPT costs extra once
    sms_book(warm)
    warm.sms(f"CODE {ref_and_code(last_text(r, settings, warm.number))[0]}")
    warm.sms("STATUS")
    phone, vaccinator = Phone(client), Phone(client, "+919800000001")
    vaccinator.sms("TODAY")
    trips = []
    with counting_round_trips(monkeypatch) as sent:
        for who, text in [
            (phone, t)
            for t in (
                "BOOK",
                "Asha Devi",
                "1990",
                "110017",
                "1",
                "1",
                "1",
                "maybe",
                "YES",
                "STATUS",
                "HELP",
                "LANG HI",
                "LANG EN",
            )
        ] + [(vaccinator, "VERIFY 12345 67891 1234"), (vaccinator, "TODAY")]:
            before = len(sent)
            who.sms(text)
            trips.append((text, len(sent) - before))
        before = len(sent)
        phone.sms("HELP", "the-same-id")
        phone.sms("HELP", "the-same-id")
        trips.append(("replay", len(sent) - before - trips[-3][1]))
    # Read the turn, commit it; a booking adds its three steps in two buckets (store/booking.py),
    # a list of centres its reads of each centre's week (on a cluster, one per master).
    assert max(n for _, n in trips) <= 5, str(trips)
    assert dict(trips)["replay"] == 1  # a repeated id is read, found handled, dropped
    ref, _ = ref_and_code(next(t for t in texts(r, settings, phone.number) if " booked at " in t))
    with counting_round_trips(monkeypatch) as sent:
        phone.sms(f"CODE {ref}")
    trips.append(("CODE", len(sent)))
    assert len(sent) <= 4  # the store reads the code version before its script: one more
    with capsys.disabled():
        print(f"\nRedis round trips per SMS turn: {trips}")


def test_duplicates_arriving_together_book_once_and_answer_once(client, sample, r, settings):
    phone = Phone(client)
    for text in ("BOOK", "Asha Devi", "1990", "110017", "1", "1", "1"):
        phone.sms(text)
    queued = len(outbox(r))
    start = threading.Barrier(8)
    app = client.application
    answers = []

    def deliver():
        start.wait()
        response = app.test_client().post(
            "/sms/inbound",
            data={"from": phone.number, "to": "56767", "text": "YES", "id": "ATXid_dup"},
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # One copy applies it; a copy arriving meanwhile is asked to retry (503), never dropped.
    assert 200 in answers and set(answers) <= {200, 503} and len(answers) == 8
    assert len(appointments(r)) == 1
    assert len(outbox(r)) == queued + 1  # the one confirmation with its code, nothing else
    assert outbox(r)[-1]["t"] == "sms.booked"


@pytest.mark.parametrize(
    "text, template",
    [
        ("भाषा हिंदी", "sms.lang.set"),
        ("भाषा अंग्रेज़ी", "sms.lang.set"),
        ("कोड", "sms.code.usage"),
        ("रद्द", "sms.cancel.usage"),
        ("स्थिति।", "sms.slip.none"),
        ("मदद!", "sms.help"),
        ("जांच", "vacc.not_vaccinator"),
        ("खुराक", "vacc.not_vaccinator"),
        ("आज", "vacc.not_vaccinator"),
    ],
)
def test_hindi_aliases_of_every_command(client, sample, r, text, template):
    Phone(client).sms(text)
    assert outbox(r)[-1]["t"] == template


@pytest.mark.parametrize(
    "text, template",
    [("जाँच", "vacc.usage_verify"), ("खुराक", "vacc.usage_dose"), ("आज", "vacc.today")],
)
def test_hindi_aliases_of_vaccinator_commands(client, sample, r, text, template):
    Phone(client, VACCINATOR).sms(text)
    assert outbox(r)[-1]["t"] == template


def test_the_same_sms_delivered_many_times_at_once_counts_one_wrong_code(
    client, redis_url, settings, sample, store, r
):
    """Africa's Talking retrying a slow callback: one VERIFY, whatever the copies. A copy
    that arrives while another is being applied is asked to retry (503) and then finds it
    done; none is answered 200 without having been applied."""
    from app import create_app

    ref = store.book(
        mobile="+919811111111",
        name="Asha Devi",
        birth_year=1990,
        session_id=f"S100-{store.today().replace('-', '')}",
        slot=0,
    ).value
    right = store.appointment(ref)["code"]
    wrong = f"{(int(right) + 1) % 10000:04d}"
    apps = [create_app({"SETTINGS": settings}) for _ in range(8)]
    barrier = threading.Barrier(len(apps), timeout=30)
    answers = []

    def deliver(app):
        form = {
            "from": "+919800000001",
            "to": "56767",
            "text": f"VERIFY {ref} {wrong}",
            "id": "SAME-ID",
            "date": "2026-12-01T06:04:45Z",
        }
        with app.test_client() as own:
            barrier.wait()
            answers.append(own.post("/sms/inbound", data=form).status_code)

    threads = [threading.Thread(target=deliver, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 200 in answers and set(answers) <= {200, 503}
    fresh = from_url(redis_url)
    assert fresh.hget(keys.appointment(ref), "att") == b"1"
    assert store.appointment(ref)["state"] == "booked"
    replies = [e for e in outbox(r) if e["k"].startswith("reply:SAME-ID")]
    assert len(replies) == 1


def test_under_eighteen_over_sms_is_told_before_the_pincode(client, sample, r, settings, store):
    phone = Phone(client)
    for text in ("BOOK 110017", "Chhotu Kumar", str(store.now().year - 10)):
        phone.sms(text)
    reply = last_text(r, settings, phone.number)
    assert reply.startswith("Only people aged 18 or more can book")
    assert "No open slots" not in reply


@pytest.mark.parametrize("yes", ["haan", "Ha", "han", "ji", "हाँ", "1"])
def test_hindi_yes_typed_in_latin_letters_books(client, sample, r, settings, yes):
    phone = Phone(client)
    phone.sms("LANG HI")
    for text in ("BOOK", "Asha Devi", "1990", "110017", "1", "1", "1"):
        phone.sms(text)
    assert "हाँ के लिए 1" in last_text(r, settings, phone.number)  # the prompt says how
    phone.sms(yes)
    assert outbox(r)[-1]["t"] == "sms.booked"
    assert len(appointments(r)) == 1


@pytest.mark.parametrize("no", ["nahi", "Nahin", "na", "नहीं", "2"])
def test_hindi_no_typed_in_latin_letters_stops(client, sample, r, settings, no):
    phone = Phone(client)
    phone.sms("LANG HI")
    for text in ("BOOK", "Asha Devi", "1990", "110017", "1", "1", "1", no):
        phone.sms(text)
    assert outbox(r)[-1]["t"] == "sms.book.stopped"
    assert appointments(r) == {}


def test_a_wrong_answer_on_page_two_shows_page_two_again(client, store, r, settings):
    from tests.test_budgets import worst_data

    load_data(store, worst_data(store.now().date()))
    phone = Phone(client)
    for text in ("BOOK 110017", "Asha Devi", "1990", "9"):
        phone.sms(text)
    page_two = last_text(r, settings, phone.number)
    phone.sms("x")
    again = last_text(r, settings, phone.number)
    assert again.startswith("Choose a number from the list. ")
    assert again.endswith(page_two)  # the same centres under the same numbers


def test_status_lists_open_bookings_before_cancelled_ones(client, sample, r, settings):
    phone = Phone(client)
    sms_book(phone, "Asha Devi")
    ref, _ = ref_and_code(last_text(r, settings, phone.number))
    sms_book(phone, "Ravi Kumar", "1985")
    phone.sms(f"CANCEL {ref}")
    phone.sms("STATUS")
    lines = last_text(r, settings, phone.number).splitlines()
    assert lines[1].startswith("Ravi Kumar: PHC Saket, ") and " Code " in lines[1]
    assert lines[2].startswith("Asha Devi: cancelled, ")


def test_at_2347_sms_offers_no_slot_of_today_and_refuses_one_that_ends_at_confirm(
    client, sample, r, settings, store, clock
):
    today = store.now().date()
    clock.at("23:47")
    phone = Phone(client)
    for text in ("BOOK 110017", "Asha Devi", "1990", "1"):
        phone.sms(text)
    dates = last_text(r, settings, phone.number)
    assert f"{today:%d-%m}" not in dates and dates.count("\n") == 6  # the 6 days to come
    clock.at("12:59")
    other = Phone(client, "+919822222222")
    for text in ("BOOK 110017", "Ravi Kumar", "1985", "1", "1", "1"):  # 09:00 is over
        other.sms(text)
    assert last_text(r, settings, other.number).endswith(" 11:00-13:00? Reply YES or NO")
    clock.at("13:00")
    other.sms("YES")
    assert last_text(r, settings, other.number).startswith("That slot has passed. Choose another. ")
    assert "11:00-13:00" not in last_text(r, settings, other.number)
    assert not appointments(r)


def test_a_booking_made_when_redis_then_runs_out_of_memory_is_texted_once(
    client, sample, r, settings, monkeypatch
):
    phone = Phone(client)
    for text in ("BOOK", "Asha Devi", "1990", "110017", "1", "1", "1"):
        phone.sms(text)
    with out_of_memory_after(monkeypatch, r):
        # The turn could not be saved: the provider is asked to retry the callback...
        message_id = phone.sms("YES", expect=503)
    # ...while the citizen already has the booking and its code, the one reply to YES.
    (ref,) = appointments(r)
    assert ref_and_code(last_text(r, settings, phone.number))[0] == ref
    phone.sms("YES", message_id=message_id)  # the provider's retry, memory back
    phone.sms("YES", message_id=message_id)  # and a late duplicate of it
    assert len(appointments(r)) == 1
    assert [e["t"] for e in outbox(r)].count("sms.booked") == 1
    assert outbox(r)[-1]["t"] == "sms.booked"  # nothing said after it
    assert r.get(keys.sms_conversation(phone.number)) is None  # the conversation is over


def test_the_booking_sms_has_a_readable_day_and_the_centres_address(
    client, sample, r, settings, store
):
    phone = Phone(client)
    sms_book(phone)
    booked = last_text(r, settings, phone.number)
    ref, _ = ref_and_code(booked)
    day = messages.day(appointments(r)[ref]["date"], "en")  # e.g. "Wed 02-12"
    assert booked.startswith(
        f"TikaLine: Asha Devi booked at PHC Saket (J Block, Saket, New "
        f"Delhi) on {day}, 09:00-11:00. Ref "
    )
    phone.sms(f"CANCEL {ref}")
    assert f" on {day} 09:00-11:00 is cancelled" in last_text(r, settings, phone.number)


def test_the_hindi_booking_sms_says_the_day_in_hindi(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("LANG HI")
    sms_book(phone, "आशा देवी")
    booked = last_text(r, settings, phone.number)
    appt = next(iter(appointments(r).values()))
    assert messages.day(appt["date"], "hi") in booked
    assert appt["date"] not in booked and "J Block, Saket" in booked
    assert segments(booked)[0] == "ucs2" and len(booked) <= 201


def test_a_slot_filled_while_confirming_by_sms_lists_the_slots_still_open(
    client, store, r, settings
):
    data = tiny_data(store.now().date(), capacity=1)
    data["sessions"][0]["slots"].append({"time": "11:00-13:00", "capacity": 1})
    load_data(store, data)
    asha, ravi = Phone(client, "+919811111111"), Phone(client, "+919822222222")
    for phone, name in ((asha, "Asha Devi"), (ravi, "Ravi Kumar")):
        for text in ("BOOK 110017", name, "1990", "1", "1", "1"):
            phone.sms(text)
    asha.sms("YES")
    ravi.sms("YES")
    late = last_text(r, settings, ravi.number)
    assert late.startswith("That slot just filled up. Choose another. PHC Saket, ")
    assert late.endswith("reply with a number:\n1 11:00-13:00")
    ravi.sms("1")
    ravi.sms("YES")
    assert " booked at PHC Saket " in last_text(r, settings, ravi.number)
