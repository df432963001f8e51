"""Journey layer, property-based: whatever people type, in whatever order, however often the
network repeats it, the gateway answers (never a 500, never a USSD body without CON/END), keeps
to its budgets, never books more than capacity, and a repeat has no second effect."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.messages.sms import render_entry
from tests.conversation_helpers import (
    VACCINATOR,
    Phone,
    appointments,
    booked_counts,
    load_data,
    outbox,
    tiny_data,
)
from tests.test_budgets import sms_within_budget

BOUNDED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NUMBERS = ["+919811111111", "+919822222222", VACCINATOR]
USSD_WORDS = [
    "",
    "0",
    "00",
    "1",
    "2",
    "3",
    "4",
    "5",
    "9",
    "1990",
    "110017",
    "Asha Devi",
    "Ravi Kumar",
    "YES",
    "१",
    "*",
    "1*2",
    "😀",
    "a" * 40,
    " 1 ",
]
SMS_WORDS = [
    "BOOK",
    "book 110017",
    "STATUS",
    "CANCEL",
    "CANCEL 12345 67890",
    "CODE",
    "HELP",
    "LANG HI",
    "LANG EN",
    "Asha Devi",
    "1990",
    "110017",
    "1",
    "2",
    "9",
    "YES",
    "no",
    "स्थिति",
    "बुक",
    "हाँ",
    "VERIFY 12345 67890 1234",
    "DOSE",
    "TODAY",
    "१९९०",
    "🙂",
    "",
]

typed = st.one_of(st.sampled_from(SMS_WORDS), st.text(max_size=60))
hop = st.one_of(st.sampled_from(USSD_WORDS), st.text(max_size=30))


def fresh(r, store, capacity: int = 2):
    r.flushdb()
    load_data(store, tiny_data(store.now().date(), capacity=capacity, days=2))


def check_outbox(r, secret: str) -> None:
    for entry in outbox(r):
        sms_within_budget(entry["t"], render_entry(entry, secret))


def check_capacity(r) -> None:
    for (session, slot), (booked, cap) in booked_counts(r).items():
        assert 0 <= booked <= cap, (session, slot, booked, cap)
    open_ = [a for a in appointments(r).values() if a["state"] in ("booked", "verified")]
    assert len(open_) <= sum(cap for _, cap in booked_counts(r).values())


@BOUNDED
@given(st.lists(st.tuples(st.sampled_from(NUMBERS), typed), min_size=1, max_size=12))
def test_any_sms_is_answered_within_budget(client, store, r, settings, messages):
    fresh(r, store)
    for number, text in messages:
        Phone(client, number).sms(text)  # asserts 200 with an empty body
    check_outbox(r, settings.secret_key)
    check_capacity(r)


@BOUNDED
@given(
    st.lists(
        st.tuples(st.sampled_from(NUMBERS[:2]), st.sampled_from(["dial", "press", "again"]), hop),
        min_size=1,
        max_size=25,
    )
)
def test_any_ussd_hops_get_a_screen_within_budget(client, store, r, settings, steps):
    fresh(r, store)
    phones = {number: Phone(client, number) for number in NUMBERS[:2]}
    for number, action, text in steps:
        phone = phones[number]
        if action == "dial" or not phone.session:
            phone.dial()  # each hop asserts 200, CON/END and at most 160 characters
        elif action == "again":
            phone.again()
        else:
            phone.press(text)
    check_outbox(r, settings.secret_key)
    check_capacity(r)


def _mask(text: str) -> str:
    """A screen or SMS with refs and codes blanked (they are random per run)."""
    return re.sub(r"\d{5} \d{5}|\b\d{10}\b|(?<=Code )\d{4}|(?<=कोड )\d{4}", "#", text)


def _run_sms(client, r, settings, messages, repeat_every: int | None) -> tuple:
    sent = []
    for i, (number, text) in enumerate(messages):
        phone = Phone(client, number)
        sent.append(phone.sms(text, f"id-{i}"))
        if repeat_every and i % repeat_every == 0:
            for j in range(0, i + 1, 2):  # earlier ids come again, in any order
                Phone(client, messages[j][0]).sms(messages[j][1], f"id-{j}")
    texts = [_mask(render_entry(e, settings.secret_key)) for e in outbox(r)]
    return texts, len(appointments(r))


@BOUNDED
@given(
    st.lists(
        st.tuples(st.sampled_from(NUMBERS), st.sampled_from(SMS_WORDS)), min_size=1, max_size=10
    ),
    st.integers(min_value=1, max_value=3),
)
def test_a_repeated_sms_has_no_second_effect(client, store, r, settings, messages, every):
    fresh(r, store)
    once = _run_sms(client, r, settings, messages, None)
    fresh(r, store)
    repeated = _run_sms(client, r, settings, messages, every)
    assert repeated == once


def _run_ussd(phone: Phone, hops, repeat: set[int]) -> list[str]:
    screens = [_mask(phone.dial(session="ATUid_prop"))]
    for i, text in enumerate(hops):
        screen = phone.press(text)
        screens.append(_mask(screen))
        if i in repeat:
            assert phone.again() == screen  # the same screen again...
    return screens


@BOUNDED
@given(
    st.lists(st.sampled_from(USSD_WORDS), min_size=1, max_size=15),
    st.sets(st.integers(min_value=0, max_value=14)),
)
def test_a_repeated_ussd_hop_gets_the_same_screen_and_no_second_effect(
    client, store, r, settings, hops, repeat
):
    fresh(r, store)
    once = _run_ussd(Phone(client), hops, set())
    effects = (len(outbox(r)), len(appointments(r)))
    fresh(r, store)
    again = _run_ussd(Phone(client), hops, repeat)
    assert again == once  # ...and the conversation goes on exactly as without the repeat
    assert (len(outbox(r)), len(appointments(r))) == effects


@settings(BOUNDED, max_examples=20)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.booleans()), min_size=1, max_size=8
    )
)
def test_never_more_bookings_than_capacity(client, store, r, settings, callers):
    fresh(r, store, capacity=2)
    for who, over_ussd in callers:
        phone = Phone(client, f"+91981111110{who}")
        if over_ussd:
            phone.dial()
            phone.press("1", f"Person {chr(65 + who)}", "1990", "110017", "1", "1", "1", "1")
        else:
            for text in ("BOOK 110017", f"Person {chr(65 + who)}", "1990", "1", "1", "1", "YES"):
                phone.sms(text)
    check_capacity(r)
    assert len(appointments(r)) <= 4  # two days of one slot of two


@BOUNDED
@given(st.sampled_from(["/ussd", "/ussd/events", "/sms/inbound"]), st.binary(max_size=300))
def test_any_bytes_on_any_webhook_are_never_a_500(client, store, r, path, body):
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (200, 400, 413, 415), response.get_data(as_text=True)
    if path == "/ussd" and response.status_code == 200:
        assert response.get_data(as_text=True)[:4] in ("CON ", "END ")
