"""Operator layer: what an operator and the simulator see of the outbox, against a real Redis:
stats, dead letters and requeue through the CLI, and the console provider's kept messages and
logs."""

from __future__ import annotations

import json
import logging
from datetime import date

from app import create_app
from flows.messages.sms import render_entry
from gateway import codes
from gateway.outbox import dead_letters, stats
from gateway.providers.console import kept_messages
from gateway.store import keys
from tests.fake_at import INVALID_PHONE
from tests.outbox_helpers import (
    assert_compact,
    queue_sms,
    queued_entries,
    running,
    status,
    wait_for,
)

PHONE = "+919811111111"


def test_requeue_from_the_dead_letters(r, at_settings, fake):
    fake.script(INVALID_PHONE)
    queue_sms(r, "lock:9", PHONE)
    app = create_app({"SETTINGS": at_settings})
    cli = app.test_cli_runner()
    with running(r, at_settings):
        wait_for(lambda: status(r, "lock:9").get("status") == "dead", "the dead letter")
        listed = cli.invoke(args=["sms", "dead"])
        assert "lock:9" in listed.output and "InvalidPhoneNumber" in listed.output
        dead_id = dead_letters(r)[0]["id"]  # <partition>:<stream id>
        assert dead_id.startswith(f"{keys.partition_of(PHONE)}:") and dead_id in listed.output
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
    assert cli.invoke(args=["sms", "requeue", dead_id]).exit_code == 1  # requeued already
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
    _, _, entry = queued_entries(r)[-1]
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
