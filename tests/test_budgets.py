"""Catalogue and journey layer: every screen and SMS keeps to its budget (flows/messages/sms.py,
USSD 160 characters), filled with worst-case values: names of 50 letters, centre names of 40,
four beneficiaries, 10-digit refs, in English, in Hindi, and in English with a name typed in
Devanagari.

Two ways: each catalogue template filled directly, and whole conversations driven through
the webhooks with worst-case data and wrong answers at every screen, every reply measured.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta

import pytest

from flows import messages, words
from flows.messages.sms import MAX_REASON, graphemes, render, render_entry, segments
from flows.words import MAX_NAME
from gateway.store.reference import MAX_CENTRE_NAME
from tests.conversation_helpers import (
    Phone,
    appointments,
    last_text,
    load_data,
    outbox,
    ref_and_code,
)

NAME_EN = "Aishwarya Venkataraman Iyengar Subramaniam Krishna"  # 50
# 50 letters as a reader counts them (about twice as many code points).
NAME_HI = "".join(graphemes("श्रीमती राधा कृष्णमूर्ति देवी शर्मा " * 3)[:50])
CENTRE_EN = "Urban Primary Health Centre Malviya Nagr"  # 40
ADDRESS = ("Plot 14, Near Shivalik Road Metro Gate 2, Malviya Nagar, New Delhi " * 3)[:160]
CENTRE_HI = ("शहरी प्राथमिक स्वास्थ्य केंद्र मालवीय नगर दक्षिण" * 2)[:40]
assert len(NAME_EN) == len(graphemes(NAME_HI)) == MAX_NAME and len(NAME_HI) > 80
assert len(CENTRE_EN) == len(CENTRE_HI) == MAX_CENTRE_NAME

# Segments per SMS: (GSM-7, UCS-2). "Where it can" an English reply is one segment.
CONFIRMATION = ("sms.booked",)
MULTI_LINE = ("sms.slip",)
SMS_LIMITS = {
    "sms.booked": (2, 3),
    "sms.slip": (3, 5),
    "sms.centre_cancelled": (2, 4),
    "sms.centre_moved": (2, 4),
}
DEFAULT_SMS_LIMIT = (1, 5)
USSD_LIMIT = 160


def other(name: str, letter: str) -> str:
    """Another name as long: the last letter (as a reader counts them) replaced."""
    return "".join(graphemes(name)[:-1]) + letter


def sms_within_budget(template: str, text: str) -> None:
    encoding, parts = segments(text)
    gsm, ucs = SMS_LIMITS.get(template, DEFAULT_SMS_LIMIT)
    limit = gsm if encoding == "gsm7" else ucs
    assert parts <= limit, f"{template}: {parts} {encoding} segments > {limit}:\n{text}"


# -- every template, filled directly ---------------------------------------------------------


def worst_values(lang: str, devanagari: bool) -> dict:
    name, centre = (NAME_HI, CENTRE_HI) if devanagari else (NAME_EN, CENTRE_EN)
    day_names = messages.template("days", lang).split()
    longest_day = max(day_names, key=len)
    state = max(
        (
            messages.template(f"state.{s}", lang)
            for s in ("booked", "verified", "vaccinated", "cancelled", "missed", "locked")
        ),
        key=len,
    )
    return {
        "name": name,
        "centre": centre,
        "ref": "9876543210",
        "code": "0000",
        "pin": "110017",
        "by": "1990",
        "day": messages.text("day", lang, wd=longest_day, dd="30", mm="12"),
        "time": "09:00-11:00",
        "date": "2026-12-31",
        "dose": "2",
        "vaccine": "COVISHIELD",
        "cert": "987654321098765",
        "doses": "2",
        "when": "31-12-2026",
        "left": "4",
        "minutes": "60",
        "booked": "9999",
        "verified": "9999",
        "vaccinated": "9999",
        "waiting": "9999",
        "open": {"t": "vacc.open", "p": {"n": "9999"}},
        "suggestion": "VERIFY 98765 43210 0000 AB-1234/5678...",
        "unverified": "9999",
        "state": state,
        "typed": "9" * 24,
        "reason": "W" * MAX_REASON,  # the widest letters an operator's reason may have
        "most": "4",
        "address": ADDRESS,
        # The shortest form the refusal falls back to: four first names of 3 letters.
        "names": ", ".join(["".join(words.graphemes(name.split()[0])[:3])] * 4),
        "year": "2027",
        "latest": "2008",
        "oldest": "1906",
        "mobile": "+919876543210",
        "i": "4",
        "n": "4",
        "more": messages.template("ussd.next", lang) + "\n",
        "items": "8 " + centre,
        "lines": "",
        "hint": "",
        "body": "",
    }


def params_of(key: str, lang: str, values: dict) -> dict:
    fields = {f for _, f, _, _ in string.Formatter().parse(messages.template(key, lang)) if f}
    params = {f: values[f] for f in fields if f != "ref_shown"}
    if "ref_shown" in fields:
        params["ref"] = values["ref"]
    return params


def fill(key: str, lang: str, values: dict, hint: str = "") -> str:
    """The template as the sender renders it (a long name shortened to fit), under a hint."""
    entry = {"t": key, "p": params_of(key, lang, values)}
    if not hint:
        return render(key, lang, entry["p"], "secret")
    wrapper = "ussd.hinted" if key.startswith("ussd.") else "sms.hinted"
    return render(
        wrapper,
        lang,
        {"hint": {"t": hint, "p": params_of(hint, lang, values)}, "body": entry},
        "secret",
    )


def longest_hint(lang: str, values: dict) -> str:
    keys = [k for k in messages.catalogue("en") if k.startswith("hint.")]
    return max((fill(k, lang, values) for k in keys), key=len)


LANGS = [("en", False), ("en", True), ("hi", False), ("hi", True)]
# The hints each screen can show (lists are paged to fit with theirs; END screens take none).
SCREEN_HINTS = {
    "ussd.menu": ["hint.choose"],
    "ussd.resume": ["hint.choose"],
    "ussd.language": ["hint.choose"],
    "ussd.help": ["hint.choose"],
    "ussd.book.name": ["hint.name", "hint.already_booked", "hint.too_many"],
    "ussd.book.birth_year": ["hint.birth_year", "hint.birth_year_future", "hint.too_young"],
    "ussd.book.pincode": ["hint.pincode", "hint.no_centres"],
    "ussd.book.slot_none": ["hint.slot_full", "hint.slot_passed", "hint.slot_gone", "hint.choose"],
    "ussd.book.confirm": ["ussd.hint.confirm"],
    "ussd.status.open": ["hint.next_back", "hint.back"],
    "ussd.status.closed": ["hint.next_back", "hint.back"],
    "ussd.status.none": ["hint.back"],
    "ussd.cancel.none": ["hint.choose"],
    "ussd.cancel.confirm": ["ussd.hint.confirm"],
    "sms.book.name": ["hint.name", "hint.pincode_later", "hint.already_booked", "hint.too_many"],
    "sms.book.birth_year": ["hint.birth_year", "hint.birth_year_future", "hint.too_young"],
    "sms.book.pincode": ["hint.pincode", "hint.no_centres"],
    "sms.book.slot_none": ["hint.slot_full", "hint.slot_passed", "hint.slot_gone", "hint.choose"],
    "sms.book.confirm": ["sms.hint.confirm"],
}


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_every_ussd_template_fits_a_screen_even_after_a_hint(lang, devanagari):
    values = worst_values(lang, devanagari)
    for key in messages.catalogue("en"):
        if not key.startswith("ussd.") or key in ("ussd.hinted", "ussd.more", "ussd.next"):
            continue
        screen = fill(key, lang, values)
        assert len("CON " + screen) <= USSD_LIMIT, (key, screen)
        # A wrong answer shows the screen again under a one-line hint.
        for hint_key in SCREEN_HINTS.get(key, ()):
            hinted = fill(key, lang, values, hint_key)
            assert len(f"CON {hinted}") <= USSD_LIMIT, (key, hinted)


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_every_sms_template_fits_its_budget(lang, devanagari):
    values = worst_values(lang, devanagari)
    for key in messages.catalogue("en"):
        if key.startswith(("ussd.", "kw.", "state.", "hint.", "web.")) or key in (
            "days",
            "day",
            "sms.hinted",
            "sms.more",
        ):
            continue
        text = fill(key, lang, values)
        if key == "sms.slip":  # the longest slip is packed by the flow; see the journeys
            continue
        sms_within_budget(key, text)
        for hint_key in SCREEN_HINTS.get(key, ()):
            sms_within_budget(key, fill(key, lang, values, hint_key))


def test_the_booking_confirmation_fits_the_spec_exactly():
    values = worst_values("en", False)
    assert segments(fill("sms.booked", "en", values)) == ("gsm7", 2)
    for lang, devanagari in (("hi", False), ("hi", True), ("en", True)):
        text = fill("sms.booked", lang, worst_values(lang, devanagari))
        encoding, parts = segments(text)
        assert encoding == "ucs2" and parts <= 3 and len(text) <= 201, text


def test_both_catalogues_have_the_same_keys_and_placeholders():
    en, hi = messages.catalogue("en"), messages.catalogue("hi")
    assert set(en) == set(hi)
    for key in en:
        if key.startswith("kw.") or key == "days":
            continue
        fields = [{f for _, f, _, _ in string.Formatter().parse(c[key]) if f} for c in (en, hi)]
        assert fields[0] == fields[1], key


# -- whole conversations with worst-case data -------------------------------------------------


def worst_data(today) -> dict:
    """Ten 40-character centres in each of two pincodes (English, Devanagari names), sessions
    for 7 days with eight slots each, and a vaccinator at the first centre of each."""
    centres, sessions = [], []
    for pin, base in (("110017", CENTRE_EN), ("110018", CENTRE_HI)):
        for i in range(10):
            cid = f"W{pin[-1]}{i}"
            centres.append(
                {
                    "id": cid,
                    "name": base[:-1] + str(i),
                    "district": "South Delhi",
                    "state": "Delhi",
                    "pincode": pin,
                    "address": "",
                }
            )
            for d in range(7):
                day = today + timedelta(days=d)
                sessions.append(
                    {
                        "id": f"{cid}-{day:%Y%m%d}",
                        "centre_id": cid,
                        "date": day.isoformat(),
                        "vaccine": "COVISHIELD",
                        "min_age": 18,
                        "max_age": None,
                        "slots": [
                            {"time": f"{h:02d}:00-{h + 1:02d}:00", "capacity": 10}
                            for h in range(9, 17)
                        ],
                    }
                )
    return {
        "centres": centres,
        "sessions": sessions,
        "vaccinators": [
            {"phone": "+919800000017", "centre_id": "W70"},
            {"phone": "+919800000018", "centre_id": "W80"},
        ],
    }


def ussd_journey(phone: Phone, lang: str, names: list[str], pin: str) -> list[str]:
    """Every screen of four bookings, a look at the slip, a cancel, help and language, with a
    wrong answer on each screen; the screens (each already held to CON/END + 160)."""
    screens = [phone.dial()]
    if lang == "hi":
        screens += [phone.press("4"), phone.press("x"), phone.press("2")]
    for i, name in enumerate(names):
        screens += [phone.dial()]
        for answer in (
            "7",
            "1",
            "Asha 2",
            name,
            "12",
            "1990",
            "11",
            "999999",
            pin,
            "x",
            "9",
            "x",
            "9",
            "0",
            "1",
            "x",
            "2",
            "x",
            "9",
            "1",
            "x",
            "1",
        ):
            screens.append(phone.press(answer))
        if i == 0:  # drop once mid-way: the resume offer
            phone.dial()
            screens += [phone.press("1", name, "1990", pin, "1")]
            screens += [phone.dial(), phone.press("x"), phone.press("2")]
    screens += [
        phone.dial(),
        phone.press("2"),
        phone.press("x"),
        phone.press("1"),
        phone.press("1"),
        phone.press("1"),
        phone.press("x"),
        phone.press("0"),
    ]
    screens += [
        phone.press("00"),
        phone.press("3"),
        phone.press("x"),
        phone.press("9"),
        phone.press("0"),
        phone.press("1"),
        phone.press("x"),
        phone.press("1"),
    ]
    screens += [
        phone.dial(),
        phone.press("5"),
        phone.press("x"),
        phone.press("0"),
        phone.press("4"),
        phone.press("x"),
    ]
    return screens


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_ussd_screens_with_worst_case_data(client, store, r, lang, devanagari):
    load_data(store, worst_data(store.now().date()))
    name = NAME_HI if devanagari else NAME_EN
    names = (
        [other(name, c) for c in ("क", "ख", "ग", "घ")]
        if devanagari
        else [other(name, c) for c in "bcde"]
    )
    phone = Phone(client)
    screens = ussd_journey(phone, lang, names, "110018" if devanagari else "110017")
    assert all(len(s) <= USSD_LIMIT and s[:4] in ("CON ", "END ") for s in screens)
    assert sum(s.startswith("END ") for s in screens) >= 5  # four bookings and a cancel
    assert len(appointments(r)) == 4
    assert max(len(s) for s in screens) > 120  # the data really was worst-case


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_sms_replies_with_worst_case_data(client, store, r, settings, lang, devanagari):
    load_data(store, worst_data(store.now().date()))
    name = NAME_HI if devanagari else NAME_EN
    pin = "110018" if devanagari else "110017"
    citizen = Phone(client)
    vaccinator = Phone(client, "+919800000018" if devanagari else "+919800000017")
    if lang == "hi":
        citizen.sms("LANG HI")
        vaccinator.sms("LANG HI")
    refs = []
    for c in ("b", "c", "d", "e") if not devanagari else ("क", "ख", "ग", "घ"):
        for text in (
            "BOOK",
            "x",
            other(name, c),
            "12",
            "1990",
            "1",
            pin,
            "x",
            "9",
            "1",
            "x",
            "1",
            "x",
            "9",
            "1",
            "maybe",
            "YES",
        ):
            citizen.sms(text)
        if lang == "en":
            refs.append(ref_and_code(last_text(r, settings, citizen.number)))
    citizen.sms("BOOK")
    citizen.sms(other(name, "b" if not devanagari else "क"))  # already booked, said so
    citizen.sms("Fifth Person")  # four people at most, named
    for text in (
        "1990",
        pin,
        "1",
        "1",
        "1",
        "YES",
        "STATUS",
        "CANCEL",
        "CANCEL 123",
        "CODE",
        "CODE 9876543210",
        "LANG",
        "HELP",
        "what?",
    ):
        citizen.sms(text)
    if refs:
        ref, code = refs[0]
        for text in (
            f"VERIFY {ref} 0000",
            f"VERIFY {ref} {code}",
            f"DOSE {ref} AB-1234/56",
            f"DOSE {ref}",
            "TODAY",
            "VERIFY",
            "DOSE",
            "HELP",
        ):
            vaccinator.sms(text)
        citizen.sms(f"CANCEL {refs[1][0]}")
    before = len(outbox(r))
    for text in (  # a walk-in, the same again (refused), bad input
        f"WALKIN 9811122222 {name} 1990",
        f"WALKIN +91 98111 22222 {name} 1990",
        "WALKIN 98765-43210-12345-67890 x 1990",
        f"WALKIN 9811133333 {name} 19",
        "WALKIN",
    ):
        vaccinator.sms(text)
    assert [e["t"] for e in outbox(r)[before:] if e["to"] == vaccinator.number] == [
        "vacc.walkin.booked",
        "vacc.walkin.already_booked",
        "vacc.walkin.bad_mobile",
        "vacc.walkin.bad_year",
        "vacc.walkin.usage",
    ]
    entries = outbox(r)
    assert len(entries) > 60
    for entry in entries:
        text = render_entry(entry, settings.secret_key)
        sms_within_budget(entry["t"], text)
        if lang == "en" and not devanagari and entry["t"] not in SMS_LIMITS:
            assert segments(text) == ("gsm7", 1), (entry["t"], text)


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_the_four_people_refusal_fits_with_the_longest_names(
    client, store, r, settings, lang, devanagari
):
    load_data(store, worst_data(store.now().date()))
    name = NAME_HI if devanagari else NAME_EN
    for c in "bcde":
        assert store.book(
            mobile="+919811111111",
            name=other(name, c),
            birth_year=1990,
            session_id=f"W70-{store.now():%Y%m%d}",
            slot=0,
        ).ok
    phone = Phone(client)
    phone.sms(f"LANG {lang}")
    phone.sms("BOOK")
    phone.sms("Fifth Person")
    refused = last_text(r, settings, phone.number)
    sms_within_budget("sms.hinted", refused)
    if lang == "en" and not devanagari:
        assert segments(refused) == ("gsm7", 1)
    phone.dial()
    screen = phone.press("1", "Fifth Person")  # Phone checks CON/END and 160
    assert screen.splitlines()[0].count(",") == 3, screen


@pytest.mark.parametrize("lang, devanagari", LANGS)
def test_the_booking_sms_drops_or_cuts_the_address_to_stay_in_budget(lang, devanagari):
    values = worst_values(lang, devanagari)
    params = params_of("sms.booked", lang, values)
    text = render("sms.booked", lang, params, "secret")
    encoding, parts = segments(text)
    assert parts <= (2 if encoding == "gsm7" else 3) and (encoding == "gsm7" or len(text) <= 201)
    short = {**params, "name": "Asha Devi", "centre": "PHC Saket", "address": "J Block, Saket"}
    assert "J Block, Saket" in render("sms.booked", lang, short, "secret")


@pytest.mark.parametrize(
    "stiff",
    [
        "जन्म वर्ष",
        "टीकाकर्मी",
        "सत्र",
        "रोकी गई",
        "Ref ",
        "<ref>",
        "छूटी",
        "रद्द नहीं हो सकती",
        "नए कोड को",
        "पिनकोड जहां",
        "रद्द, स्लॉट खाली",
        "स्लॉट",
    ],
)
def test_hindi_texts_avoid_the_phrasings_that_read_as_translated(stiff):
    hi = messages.catalogue("hi")
    assert not [k for k, v in hi.items() if stiff in v and not k.startswith("kw.")]


# A full stop that ends a sentence: after a word or a placeholder, before a space or the end.
_FULL_STOP = re.compile(r"(?<=[\w}])\.(?=\s|$)")
_LATIN_SENTENCE = re.compile(r"\b[A-Za-z][A-Za-z ]*[A-Za-z]\.(?=\s|$)")


def full_stops(text: str) -> list[str]:
    """The sentences of a Hindi text ended with "." rather than "।", English ones left out
    (a command such as "For English send LANG EN." is English)."""
    hindi = _LATIN_SENTENCE.sub("", text)
    return [hindi[max(0, m.start() - 20) : m.end()] for m in _FULL_STOP.finditer(hindi)]


def test_the_full_stop_check_tells_a_code_from_a_sentence():
    assert full_stops("प्रमाणपत्र {cert}. नागरिक को मिलेगा।") == ["प्रमाणपत्र {cert}."]
    assert full_stops("खुराक दर्ज हुई. नागरिक") == ["खुराक दर्ज हुई."]
    assert not full_stops("For English send LANG EN.")
    assert not full_stops("बैच AB-123/45.6 और A.Kumar, कोड {code}। 12.30 बजे")


def test_hindi_sentences_end_with_a_danda():
    hi = messages.catalogue("hi")
    found = {k: full_stops(v) for k, v in hi.items() if not k.startswith("kw.")}
    assert {k: v for k, v in found.items() if v} == {}
