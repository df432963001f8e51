"""The outbox worker against a real Redis and the real Africa's Talking SDK on loopback."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app import create_app
from bench.outbound import SDKTransportClient
from flows.messages.sms import render_entry
from gateway import codes
from gateway.config import Settings
from gateway.outbox import (
    KEEP_SECONDS,
    REPORT_SECONDS,
    dead_letters,
    make_provider,
    start_background,
    stats,
)
from gateway.providers.africastalking import SMSClient, reduce_answer
from gateway.providers.console import kept_messages
from gateway.providers.result import RETRY, SENT, SendResult
from gateway.store import keys
from tests.fake_at import (
    BLACKLISTED,
    DND,
    GARBLED,
    INVALID_PHONE,
    INVALID_SENDER,
    NO_BALANCE,
    SLOW_OK,
    FakeAT,
    http,
)
from tests.outbox_helpers import (
    RedisServer,
    assert_compact,
    counts,
    queue_sms,
    running,
    status,
    wait_for,
)
from tests.servers import free_port, redis_binary

ROOT = Path(__file__).resolve().parents[1]
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
    assert r.get(keys.provider_message(message["provider_id"])).decode() == f"book:{ref}:0"
    # Reports come within days: the lookup goes long before the 30-day status does.
    assert 0 < r.ttl(keys.provider_message(message["provider_id"])) <= REPORT_SECONDS
    assert REPORT_SECONDS < r.ttl(keys.message(f"book:{ref}:0")) <= KEEP_SECONDS
    assert r.xlen(keys.OUTBOX) == 0  # acknowledged entries are deleted
    assert code not in str(r.hgetall(keys.message(f"book:{ref}:0")))
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
    assert r.zcard(keys.RETRY) == 0 and r.xlen(keys.OUTBOX) == 0
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
        wait_for(lambda: r.xlen(keys.OUTBOX) == 0, "the second entry to be acknowledged")
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
    client = redis.Redis.from_url(redis_url, connection_class=_CountingConnection)
    before = _CountingConnection.sent
    with running(client, at_settings, concurrency=8) as worker:
        wait_for(lambda: len(fake.delivered) == 40, "forty sends")
        wait_for(lambda: r.xlen(keys.OUTBOX) == 0, "every send recorded")
        worker.stop()
    trips = _CountingConnection.sent - before
    issued = {d["to"]: d["id"] for d in fake.delivered}
    for i, phone in enumerate(phones):
        message = status(r, f"lock:g{i}")
        assert message["status"] == "sent" and message["provider_id"] == issued[phone]
        assert r.get(keys.provider_message(issued[phone])).decode() == f"lock:g{i}"
    assert stats(r)["sent"] == 40 and len(fake.requests) == 40
    # Reading and starting a batch is one script, and the sends finishing together are
    # recorded by one script: at worst two round trips per SMS plus the worker's start-up and
    # idle reads (about 50 in all when batches form; 138 with one script per step and SMS).
    assert trips < 2 * 40 + 20, f"{trips} round trips for 40 SMS"


class _LosesOneReply(redis.Redis):
    """A Redis client whose next answer to one script is lost after Redis ran it."""

    lose: str | None = None

    def execute_command(self, *args, **options):
        answer = super().execute_command(*args, **options)
        if args[0] == "EVALSHA" and args[1] == self.lose:
            self.lose = None
            raise redis.ConnectionError("the reply was lost")
        return answer


def test_a_lost_reply_while_recording_a_send_neither_resends_nor_double_counts(
    redis_url, r, at_settings, fake
):
    client = _LosesOneReply.from_url(redis_url)
    with running(client, at_settings) as worker:
        client.lose = worker._scripts["outbox_sent"].sha
        queue_sms(r, "lock:lost", PHONE)
        wait_for(lambda: client.lose is None, "the lost reply")
        wait_for(lambda: r.xlen(keys.OUTBOX) == 0, "the send recorded")
    assert status(r, "lock:lost")["status"] == "sent"
    assert len(fake.requests) == 1 and stats(r)["sent"] == 1


def test_a_malformed_entry_becomes_a_dead_letter(r, at_settings, fake):
    r.xadd(keys.OUTBOX, {"k": "lock:bad", "t": "sms.locked", "l": "en", "p": "{}"})  # no "to"
    queue_sms(r, "lock:good", PHONE)
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:good").get("status") == "sent", "the good SMS")
        wait_for(lambda: dead_letters(r), "the dead letter")
    [letter] = dead_letters(r)
    assert letter["k"] == "lock:bad" and letter["error"] == "malformed outbox entry"
    assert len(fake.requests) == 1 and r.xlen(keys.OUTBOX) == 0


def test_a_send_slower_than_the_claim_timeout_is_not_started_twice(r, at_settings, fake):
    fake.hold_from(0)
    queue_sms(r, "lock:slow", PHONE)

    def deliveries() -> int:
        pending = r.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, "-", "+", 1)
        return pending[0]["times_delivered"] if pending else 0

    with running(r, at_settings, concurrency=2, claim_idle=0.2):
        wait_for(lambda: fake.held == 1, "the send in flight")
        # The worker's own reclaim takes the idle entry back while it is still being sent.
        wait_for(lambda: deliveries() >= 2, "the entry taken over")
        fake.release()
        wait_for(lambda: status(r, "lock:slow").get("status") == "sent", "the SMS")
    assert len(fake.requests) == 1 and status(r, "lock:slow")["attempts"] == "1"


def test_sends_in_flight_never_exceed_the_concurrency(r, at_settings, fake):
    fake.hold_from(0)
    for i in range(5):
        queue_sms(r, f"lock:c{i}", f"+91981111110{i}")
    with running(r, at_settings, concurrency=3):
        wait_for(lambda: fake.held == 3, "three sends in flight")
        pending = r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"]
        assert pending == 3  # the other two are not even read while every sender is busy
        fake.release()
        wait_for(lambda: stats(r)["sent"] == 5, "all five sent")
    assert len(fake.requests) == 5


def test_the_send_rate_is_capped(r, at_settings, fake):
    for i in range(11):
        queue_sms(r, f"lock:r{i}", f"+9198111112{i:02d}")
    with running(r, at_settings, concurrency=8, rate=20):
        wait_for(lambda: stats(r)["sent"] == 11, "all eleven sent")
    times = sorted(req["at"] for req in fake.requests)
    # 11 sends at 20/s span 0.5 s; the first request's own connection setup may eat a little.
    assert times[-1] - times[0] >= 0.4


def test_requeue_from_the_dead_letters(r, at_settings, fake):
    fake.script(INVALID_PHONE)
    queue_sms(r, "lock:9", PHONE)
    app = create_app({"SETTINGS": at_settings})
    cli = app.test_cli_runner()
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:9").get("status") == "dead", "the dead letter")
        listed = cli.invoke(args=["sms", "dead"])
        assert "lock:9" in listed.output and "InvalidPhoneNumber" in listed.output
        dead_id = dead_letters(r)[0]["id"]
        result = cli.invoke(args=["sms", "requeue", dead_id])
        assert result.exit_code == 0 and "requeued 1: lock:9" in result.output
        wait_for(lambda: status(r, "lock:9").get("status") == "sent", "the requeued SMS")
    assert dead_letters(r) == [] and len(fake.received_by(PHONE)) == 1
    assert_compact(r, "lock:9")  # the dead letter's copy of the text's fields is gone
    shown = dict(
        line.rsplit(None, 1) for line in cli.invoke(args=["sms", "stats"]).output.splitlines()
    )
    assert shown["sent"] == "1" and shown["dead"] == "0" and shown["in outbox"] == "0"
    assert cli.invoke(args=["sms", "requeue", "1-1"]).exit_code == 1
    assert cli.invoke(args=["sms", "requeue"]).exit_code == 2  # neither ID nor --all


def test_requeue_all_by_message_key_or_all(r, at_settings, fake):
    fake.script(INVALID_PHONE, INVALID_PHONE, INVALID_PHONE)
    for i in range(3):
        queue_sms(r, f"lock:a{i}", f"+91981111130{i}")
    cli = create_app({"SETTINGS": at_settings}).test_cli_runner()
    with running(r, at_settings):
        wait_for(lambda: len(dead_letters(r)) == 3, "three dead letters")
        assert "requeued 1: lock:a1" in cli.invoke(args=["sms", "requeue", "lock:a1"]).output
        assert "requeued 2" in cli.invoke(args=["sms", "requeue", "--all"]).output
        wait_for(lambda: stats(r)["sent"] == 3, "all three sent")
    assert stats(r)["dead"] == 0


def test_console_provider_keeps_messages_without_codes_in_redis(r, store, sample, settings, caplog):
    session_id = f"S100-{date.fromisoformat(store.today()):%Y%m%d}"
    ref = store.book(
        mobile=PHONE, name="Asha Devi", birth_year=1990, session_id=session_id, slot=0
    ).value
    queue_sms(r, "lock:k", PHONE)
    assert settings.at_username is None
    with caplog.at_level(logging.INFO), running(r, settings):
        wait_for(lambda: stats(r)["sent"] == 2, "both console sends")
    code = codes.derive_code(settings.secret_key, ref, 0)
    kept = kept_messages(r, PHONE)
    assert {m["id"] for m in kept} == {f"book:{ref}:0", "lock:k"}
    assert code not in str(r.lrange(keys.console_inbox(PHONE), 0, -1))
    booked = next(m for m in kept if m["t"] == "sms.booked")
    assert f"Code {code}" in render_entry(booked, settings.secret_key)  # what the simulator shows
    assert code not in caplog.text and PHONE not in caplog.text
    assert "+9198******11" in caplog.text and "template=sms.booked" in caplog.text
    assert "template=sms.locked" in caplog.text and "Asha" not in caplog.text
    assert status(r, f"book:{ref}:0")["provider_id"].startswith("console-")
    assert 0 < r.ttl(keys.console_inbox(PHONE)) <= 24 * 3600


def test_console_provider_keeps_the_last_fifty(r, settings):
    for i in range(55):
        queue_sms(r, f"lock:m{i}", PHONE)
    with running(r, settings, concurrency=8):
        wait_for(lambda: stats(r)["sent"] == 55, "55 console sends")
    assert len(kept_messages(r, PHONE)) == 50


def test_a_worker_started_before_its_redis_waits_for_it(settings, tmp_path, caplog):
    port = free_port()
    # No client-side retries: the worker's own loop is what is under test.
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    server = None
    try:
        with caplog.at_level(logging.ERROR), running(client, settings):
            wait_for(lambda: "event=outbox_stuck" in caplog.text, "the worker to notice")
            server = subprocess.Popen(
                [
                    redis_binary(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp_path),
                ],
                stdout=subprocess.DEVNULL,
            )
            wait_for(lambda: _answers(client), "redis-server to start")
            queue_sms(client, "lock:late", PHONE)
            wait_for(
                lambda: status(client, "lock:late").get("status") == "sent",
                "the SMS once Redis is up",
            )
    finally:
        if server:
            server.terminate()
            server.wait(10)


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_the_web_process_can_deliver_in_a_background_thread(r, settings):
    app = create_app({"SETTINGS": settings})
    queue_sms(r, "lock:bg", PHONE)
    handle = start_background(app, block_ms=50)
    try:
        wait_for(lambda: status(r, "lock:bg").get("status") == "sent", "the background send")
    finally:
        handle.stop()
    assert not handle.thread.is_alive() and len(kept_messages(r, PHONE)) == 1


def test_a_username_without_an_api_key_is_refused_at_start(settings):
    settings.at_username = "sandbox"
    result = create_app({"SETTINGS": settings}).test_cli_runner().invoke(args=["outbox-worker"])
    assert result.exit_code == 1 and "AT_API_KEY is not" in result.output


def test_an_answer_with_a_charset_is_still_read():
    # The SDK leaves the JSON unparsed when the content type is not exactly application/json.
    answer = (
        '{"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [{"statusCode": 101,'
        ' "number": "+919811111111", "status": "Success", "messageId": "ATXid_1"}]}}'
    )
    assert reduce_answer(answer).outcome == SENT and reduce_answer(answer).message_id == "ATXid_1"
    assert reduce_answer("<html>bad gateway</html>").outcome == RETRY


def _client(keep_alive: bool) -> type[SMSClient]:
    """The gateway's client, or the bench's one over the SDK's own transport."""
    return SMSClient if keep_alive else SDKTransportClient


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
@pytest.mark.parametrize(
    "answer, outcome, says",
    [
        (None, "sent", "101 Success"),
        (http(500), "retry", "Internal Server Error"),
        (DND, "retry", "409 DoNotDisturbRejection"),
        (INVALID_PHONE, "rejected", "403"),
        (INVALID_SENDER, "config", "InvalidSenderId"),
        ("bad key", "config", "authentication"),
    ],
)
def test_each_answer_is_reduced_the_same_over_either_transport(
    fake, keep_alive, answer, outcome, says
):
    if answer and answer != "bad key":
        fake.script(answer)
    key = "wrong" if answer == "bad key" else fake.api_key
    client = _client(keep_alive)(fake.username, key, base_url=fake.base_url)
    result = client.send(PHONE, "hello")
    assert result.outcome == outcome and says in result.detail
    assert result.message_id.startswith("ATXid_") == (outcome == "sent")


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
def test_a_garbled_answer_is_retried_not_rejected(fake, keep_alive):
    # The SDK's JSON error is also a ValueError, its own phone check's type: never confused.
    fake.script(GARBLED)
    client = _client(keep_alive)(fake.username, fake.api_key, base_url=fake.base_url)
    result = client.send(PHONE, "hello")
    assert result.outcome == "retry" and "unreadable answer" in result.detail


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
def test_an_api_that_refuses_connections_is_retried(keep_alive):
    down = f"http://127.0.0.1:{free_port()}/version1"
    result = _client(keep_alive)("sandbox", "key", base_url=down).send(PHONE, "hi")
    assert result.outcome == "retry" and result.detail == "network (ConnectionError)"


