"""Unit layer: references catch typos; codes are derived, unpredictable without the key, and
stable; key ids tell keys apart. Pure functions of gateway/codes.py, no Redis."""

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


def test_the_check_digit_is_verhoeffs():
    # The textbook example: 236 gets check digit 3, and 2363 passes while 2336 does not.
    assert codes.verhoeff_check_digit("236") == "3"
    assert codes.verhoeff_valid("2363") and not codes.verhoeff_valid("2336")


def test_a_reference_is_shown_in_two_groups_of_five():
    assert codes.format_reference("1234567890") == "12345 67890"
    assert codes.format_reference("123") == "123"  # not ours: shown as it came


@pytest.mark.parametrize("typed", ["१२३४५६७८९०", "１２３４５６７８９０"])
def test_devanagari_and_full_width_digits_read_as_digits(typed):
    assert codes.ascii_digits(typed) == "1234567890"


# -- certificate IDs ---------------------------------------------------------------------------


def _certs(n=50, partitions=256):
    return [
        (
            codes.certificate_id(
                "key-a", codes.new_reference(i % partitions, partitions), i % partitions, partitions
            ),
            i % partitions,
        )
        for i in range(n)
    ]


def test_certificate_ids_are_fifteen_digits_in_their_bucket_and_pass_their_check():
    for cert, partition in _certs(300):
        assert len(cert) == 15 and cert.isdigit() and cert[0] != "0"
        assert int(cert[:-1]) % 256 == partition
        assert codes.parse_certificate(cert) == cert


def test_a_certificate_id_is_stable_keyed_and_other_on_another_attempt():
    ref = codes.new_reference(7, 256)
    cert = codes.certificate_id("key-a", ref, 7, 256)
    assert codes.certificate_id("key-a", ref, 7, 256) == cert
    assert codes.certificate_id("key-b", ref, 7, 256) != cert  # unguessable without the key
    again = codes.certificate_id("key-a", ref, 7, 256, attempt=1)
    assert again != cert and int(again[:-1]) % 256 == 7


@pytest.mark.parametrize("cert", [c for c, _ in _certs(20)])
def test_every_single_digit_error_and_swap_in_a_certificate_id_is_caught(cert):
    for i, original in enumerate(cert):
        for digit in "0123456789":
            if digit != original:
                assert codes.parse_certificate(cert[:i] + digit + cert[i + 1 :]) is None
        if i + 1 < len(cert) and cert[i] != cert[i + 1]:
            swapped = cert[:i] + cert[i + 1] + cert[i] + cert[i + 2 :]
            assert codes.parse_certificate(swapped) is None, swapped


def test_certificate_ids_are_read_back_grouped_dashed_or_in_devanagari():
    cert = _certs(1)[0][0]
    shown = codes.format_certificate(cert)
    assert shown == f"{cert[:5]} {cert[5:10]} {cert[10:]}"
    devanagari = "".join(chr(0x0966 + int(d)) for d in cert)
    for typed in (shown, f"{cert[:4]}-{cert[4:8]}-{cert[8:]}", f" {cert} ", devanagari):
        assert codes.parse_certificate(typed) == cert
    for junk in ("", "CRT123456789012", cert[:-1], cert + "0", codes.new_reference()):
        assert codes.parse_certificate(junk) is None
