"""Store layer: the store's conversation repository against Redis: what a turn reads, what it
saves."""

from __future__ import annotations

import json

from gateway.store import keys
from gateway.store.conversations import DELETE, KEEP, FlowState, Screen, Sms, UssdSession
from tests.partitions import outbox_length
from tests.unit.test_conversation_records import OLD_POINTER, OLD_SESSION, OLD_SMS

MOBILE = "+919811111111"


def _session(rev: int = 1) -> UssdSession:
    return UssdSession(
        FlowState("booking", "pincode", {"name": "Asha Devi", "by": 1990}),
        MOBILE,
        "en",
        12,
        "0a1b2c3d4e5f6a7b",
        Screen("ussd.book.pincode", {"name": "Asha Devi"}),
        rev=rev,
    )


def test_an_sms_turn_reads_its_guard_claim_conversation_vaccinator_and_language(store, r):
    r.set(keys.sms_conversation(MOBILE), OLD_SMS)
    r.set(keys.language(MOBILE), "hi")
    r.hset(keys.vaccinator(MOBILE), mapping={"name": "Nurse Rao", "centre_id": "C1"})
    first = store.load_sms_turn("m1", MOBILE, claim_ttl=30)
    assert first.claimed and not first.replay
    assert first.conversation == FlowState("booking", "birth_year", {"name": "Asha Devi"})
    assert first.vaccinator == {"name": "Nurse Rao", "centre_id": "C1"}
    assert first.lang == "hi"
    assert not store.load_sms_turn("m1", MOBILE, claim_ttl=30).claimed  # a copy in flight
    store.release_claim("m1", MOBILE)
    assert store.load_sms_turn("m1", MOBILE, claim_ttl=30).claimed  # the retry applies it


def test_a_stranger_sms_turn_reads_nothing_but_wins_its_claim(store):
    turn = store.load_sms_turn("m1", MOBILE, claim_ttl=30)
    assert (turn.claimed, turn.replay) == (True, False)
    assert (turn.conversation, turn.vaccinator, turn.lang) == (None, None, None)


def test_a_saved_sms_turn_keeps_deletes_or_writes_the_conversation_once(store, r):
    conv_key = keys.sms_conversation(MOBILE)
    at = FlowState("booking", "pincode", {"name": "आशा देवी"})
    assert store.save_sms_turn(
        message_id="m1",
        mobile=MOBILE,
        conversation=at,
        ttl=60,
        guard_ttl=60,
        chosen_lang="hi",
        replies=[Sms("reply:m1:0", "sms.help", "hi")],
    )
    assert r.get(conv_key).decode() == '{"s": "pincode", "d": {"name": "आशा देवी"}}'
    assert r.get(keys.language(MOBILE)) == b"hi" and outbox_length(r) == 1
    assert store.load_sms_turn("m1", MOBILE, claim_ttl=30).replay
    assert not store.save_sms_turn(
        message_id="m1", mobile=MOBILE, conversation=DELETE, ttl=60, guard_ttl=60
    )  # a replay writes nothing
    assert r.get(conv_key) is not None and outbox_length(r) == 1
    assert store.save_sms_turn(
        message_id="m2", mobile=MOBILE, conversation=KEEP, ttl=60, guard_ttl=60
    )
    assert store.load_sms_turn("m3", MOBILE, claim_ttl=30).conversation == at
    assert store.save_sms_turn(
        message_id="m3", mobile=MOBILE, conversation=DELETE, ttl=60, guard_ttl=60
    )
    assert r.get(conv_key) is None and r.get(keys.language(MOBILE)) == b"hi"


def test_a_ussd_session_and_dropped_booking_stored_by_the_previous_release_load(store, r):
    r.set(keys.ussd_session(MOBILE, "S1"), OLD_SESSION)
    r.set(keys.resume(MOBILE), OLD_POINTER)
    turn = store.load_ussd_turn("S1", MOBILE)
    assert turn.session.at.state == "slot" and turn.session.rev == 4
    assert turn.resume == FlowState("booking", "date", {"name": "Asha Devi", "pin": "110017"})
    assert turn.lang is None
    assert store.ussd_session("S1", MOBILE) == turn.session
    assert store.ussd_session("S2", MOBILE) is None


def test_a_ussd_hop_saves_only_over_the_revision_it_read(store, r):
    assert store.save_ussd_turn(
        session_id="S1",
        mobile=MOBILE,
        session=_session(1),
        ttl=60,
        expect_rev=0,
        resume=_session().at,
        resume_ttl=60,
    )
    assert not store.save_ussd_turn(
        session_id="S1", mobile=MOBILE, session=_session(1), ttl=60, expect_rev=0
    )  # a duplicate hop lost the race
    assert store.save_ussd_turn(
        session_id="S1", mobile=MOBILE, session=_session(2), ttl=60, expect_rev=1, resume=DELETE
    )
    turn = store.load_ussd_turn("S1", MOBILE)
    assert turn.session == _session(2) and turn.resume is None
    assert json.loads(r.get(keys.ussd_session(MOBILE, "S1")))["rev"] == 2


def test_an_ended_session_keeps_its_state_while_its_booking_is_kept_for_the_next_dial(store, r):
    stored = json.dumps({"k": "kept as it was"})
    r.set(keys.ussd_session(MOBILE, "S1"), stored)
    assert store.save_ussd_turn(
        session_id="S1", mobile=MOBILE, session=KEEP, resume=_session().at, resume_ttl=60
    )
    assert r.get(keys.ussd_session(MOBILE, "S1")).decode() == stored
    assert store.load_ussd_turn("S2", MOBILE).resume == _session().at