def test_sends_go_through_the_proxy_the_environment_names(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", fake.base_url.removesuffix("/version1"))
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # A name that never resolves: only the proxy (the fake, playing both) can carry it.
    client = SMSClient(fake.username, fake.api_key, base_url="http://sms-api.invalid/version1")
    assert client.send(PHONE, "hello").outcome == "sent"
    [request] = fake.requests
    assert request["target"] == "http://sms-api.invalid/version1/messaging"
    assert request["message"] == "hello" and request["apiKey"] == fake.api_key


def test_a_number_the_sdk_refuses_is_rejected_without_a_request(fake):
    client = SMSClient(fake.username, fake.api_key, base_url=fake.base_url)
    assert client.send("9811111111", "hello").outcome == "rejected"
    assert fake.requests == []


# -- a real worker process ------------------------------------------------------------------------


def _worker_env(redis_url: str, fake: FakeAT, tmp_path: Path) -> dict:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "AT_USERNAME": fake.username,
        "AT_API_KEY": fake.api_key,
        "AT_BASE_URL": fake.base_url,
        "SECRET_KEY": "test-secret",
        "INSTANCE_PATH": str(tmp_path),
        "OUTBOX_RATE": "0",
        "PYTHONUNBUFFERED": "1",
    }


class WorkerProcess:
    """``flask --app app outbox-worker`` as a real subprocess, its log collected."""

    def __init__(self, env: dict, *args: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "outbox-worker", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def test_sigterm_finishes_sends_in_flight_and_leaves_the_rest_queued(r, redis_url, fake, tmp_path):
    fake.hold_from(0)
    for i in range(4):
        queue_sms(r, f"lock:t{i}", f"+91981111140{i}")
    worker = WorkerProcess(_worker_env(redis_url, fake, tmp_path), "--concurrency", "2")
    try:
        wait_for(lambda: fake.held == 2, "two sends in flight")
        worker.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: worker.logged("event=outbox_worker_stopping"), "the signal taken")
        fake.release()
        assert worker.proc.wait(20) == 0
    finally:
        worker.stop()
    assert stats(r)["sent"] == 2 and len(fake.requests) == 2
    assert r.xlen(keys.OUTBOX) == 2  # not read, not lost: the next worker sends them
    assert r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] == 0


