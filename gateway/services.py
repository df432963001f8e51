"""The objects one app builds once and its views, commands and workers share."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from gateway.config import Settings
from gateway.store import Store
from gateway.store.redisconn import Client


@dataclass
class Services:
    settings: Settings
    redis: Client
    store: Store


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["tikaline"]
