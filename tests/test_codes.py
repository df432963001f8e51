"""References catch typos; codes are derived, unpredictable without the key, and stable."""

from __future__ import annotations

import pytest

from gateway import codes


def _refs(n=200):
    return [codes.new_reference() for _ in range(n)]


def test_new_references_have_ten_digits_and_pass_their_check():
    for ref in _refs():
        assert len(ref) == 10 and ref.isdigit() and ref[0] != "0"
        assert codes.parse_reference(ref) == ref


@pytest.mark.parametrize("ref", _refs(50))
def test_every_single_digit_error_is_caught(ref):
    for i, original in enumerate(ref):
        for digit in "0123456789":
            if digit != original:
                typo = ref[:i] + digit + ref[i + 1 :]
                assert codes.parse_reference(typo) is None, typo


@pytest.mark.parametrize("ref", _refs(50))
def test_every_adjacent_transposition_is_caught(ref):
    for i in range(len(ref) - 1):
        if ref[i] != ref[i + 1]:
            swapped = ref[:i] + ref[i + 1] + ref[i] + ref[i + 2 :]
            assert codes.parse_reference(swapped) is None, swapped


def test_references_are_read_back_grouped_dashed_or_in_devanagari():
    ref = codes.new_reference()
    devanagari = "".join(chr(0x0966 + int(d)) for d in ref)
    for typed in (
        codes.format_reference(ref),
        f"{ref[:3]}-{ref[3:7]}-{ref[7:]}",
        f"  {ref} ",
        devanagari,
    ):
        assert codes.parse_reference(typed) == ref


@pytest.mark.parametrize("junk", ["", "abc", "12345", "1" * 13, "١٢٣٤٥٦٧٨٩٠", "😀" * 10])
def test_junk_is_not_a_reference(junk):
    assert codes.parse_reference(junk) is None


def test_codes_are_four_digits_stable_and_keyed():
    ref = codes.new_reference()
    code = codes.derive_code("key-a", ref, 0)
    assert len(code) == 4 and code.isdigit()
    assert codes.derive_code("key-a", ref, 0) == code
    # Another key gives other codes: without SECRET_KEY they cannot be computed.
    others = {codes.derive_code(f"key-{i}", ref, 0) for i in range(50)}
    assert len(others) > 40


def test_codes_spread_evenly_over_the_ten_thousand_values():
    seen = [codes.derive_code("k", codes.new_reference(), 0) for _ in range(5000)]
    first_digits = [int(c[0]) for c in seen]
    for digit in range(10):
        assert 350 < first_digits.count(digit) < 650  # 500 expected; a skew would aid guessing
    assert len(set(seen)) > 3500


def test_the_stored_check_is_keyed_per_booking_and_accepts_devanagari_entry():
    ref, other_ref = codes.new_reference(), codes.new_reference()
    code = codes.derive_code("k", ref, 0)
    check = codes.code_check("k", ref, code)
    assert len(check) == 16 and int(check, 16) >= 0
    # The same code at another booking has another check: no table of 10,000 fits all.
    assert codes.code_check("k", other_ref, code) != check
    devanagari = "".join(chr(0x0966 + int(d)) for d in code)
    assert codes.code_check("k", ref, devanagari) == check
    assert codes.code_check("other", ref, code) != check


def test_certificate_ids_are_stable_per_booking():
    ref = codes.new_reference()
    assert codes.certificate_id("k", ref) == codes.certificate_id("k", ref)
    assert codes.certificate_id("k", ref) != codes.certificate_id("k", codes.new_reference())


# -- key ids and rotation (SECRET_KEY_PREVIOUS) --------------------------------------------

KEY_A, KEY_B = "a" * 32, "b" * 32


def test_key_ids_are_short_stable_and_tell_keys_apart():
    assert codes.key_id(KEY_A) == codes.key_id(KEY_A)
    assert len(codes.key_id(KEY_A)) == 4 and codes.key_id(KEY_A) != codes.key_id(KEY_B)
    ring = codes.Keyring(KEY_B, (KEY_A,))
    assert ring.key(codes.key_id(KEY_A)) == KEY_A and ring.key(None) == KEY_B
    assert ring.key("ffff" if codes.key_id(KEY_A) != "ffff" else "0000") is None