def test_a_killed_worker_loses_nothing(r, redis_url, fake, tmp_path):
    phones = [f"+9198111150{i:02d}" for i in range(30)]
    for i, phone in enumerate(phones):
        queue_sms(r, f"lock:x{i}", phone)
    env = _worker_env(redis_url, fake, tmp_path)
    fake.hold_from(10)  # ten go through, then four hang in flight
    first = WorkerProcess(env, "--concurrency", "4", "--claim-idle", "1")
    try:
        wait_for(lambda: stats(r)["sent"] == 10 and fake.held == 4, "10 sent, 4 in flight")
        sent_before = {
            f"lock:x{i}" for i in range(30) if status(r, f"lock:x{i}").get("status") == "sent"
        }
        first.proc.kill()  # SIGKILL: no cleanup at all
        first.proc.wait(10)
    finally:
        first.stop()
    # The API had taken the four in flight; their answers never reached the dead worker.
    fake.release()
    wait_for(lambda: fake.held == 0 and len(fake.delivered) == 14, "the four answers")
    second = WorkerProcess(env, "--concurrency", "4", "--claim-idle", "1")
    try:
        wait_for(lambda: stats(r)["sent"] == 30, "every message sent", timeout=30)
        taken = [
            re.search(r"event=outbox_took_over worker=\S+ entries=(\d+)", line)
            for line in second.lines
        ]
        assert sum(int(m.group(1)) for m in taken if m) == 4
    finally:
        assert second.stop() == 0
    received = {phone: len(fake.received_by(phone)) for phone in phones}
    assert all(n >= 1 for n in received.values())  # none lost
    # The only duplicates: the four sent but not yet recorded when the worker died.
    doubled = {f"lock:x{phones.index(p)}" for p, n in received.items() if n > 1}
    assert len(doubled) == 4 and not doubled & sent_before
    assert sum(received.values()) == 34 and len(sent_before) == 10
    assert r.xlen(keys.OUTBOX) == 0
    assert r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] == 0


