"""Worker layer: the outbox worker sending through the real Africa's Talking SDK to the fake API on
loopback, against a real Redis: outcomes, retries, dead letters, batching, concurrency, rate."""

from __future__ import annotations

import logging
from datetime import date

import pytest
import redis
from redis.cluster import RedisCluster

from app import create_app
from gateway import codes
from gateway.outbox import (
    KEEP_SECONDS,
    REPORT_SECONDS,
    dead_letters,
    make_provider,
    start_background,
    stats,
)
from gateway.providers.console import kept_messages
from gateway.providers.result import RETRY, SENT, SendResult
from gateway.store import keys
from gateway.store.redisconn import from_url
from tests.fake_at import BLACKLISTED, DND, INVALID_PHONE, INVALID_SENDER, NO_BALANCE, SLOW_OK, http
from tests.outbox_helpers import (
    assert_compact,
    counts,
    in_outbox,
    partition_of_message,
    pending,
    queue_sms,
    running,
    status,
    wait_for,
)

PHONE = "+919811111111"


def test_booking_code_reaches_the_phone_once(r, store, sample, at_settings, fake):
    session_id = f"S100-{date.fromisoformat(store.today()):%Y%m%d}"
    booked = store.book(
        mobile=PHONE, name="Asha Devi", birth_year=1990, session_id=session_id, slot=0
    )
    assert booked.ok
    ref = booked.value
    with running(r, at_settings):
        wait_for(lambda: status(r, f"book:{ref}:0").get("status") == "sent", "the booking SMS")
    code = codes.derive_code(at_settings.secret_key, ref, 0)
    [text] = fake.received_by(PHONE)
    assert f"Code {code}" in text and "Ref" in text and "Asha Devi" in text
    [request] = fake.requests
    assert request["username"] == "sandbox" and request["apiKey"] == fake.api_key
    assert request["from"] == "TIKALINE" and request["bulkSMSMode"] == "1"
    message = status(r, f"book:{ref}:0")
    assert message["provider_id"] == fake.delivered[0]["id"]
    assert_compact(r, f"book:{ref}:0")
    p = partition_of_message(r, f"book:{ref}:0")
    lookup = keys.provider_message(message["provider_id"])
    assert r.get(lookup).decode() == f"{p} book:{ref}:0"  # where the reports find it
    # Reports come within days: the lookup goes long before the 30-day status does.
    assert 0 < r.ttl(lookup) <= REPORT_SECONDS
    assert REPORT_SECONDS < r.ttl(keys.message(p, f"book:{ref}:0")) <= KEEP_SECONDS
    assert in_outbox(r) == 0  # acknowledged entries are deleted
    assert code not in str(r.hgetall(keys.message(p, f"book:{ref}:0")))
    assert stats(r) == {
        "queued": 1,
        "sent": 1,
        "delivered": 0,
        "failed": 0,
        "dead": 0,
        "in_outbox": 0,
        "waiting_retry": 0,
    }