def _app(settings, key: str, previous: tuple[str, ...] = ()):
    from dataclasses import replace

    from app import create_app

    rotated = replace(settings, secret_key=key, secret_key_previous=previous)
    return rotated, create_app({"SETTINGS": rotated, "TESTING": True}).test_client()


def _rendered(r, settings, to: str, template: str = "") -> list[str]:
    from flows.messages.sms import render_entry
    from tests.conversation_helpers import outbox

    return [
        render_entry(e, settings.keyring)
        for e in outbox(r)
        if e["to"] == to and e["t"].startswith(template)
    ]


def _book(client) -> None:
    from tests.conversation_helpers import Phone

    for text in ("BOOK 110017", "Asha Devi", "1990", "1", "1", "1", "YES"):
        Phone(client).sms(text)


def test_codes_texted_before_a_rotation_stay_valid_with_the_previous_key(settings, sample, r):
    from tests.conversation_helpers import VACCINATOR, Phone, appointments, ref_and_code

    old, client = _app(settings, KEY_A)
    _book(client)
    ref, code = ref_and_code(_rendered(r, old, "+919811111111")[-1])
    assert appointments(r)[ref]["k"] == codes.key_id(KEY_A)

    new, client = _app(settings, KEY_B, (KEY_A,))
    Phone(client).sms("STATUS")
    slip = _rendered(r, new, "+919811111111")[-1]
    assert f"Code {code}" in slip  # the same code the citizen was texted
    # The booking SMS still waiting in the outbox renders the same code too.
    assert f"Code {code}" in _rendered(r, new, "+919811111111", "sms.booked")[0]
    Phone(client, VACCINATOR).sms(f"VERIFY {ref} {code}")
    assert _rendered(r, new, VACCINATOR)[-1].startswith("Code OK.")

    Phone(client, "+919822222222").sms("BOOK 110017")
    for text in ("Ravi Kumar", "1985", "1", "1", "1", "YES"):
        Phone(client, "+919822222222").sms(text)
    ref2, code2 = ref_and_code(_rendered(r, new, "+919822222222")[-1])
    assert appointments(r)[ref2]["k"] == codes.key_id(KEY_B)
    assert code2 == codes.derive_code(KEY_B, ref2, 0)


def test_a_retired_key_refuses_its_codes_without_an_error(settings, sample, r):
    from tests.conversation_helpers import VACCINATOR, Phone, appointments, ref_and_code

    old, client = _app(settings, KEY_A)
    _book(client)
    ref, code = ref_and_code(_rendered(r, old, "+919811111111")[-1])

    new, client = _app(settings, KEY_B)  # A dropped: not in SECRET_KEY_PREVIOUS
    Phone(client, VACCINATOR).sms(f"VERIFY {ref} {code}")
    reply = _rendered(r, new, VACCINATOR)[-1]
    assert "Code OK" not in reply and "attempt" in reply
    assert appointments(r)[ref]["state"] == "booked"
    Phone(client).sms("STATUS")
    slip = _rendered(r, new, "+919811111111")[-1]
    assert "Code ----" in slip and code not in slip  # no code to show: CODE <ref> makes one

    # CODE <ref> gives a fresh code under the current key, which verifies.
    Phone(client).sms(f"CODE {ref}")
    fresh = ref_and_code(_rendered(r, new, "+919811111111")[-1])[1]
    assert appointments(r)[ref]["k"] == codes.key_id(KEY_B)
    Phone(client, VACCINATOR).sms(f"VERIFY {ref} {fresh}")
    assert _rendered(r, new, VACCINATOR)[-1].startswith("Code OK.")


def test_two_keys_with_one_id_refuse_to_start(tmp_path):
    from gateway.config import ConfigError, Settings

    first = KEY_A
    twin = next(
        k for k in (f"{i:032d}" for i in range(10**6)) if codes.key_id(k) == codes.key_id(first)
    )
    with pytest.raises(ConfigError, match="share the id"):
        Settings.from_env(tmp_path, env={"SECRET_KEY": first, "SECRET_KEY_PREVIOUS": twin})