def test_console_provider_never_logs_the_codes_of_a_status_slip(
    client, r, store, sample, settings, caplog
):
    from gateway.providers.console import ConsoleProvider
    from tests.conversation_helpers import Phone

    session_id = f"S100-{date.fromisoformat(store.today()):%Y%m%d}"
    ref = store.book(
        mobile=PHONE, name="Asha Devi", birth_year=1990, session_id=session_id, slot=0
    ).value
    Phone(client, PHONE).sms("STATUS")
    _, slip = r.xrange(keys.OUTBOX)[-1]
    entry = {k.decode(): v.decode() for k, v in slip.items()}
    text = render_entry(entry, settings.secret_key)
    code = codes.derive_code(settings.secret_key, ref, 0)
    assert f"Code {code}" in text  # the slip carries the code to its own mobile ...
    with caplog.at_level(logging.INFO, "gateway.providers.console"):
        ConsoleProvider(r).send(PHONE, text, entry)
    assert caplog.text and code not in caplog.text  # ... and never into a log


def test_console_provider_logs_no_name_birth_year_or_certificate(r, caplog):
    from gateway.providers.console import ConsoleProvider

    params = {"name": "Sunita Devi", "by": 1961, "cert": "CERT-7731-0042", "dose": 1}
    entry = {"k": "dose:123456782", "t": "sms.vaccinated", "l": "en", "p": json.dumps(params)}
    text = "TikaLine: Sunita Devi (1961) got dose 1. Certificate ID CERT-7731-0042"
    with caplog.at_level(logging.DEBUG, "gateway.providers.console"):
        ConsoleProvider(r).send(PHONE, text, entry)
    logged = caplog.text
    assert "sms.vaccinated" in logged and "+9198******11" in logged and "dose:123456782" in logged
    for secret in ("Sunita", "Devi", "1961", "CERT-7731-0042", PHONE):
        assert secret not in logged
    assert kept_messages(r, PHONE)[0]["p"] == entry["p"]  # the simulator still shows it all


