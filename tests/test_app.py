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