def test_a_server_error_is_retried_and_the_person_gets_one_sms(r, at_settings, fake):
    fake.script(http(500))
    queue_sms(r, "lock:1", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:1").get("status") == "sent", "the retried SMS")
    assert len(fake.requests) == 2
    assert len(fake.received_by(PHONE)) == 1
    message = status(r, "lock:1")
    assert message["attempts"] == "2" and "Internal Server Error" in message["last_error"]
    assert_compact(r, "lock:1")  # the retry's copy of the text's fields is gone


def test_a_timeout_is_retried_and_never_loses_the_message(r, at_settings, fake):
    fake.script(SLOW_OK)  # the API takes it but answers after the client gave up
    provider = make_provider(at_settings, r, timeout=(2, 0.3))
    queue_sms(r, "lock:2", PHONE)
    with running(r, at_settings, provider=provider):
        wait_for(lambda: status(r, "lock:2").get("status") == "sent", "the SMS after a timeout")
    assert "timeout" in status(r, "lock:2")["last_error"]
    # A read timeout cannot tell "not sent" from "sent, answer lost"; we retry (at least
    # once). Here the API had sent it: the person gets the same text twice, never none.
    fake.release_slow()
    wait_for(lambda: len(fake.delivered) == 2, "the slow answer to finish")
    first, second = fake.received_by(PHONE)
    assert first == second and len(fake.requests) == 2


@pytest.mark.parametrize(
    "answer, reason",
    [(INVALID_PHONE, "403 InvalidPhoneNumber"), (BLACKLISTED, "406 UserInBlacklist")],
)
def test_a_rejected_number_is_a_dead_letter_at_once(r, at_settings, fake, answer, reason):
    fake.script(answer)
    queue_sms(r, "lock:3", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:3").get("status") == "dead", "the dead letter")
    assert len(fake.requests) == 1 and fake.delivered == []
    [letter] = dead_letters(r)
    assert letter["k"] == "lock:3" and letter["to"] == PHONE and reason in letter["error"]
    assert letter["attempts"] == "1"
    assert stats(r)["waiting_retry"] == 0 and in_outbox(r) == 0
    assert counts(r)["dead"] == 1


@pytest.mark.parametrize("answer", [NO_BALANCE, DND, http(502)])
def test_passing_refusals_are_retried(r, at_settings, fake, answer):
    fake.script(answer)
    queue_sms(r, "lock:4", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:4").get("status") == "sent", "the retried SMS")
    assert len(fake.requests) == 2 and len(fake.received_by(PHONE)) == 1


class _Wordy:
    """A provider whose answers carry long details: a refusal first, then success."""

    def __init__(self):
        self.calls = 0

    def send(self, to: str, text: str, entry: dict) -> SendResult:
        self.calls += 1
        outcome = RETRY if self.calls == 1 else SENT
        return SendResult(outcome, message_id="ATXid_wordy", detail=f"{outcome}: " + "é" * 100)


def test_long_provider_details_keep_the_status_hash_compact(r, settings):
    queue_sms(r, "lock:w", PHONE)
    with running(r, settings, provider=_Wordy()):
        wait_for(lambda: status(r, "lock:w").get("status") == "sent", "the retried SMS")
    message = status(r, "lock:w")
    assert message["last_error"].startswith(RETRY) and message["detail"].startswith(SENT)
    assert_compact(r, "lock:w")


def test_after_max_attempts_the_message_is_kept_as_a_dead_letter(r, at_settings, fake):
    fake.script(http(500), http(500), http(500))
    queue_sms(r, "lock:5", PHONE)
    with running(r, at_settings, max_attempts=3):
        wait_for(lambda: status(r, "lock:5").get("status") == "dead", "the dead letter")
    assert len(fake.requests) == 3
    [letter] = dead_letters(r)
    assert letter["attempts"] == "3" and "after 3 attempts" in letter["error"]


def test_an_invalid_sender_id_is_reported_as_a_configuration_error(r, at_settings, fake, caplog):
    fake.script(INVALID_SENDER, INVALID_SENDER)
    queue_sms(r, "lock:6", PHONE)
    with caplog.at_level(logging.ERROR, "gateway.outbox"), running(r, at_settings, max_attempts=2):
        wait_for(lambda: status(r, "lock:6").get("status") == "dead", "the dead letter")
    assert "configuration_error k=lock:6 detail=InvalidSenderId" in caplog.text
    assert "InvalidSenderId" in dead_letters(r)[0]["error"]


def test_a_wrong_api_key_is_a_configuration_error(r, at_settings, fake):
    at_settings.at_api_key = "wrong"
    queue_sms(r, "lock:7", PHONE)
    with running(r, at_settings, max_attempts=1):
        wait_for(lambda: status(r, "lock:7").get("status") == "dead", "the dead letter")
    assert "authentication" in dead_letters(r)[0]["error"] and fake.delivered == []


def test_the_same_message_key_queued_twice_is_sent_once(r, at_settings, fake):
    queue_sms(r, "lock:8", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:8").get("status") == "sent", "the SMS")
        queue_sms(r, "lock:8", PHONE)  # a replayed request, or an entry left after a crash
        wait_for(lambda: in_outbox(r) == 0, "the second entry to be acknowledged")
    assert len(fake.requests) == 1


class _CountingConnection(redis.Connection):
    """Counts round trips: one per command or script sent on its own."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        type(self).sent += 1
        return super().send_packed_command(command, check_health)


def test_sends_recorded_together_each_keep_their_own_provider_id(r, redis_url, at_settings, fake):
    phones = [f"+9198111160{i:02d}" for i in range(40)]
    for i, phone in enumerate(phones):
        queue_sms(r, f"lock:g{i}", phone)
    client = from_url(redis_url, connection_class=_CountingConnection)
    before = _CountingConnection.sent
    with running(client, at_settings, concurrency=8) as worker:
        wait_for(lambda: len(fake.delivered) == 40, "forty sends")
        wait_for(lambda: in_outbox(r) == 0, "every send recorded")
        worker.stop()
    trips = _CountingConnection.sent - before
    issued = {d["to"]: d["id"] for d in fake.delivered}
    for i, phone in enumerate(phones):
        message = status(r, f"lock:g{i}")
        assert message["status"] == "sent" and message["provider_id"] == issued[phone]
        where = f"{keys.partition_of(phone)} lock:g{i}"
        assert r.get(keys.provider_message(issued[phone])).decode() == where
    assert stats(r)["sent"] == 40 and len(fake.requests) == 40
    # Reading a batch over the partitions is one pipeline, starting it another, and the sends
    # finishing together are recorded by one more: at worst three round trips per SMS, plus
    # the worker's start-up, its connections' handshakes and its sweeps (about 85 in all on
    # one Redis when batches form). A cluster answers each pipeline master by master.
    masters = len(client.get_primaries()) if isinstance(client, RedisCluster) else 1
    assert trips < (3 * 40 + 20) * masters, f"{trips} round trips for 40 SMS"


def test_a_malformed_entry_becomes_a_dead_letter(r, at_settings, fake):
    bad = {"k": "lock:bad", "t": "sms.locked", "l": "en", "p": "{}"}  # no "to"
    r.xadd(keys.outbox(keys.partition_of(PHONE)), bad)
    queue_sms(r, "lock:good", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:good").get("status") == "sent", "the good SMS")
        wait_for(lambda: dead_letters(r), "the dead letter")
    [letter] = dead_letters(r)
    assert letter["k"] == "lock:bad" and letter["error"] == "malformed outbox entry"
    assert len(fake.requests) == 1 and in_outbox(r) == 0


def test_sends_in_flight_never_exceed_the_concurrency(r, at_settings, fake):
    fake.hold_from(0)
    for i in range(5):
        queue_sms(r, f"lock:c{i}", f"+91981111110{i}")
    with running(r, at_settings, concurrency=3):
        wait_for(lambda: fake.held == 3, "three sends in flight")
        # The other two are not even read while every sender is busy.
        assert pending(r) == 3
        fake.release()
        wait_for(lambda: stats(r)["sent"] == 5, "all five sent")
    assert len(fake.requests) == 5


def test_the_web_process_can_deliver_in_a_background_thread(r, settings):
    app = create_app({"SETTINGS": settings})
    queue_sms(r, "lock:bg", PHONE)
    handle = start_background(app, idle=0.05)
    try:
        wait_for(lambda: status(r, "lock:bg").get("status") == "sent", "the background send")
    finally:
        handle.stop()
    assert not handle.thread.is_alive() and len(kept_messages(r, PHONE)) == 1


def test_a_username_without_an_api_key_is_refused_at_start(settings):
    settings.at_username = "sandbox"
    result = create_app({"SETTINGS": settings}).test_cli_runner().invoke(args=["outbox-worker"])
    assert result.exit_code == 1 and "AT_API_KEY is not" in result.output