def test_the_worker_logs_at_log_level_one_line_per_event(r, redis_url, fake, tmp_path):
    queue_sms(r, "lock:quiet", PHONE)
    quiet = WorkerProcess({**_worker_env(redis_url, fake, tmp_path), "LOG_LEVEL": "warning"})
    try:
        wait_for(lambda: status(r, "lock:quiet").get("status") == "sent", "the quiet send")
    finally:
        assert quiet.stop() == 0
    assert not [line for line in quiet.lines if " INFO " in line], quiet.lines
    queue_sms(r, "lock:told", PHONE)
    told = WorkerProcess({**_worker_env(redis_url, fake, tmp_path), "LOG_LEVEL": "INFO"})
    try:
        wait_for(lambda: told.logged("lock:told"), "the send's log line")
    finally:
        assert told.stop() == 0
    assert all(re.match(r"\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ [\w.]+: ", line) for line in told.lines), (
        told.lines
    )


class DiskFails:
    """A snapshot that cannot be written (its directory gone, as a full or failed disk fails
    it): with ``stop-writes-on-bgsave-error yes`` Redis answers every write with MISCONF until
    a snapshot is written again."""

    def __init__(self):
        self.dir = ""

    def breaks(self, client) -> None:
        self.dir = client.config_get("dir")["dir"]
        gone = os.path.join(self.dir, "gone")
        os.mkdir(gone)
        client.config_set("dir", gone)
        os.rmdir(gone)
        client.config_set("save", "3600 1")
        client.config_set("stop-writes-on-bgsave-error", "yes")
        self._snapshot(client, "err")

    def mends(self, client) -> None:
        client.config_set("dir", self.dir)  # the disk has room again
        self._snapshot(client, "ok")

    @staticmethod
    def _snapshot(client, outcome: str) -> None:
        client.bgsave(schedule=True)
        wait_for(
            lambda: (
                lambda p: (
                    p["rdb_bgsave_in_progress"] == 0 and p["rdb_last_bgsave_status"] == outcome
                )
            )(client.info("persistence")),
            f"a snapshot to end {outcome}",
        )


