"""TikaLine: vaccination appointments and security codes over SMS and USSD.

``create_app()`` is the factory (gunicorn, ``flask --app app``); ``python app.py`` is the
first run: an embedded Redis, demo data, the console SMS provider, all on 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from redis.exceptions import RedisClusterException

from flows import lifecycle
from gateway import logs
from gateway.cli import data, sms
from gateway.config import ConfigError, Settings, check_server
from gateway.services import Services
from gateway.store import Store
from gateway.store.redisconn import Client, connect
from gateway.web import simulator, verify, webhooks

HERE = Path(__file__).resolve().parent
# Gunicorn's "App failed to load" status: its master stops instead of forking workers again.
REFUSED = 4


def create_app(test_config: dict | None = None) -> Flask:
    """Build the gateway; ``test_config`` may carry a ready ``Settings`` as ``SETTINGS``
    (then nothing is read from the environment or checked) or ``FIRST_RUN`` (app.py)."""
    logs.configure()  # first: gunicorn would drop INFO events, Flask add its own format
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    app.config.from_mapping(MAX_CONTENT_LENGTH=16 * 1024)
    if test_config:
        app.config.update(test_config)
    settings = app.config.get("SETTINGS") or _settings_or_exit(app)
    if not settings.webhook_token:
        app.logger.warning("WEBHOOK_TOKEN unset: webhooks accept requests from anyone")
    client = _connect_or_exit(settings)
    # The Store is annotated for one server until its scripts declare every key they touch.
    store = Store(client, settings, lifecycle)
    app.extensions["tikaline"] = Services(settings, client, store)
    data.init_app(app)
    simulator.init_app(app)
    sms.init_app(app)
    webhooks.init_app(app)
    verify.init_app(app)
    return app


def _settings_or_exit(app: Flask) -> Settings:
    """Settings from the environment, or exit with one line naming what is wrong."""
    try:
        settings = Settings.from_env(app.instance_path)
        check_server(settings, _role(app))
    except ConfigError as exc:
        print(f"TikaLine cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(REFUSED) from None
    return settings


def _connect_or_exit(settings: Settings) -> Client:
    """The Redis client; a cluster client connects at once, and when no node of the cluster
    answers the start stops with one line (a single Redis is connected to on first use)."""
    try:
        return connect(settings.redis_url, settings.instance_path)
    except RedisClusterException as exc:
        print(f"TikaLine cannot start: REDIS_URL: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(REFUSED) from None


def _role(app: Flask) -> str:
    """Who is building the app: the first run, ``flask run``, another command, or a WSGI
    server (gunicorn imports the factory outside any command line of ours)."""
    if app.config.get("FIRST_RUN"):
        return "first-run"
    command = click.get_current_context(silent=True)
    if command is None:
        return "wsgi"
    return "flask-run" if command.info_name == "run" else "command"


if __name__ == "__main__":
    from gateway import firstrun

    firstrun.main(create_app)
