"""Journey layer: key rotation end to end, against a real Redis: codes texted before a rotation
still verify; a retired key's codes are refused cleanly. The pure parts of gateway/codes.py are
in tests/unit/test_references_and_codes.py."""

from __future__ import annotations

import pytest

from gateway import codes

KEY_A, KEY_B = "a" * 32, "b" * 32


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