_DISK = DiskFails()
# Ways to make Redis refuse every write, and to mend it.
FAULTS = {
    "failed disk": (_DISK.breaks, _DISK.mends, "MISCONF"),
    "out of memory": (
        lambda c: c.config_set("maxmemory", 1),
        lambda c: c.config_set("maxmemory", 0),
        "OutOfMemoryError",
    ),
    "read-only replica": (
        lambda c: c.replicaof("127.0.0.1", free_port()),
        lambda c: c.replicaof("NO", "ONE"),
        "ReadOnlyError",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_worker_rides_out_redis_refusing_writes_and_says_so(
    tmp_path, at_settings, fake, caplog, fault
):
    breaks, mends, word = FAULTS[fault]
    server = RedisServer(tmp_path).start()
    client = server.client()
    phones = [f"+91981111170{i}" for i in range(3)]
    app = create_app(
        {"SETTINGS": Settings(**{**at_settings.__dict__, "redis_url": server.url}), "TESTING": True}
    )
    try:
        client.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        for i, phone in enumerate(phones):  # queued while a worker was away
            queue_sms(client, f"lock:f{i}", phone)
        client.config_set("maxmemory-policy", "noeviction")
        breaks(client)
        with caplog.at_level(logging.INFO), running(client, at_settings, claim_idle=0.5):
            wait_for(lambda: caplog.text.count("event=outbox_stuck") >= 3, "retries, logged")
            assert word in caplog.text and not fake.requests
            # Where an operator looks, though Redis takes no write to say it:
            health = app.test_client().get("/healthz")
            assert health.status_code == 200 and "stuck" in health.get_data(as_text=True)
            assert word in health.get_data(as_text=True)
            shown = app.test_cli_runner().invoke(args=["sms", "stats"]).output
            assert "stuck" in shown and word in shown
            mends(client)
            wait_for(lambda: stats(client)["sent"] == 3, "the queued SMS once Redis mends")
            wait_for(lambda: "event=outbox_recovered" in caplog.text, "the recovery, logged")
            wait_for(lambda: app.test_client().get("/healthz").get_data() == b"ok", "health")
        assert sorted(d["to"] for d in fake.delivered) == phones  # each once
    finally:
        app.extensions["tikaline"].redis.close()
        client.close()
        server.stop()


def test_a_worker_rides_out_redis_stopping_and_starting_again(tmp_path, at_settings, fake, caplog):
    server = RedisServer(tmp_path).start()
    client = server.client()
    try:
        with caplog.at_level(logging.INFO), running(client, at_settings):
            queue_sms(client, "lock:before", PHONE)
            wait_for(lambda: status(client, "lock:before").get("status") == "sent", "one SMS")
            server.stop()
            wait_for(lambda: caplog.text.count("event=outbox_stuck") >= 3, "retries, logged")
            server.start()
            queue_sms(client, "lock:after", PHONE)
            wait_for(lambda: status(client, "lock:after").get("status") == "sent", "the next")
        assert len(fake.requests) == 2 and stats(client)["sent"] == 2
    finally:
        client.close()
        server.stop()


def _stop(server):
    return lambda client: server.stop()


def _start(server):
    return lambda client: server.start()


# Out of memory is no such outage: a script that has written once (the record drops a field
# first) may go on writing, so Redis takes the record.
@pytest.mark.parametrize("outage", ["read-only replica", "stopped"])
def test_a_send_taken_by_the_api_during_an_outage_is_recorded_not_sent_again(
    tmp_path, at_settings, fake, caplog, outage
):
    server = RedisServer(tmp_path).start()
    client = server.client()
    fake.hold_from(0)
    try:
        queue_sms(client, "lock:once", PHONE)
        with caplog.at_level(logging.INFO), running(client, at_settings, claim_idle=0.2):
            wait_for(lambda: fake.held == 1, "the send in flight")
            breaks, mends, _ = FAULTS.get(outage, (_stop(server), _start(server), ""))
            breaks(client)
            fake.release()  # the API takes the SMS; Redis will not record it
            # Many more tries than the old 0.1 + 0.2 + ... + 1.6 s allowed, at test speed.
            wait_for(lambda: caplog.text.count("event=outbox_record_retry") >= 8, "retries")
            mends(client)
            wait_for(lambda: status(client, "lock:once").get("status") == "sent", "the record")
            # Nothing pending, nothing on the stream: no reclaim can ever send it again.
            wait_for(
                lambda: (
                    not client.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"]
                    and not client.xlen(keys.OUTBOX)
                ),
                "nothing left to reclaim",
            )
        assert len(fake.requests) == 1 and stats(client)["sent"] == 1
        assert fake.received_by(PHONE) and len(fake.received_by(PHONE)) == 1
    finally:
        client.close()
        server.stop()
