"""Unit layer: the conversation codec on its own, typed records to the stored form and back."""

from __future__ import annotations

import json

import pytest

from gateway.store import conversations
from gateway.store.conversations import DELETE, KEEP, FlowState, Screen, UssdSession

BOOKING_DATA = {
    "name": "आशा देवी",
    "by": 1990,
    "pin": "110017",
    "cid": "C1",
    "sid": "S1",
    "opts": [0, 2],
    "page": 0,
    "more": False,
    "dates": [["S1", "2026-12-02", []]],
}

# Written by the release before the typed records, byte for byte as it wrote them.
OLD_SESSION = (
    '{"rev": 4, "f": "booking", "s": "slot", "d": {"name": "आशा देवी", "by": 1990}, '
    '"m": "+919811111111", "l": "hi", "pl": 21, "ph": "0a1b2c3d4e5f6a7b", '
    '"scr": {"t": "ussd.hinted", "e": false, "p": {"hint": {"t": "hint.choose", "p": {}}, '
    '"body": {"t": "ussd.book.slot", "p": {"centre": "PHC Saket"}}}}}'
)
OLD_MENU_SESSION = (
    '{"rev": 1, "f": "menu", "s": "resume", "d": {"pointer": {"f": "booking", "s": "date", '
    '"d": {"name": "Asha Devi"}}}, "m": "+919811111111", "l": "en", "pl": 0, '
    '"ph": "e3b0c44298fc1c14", "scr": {"t": "ussd.resume", "p": {"name": "Asha Devi"}, '
    '"e": false}}'
)
OLD_POINTER = '{"f": "booking", "s": "date", "d": {"name": "Asha Devi", "pin": "110017"}}'
OLD_SMS = '{"s": "birth_year", "d": {"name": "Asha Devi"}}'


def _session(**changes) -> UssdSession:
    fields = {
        "at": FlowState("booking", "slot", BOOKING_DATA),
        "mobile": "+919811111111",
        "lang": "hi",
        "path_len": 21,
        "path_digest": "0a1b2c3d4e5f6a7b",
        "screen": Screen("ussd.book.slot", {"centre": "PHC Saket"}),
        "rev": 4,
    }
    return UssdSession(**{**fields, **changes})


@pytest.mark.parametrize(
    "session",
    [
        _session(),
        _session(screen=Screen("ussd.book.booked", {"name": "Asha", "ref": "12345"}, end=True)),
        _session(at=FlowState("menu", "main", {}), lang="en", path_len=0, rev=1),
    ],
    ids=["mid-booking", "ended", "menu"],
)
def test_a_ussd_session_comes_back_as_it_was_stored(session):
    stored = conversations.session_to_stored(session)
    assert conversations.session_from_stored(json.loads(stored)) == session


def test_a_ussd_session_is_stored_in_the_compact_form_the_commit_script_reads():
    stored = json.loads(conversations.session_to_stored(_session()))
    assert set(stored) == {"rev", "f", "s", "d", "m", "l", "pl", "ph", "scr"}
    assert stored["rev"] == 4  # converse.lua compares it with the hop's expected revision
    assert stored["scr"] == {"t": "ussd.book.slot", "p": {"centre": "PHC Saket"}, "e": False}
    assert "आशा देवी" in conversations.session_to_stored(_session())  # not \\u-escaped


def test_a_session_stored_by_the_previous_release_loads():
    session = conversations.session_from_stored(json.loads(OLD_SESSION))
    assert session.at == FlowState("booking", "slot", {"name": "आशा देवी", "by": 1990})
    assert (session.mobile, session.lang, session.rev) == ("+919811111111", "hi", 4)
    assert (session.path_len, session.path_digest) == (21, "0a1b2c3d4e5f6a7b")
    assert session.screen.template == "ussd.hinted" and session.screen.end is False
    assert session.screen.params["body"]["t"] == "ussd.book.slot"
    again = conversations.session_to_stored(session)
    assert json.loads(again) == json.loads(OLD_SESSION)  # stored again, nothing is lost


def test_a_menu_offering_a_dropped_booking_keeps_the_pointer_it_was_stored_with():
    session = conversations.session_from_stored(json.loads(OLD_MENU_SESSION))
    offered = conversations.flow_from_stored(session.at.data["pointer"])
    assert offered == FlowState("booking", "date", {"name": "Asha Devi"})
    assert conversations.session_to_stored(session) == OLD_MENU_SESSION  # byte for byte


def test_a_dropped_booking_comes_back_as_it_was_stored_byte_for_byte():
    pointer = conversations.flow_from_stored(json.loads(OLD_POINTER))
    assert pointer == FlowState("booking", "date", {"name": "Asha Devi", "pin": "110017"})
    assert conversations.pointer_to_stored(pointer) == OLD_POINTER


def test_an_sms_conversation_is_the_booking_and_is_stored_without_its_name():
    at = conversations.flow_from_stored(json.loads(OLD_SMS))
    assert at == FlowState("booking", "birth_year", {"name": "Asha Devi"})
    assert conversations.sms_to_stored(at) == OLD_SMS
    at = FlowState("booking", "centre", BOOKING_DATA)
    assert conversations.flow_from_stored(json.loads(conversations.sms_to_stored(at))) == at


def test_keep_and_delete_are_spelled_as_the_commit_script_reads_them():
    at = FlowState("booking", "name", {})
    assert conversations.change(KEEP, conversations.pointer_to_stored) == "="
    assert conversations.change(DELETE, conversations.pointer_to_stored) == ""
    assert (
        conversations.change(at, conversations.pointer_to_stored)
        == '{"f": "booking", "s": "name", "d": {}}'
    )


def test_nothing_stored_loads_as_nothing():
    assert conversations.loads(None) is None and conversations.loads("") is None
