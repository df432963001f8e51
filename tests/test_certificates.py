"""Journey layer (the SMS webhook, real Redis): anyone checks a certificate with ``CERT <id>``:
genuine or not, and what it certifies with the name masked; typos caught before any lookup;
lookups limited per mobile in a rolling hour."""

from __future__ import annotations

from datetime import date

import pytest

from flows import certificate
from flows.messages.sms import segments
from gateway import codes
from gateway.store import keys
from tests.conversation_helpers import VACCINATOR, Phone, appointments, last_text, texts
from tests.test_vaccinator import book_direct

STRANGER = "+919833300000"


def vaccinated(client, store, name: str = "Asha Devi", year: int = 1990) -> tuple[str, str]:
    """A booking at PHC Saket verified and dosed by its vaccinator over SMS; (ref, cert)."""
    ref, code = book_direct(store, name, year)
    vaccinator = Phone(client, VACCINATOR)
    vaccinator.sms(f"VERIFY {ref} {code}")
    vaccinator.sms(f"DOSE {ref}")
    cert = appointments(store.r)[ref]["cert"]
    return ref, cert


def on(store) -> str:
    """Today as the certificate shows it: 02-12-2026."""
    return f"{date.fromisoformat(store.today()):%d-%m-%Y}"


def test_the_dose_sms_carries_the_certificate_and_anyone_can_check_it(
    client, sample, r, settings, store
):
    ref, cert = vaccinated(client, store)
    shown = codes.format_certificate(cert)
    final = last_text(r, settings, "+919822200000")
    assert final.endswith(f"Certificate ID {shown}. To check it: CERT + ID")
    assert segments(final) == ("gsm7", 1)
    assert last_text(r, settings, VACCINATOR).startswith(
        f"Dose recorded for Asha Devi (1990), {codes.format_reference(ref)}. Certificate {shown}."
    )

    stranger = Phone(client, STRANGER)
    expected = (
        f"TikaLine: certificate {shown} is GENUINE: A**** D****, born 1990, "
        f"dose 1 of 2 of COVISHIELD, {on(store)}, PHC Saket."
    )
    for typed in (f"CERT {shown}", f"cert {cert}", f"Cert: {cert[:5]}-{cert[5:]}"):
        stranger.sms(typed)
        assert last_text(r, settings, STRANGER) == expected
    assert segments(expected) == ("gsm7", 1)


def test_a_certificate_is_checked_in_hindi_with_devanagari_digits(
    client, sample, r, settings, store
):
    _, cert = vaccinated(client, store, "आशा देवी")
    stranger = Phone(client, STRANGER)
    stranger.sms("LANG HI")
    stranger.sms("प्रमाणपत्र " + "".join(chr(0x0966 + int(d)) for d in cert))
    assert last_text(r, settings, STRANGER) == (
        f"टीकालाइन: प्रमाणपत्र {codes.format_certificate(cert)} असली है: आ**** दे****, "
        f"जन्म 1990, COVISHIELD की 2 में से खुराक 1, {on(store)}, PHC Saket।"
    )


def test_a_repeated_dose_keeps_the_certificate_id_and_its_index(client, sample, r, store):
    ref, cert = vaccinated(client, store)
    Phone(client, VACCINATOR).sms(f"DOSE {ref}")
    assert appointments(r)[ref]["cert"] == cert
    # The ID carries the appointment's bucket: its index lives beside the appointment.
    assert keys.ref_partition(cert) == keys.ref_partition(ref)
    assert r.get(keys.certificate(cert)) == ref.encode()


