"""The app factory: a missing webhook token is said out loud at start."""

from __future__ import annotations

import dataclasses
import logging

from app import create_app


def test_an_unset_webhook_token_is_warned_about_at_start(settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app({"SETTINGS": settings})
    assert "WEBHOOK_TOKEN unset" in caplog.text


def test_a_set_webhook_token_starts_quietly(settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app({"SETTINGS": dataclasses.replace(settings, webhook_token="s3cret")})
    assert "WEBHOOK_TOKEN" not in caplog.text


def test_the_first_runs_access_log_never_shows_the_webhook_token():
    from gateway.firstrun import redact_token

    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
                               ("POST /sms/inbound?token=s3cret&x=1 HTTP/1.1", "200", "-"),
                               None)
    assert redact_token(record)
    line = record.getMessage()
    assert "s3cret" not in line and "/sms/inbound?token=***&x=1" in line