def test_a_dose_whose_first_id_is_taken_gets_the_second(client, sample, r, settings, store):
    ref, code = book_direct(store, "Asha Devi")
    first, second = store.certificate_candidates(ref)
    r.set(keys.certificate(first), "9999999999")  # another dose's, as a clash would leave it
    vaccinator = Phone(client, VACCINATOR)
    vaccinator.sms(f"VERIFY {ref} {code}")
    vaccinator.sms(f"DOSE {ref}")
    assert appointments(r)[ref]["cert"] == second
    stranger = Phone(client, STRANGER)
    stranger.sms(f"CERT {second}")
    assert "is GENUINE: A**** D****" in last_text(r, settings, STRANGER)
    stranger.sms(f"CERT {first}")
    assert last_text(r, settings, STRANGER) == (
        f"TikaLine: NOT GENUINE. No certificate has the ID {codes.format_certificate(first)}."
    )


def test_typos_are_caught_before_any_lookup_and_refs_are_told_apart(
    client, sample, r, settings, store
):
    ref, cert = vaccinated(client, store)
    stranger = Phone(client, STRANGER)
    typo = cert[:3] + str((int(cert[3]) + 1) % 10) + cert[4:]
    for _ in range(certificate.SMS_LOOKUPS + 2):  # typos are never counted as lookups
        stranger.sms(f"CERT {typo}")
    assert last_text(r, settings, STRANGER) == (
        f"TikaLine: {typo} is not a certificate ID. Please check the 15 digits "
        "(e.g. 12345 67890 12345)."
    )
    stranger.sms(f"CERT {ref}")
    assert last_text(r, settings, STRANGER).startswith(
        f"TikaLine: {codes.format_reference(ref)} is a booking ref. A certificate ID has 15 digits"
    )
    stranger.sms("CERT")
    assert last_text(r, settings, STRANGER) == (
        "To check a certificate, send CERT and its ID, e.g. CERT 12345 67890 12345."
    )
    stranger.sms(f"CERT {cert}")
    assert "is GENUINE" in last_text(r, settings, STRANGER)


def test_an_id_with_a_good_check_digit_but_no_certificate_is_not_genuine(
    client, sample, r, settings, store
):
    forged = codes.certificate_id("not-our-key", "1234567897", 3, keys.PARTITIONS)
    Phone(client, STRANGER).sms(f"CERT {forged}")
    assert last_text(r, settings, STRANGER) == (
        f"TikaLine: NOT GENUINE. No certificate has the ID {codes.format_certificate(forged)}."
    )


def test_lookups_are_limited_per_mobile_in_a_rolling_hour(
    client, sample, r, settings, store, clock
):
    _, cert = vaccinated(client, store)
    stranger, other = Phone(client, STRANGER), Phone(client, "+919833300001")
    for _ in range(certificate.SMS_LOOKUPS):
        stranger.sms(f"CERT {cert}")
        assert "is GENUINE" in last_text(r, settings, STRANGER)
        clock.advance(60)
    stranger.sms(f"CERT {cert}")
    limited = "TikaLine: too many certificate checks from this number. Please try again in"
    assert last_text(r, settings, STRANGER) == f"{limited} 50 min."
    other.sms(f"CERT {cert}")  # another mobile is not held back
    assert "is GENUINE" in last_text(r, settings, other.number)

    clock.advance(50 * 60)  # the first lookup is an hour old: one more may go
    stranger.sms(f"CERT {cert}")
    assert "is GENUINE" in last_text(r, settings, STRANGER)
    stranger.sms(f"CERT {cert}")
    assert last_text(r, settings, STRANGER) == f"{limited} 1 min."


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_every_certificate_reply_fits_one_sms_budget(client, sample, r, settings, store, lang):
    ref, cert = vaccinated(client, store, "Aishwarya Venkataraman Iyengar Subramaniam Krishna")
    stranger = Phone(client, STRANGER)
    stranger.sms(f"LANG {lang}")
    start = len(texts(r, settings, STRANGER))
    for typed in ("CERT", f"CERT {cert}", f"CERT {cert[:-1]}9", f"CERT {ref}", "CERT 1" * 9):
        stranger.sms(typed)
    replies = texts(r, settings, STRANGER)[start:]
    assert len(replies) == 5
    for text in replies:
        encoding, parts = segments(text)
        assert parts <= (1 if encoding == "gsm7" else 3), text
