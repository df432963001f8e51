"""TikaLine: vaccination appointments and security codes over SMS and USSD.

``create_app()`` is the factory (gunicorn, ``flask --app app``); ``python app.py`` is the
first run: an embedded Redis, demo data, the console SMS provider, all on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from gateway import cli, logs, simulator, sms_cli, webhooks
from gateway.config import Settings
from gateway.redisconn import connect
from gateway.services import Services
from gateway.store import Store

HERE = Path(__file__).resolve().parent


def create_app(test_config: dict | None = None) -> Flask:
    """Build the gateway; ``test_config`` may carry a ready ``Settings`` as ``SETTINGS``."""
    logs.configure()  # first: gunicorn would drop INFO events, Flask add its own format
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    app.config.from_mapping(MAX_CONTENT_LENGTH=16 * 1024)
    if test_config:
        app.config.update(test_config)
    settings = app.config.get("SETTINGS") or Settings.from_env(app.instance_path)
    if not settings.webhook_token:
        app.logger.warning("WEBHOOK_TOKEN unset: webhooks accept requests from anyone")
    client = connect(settings.redis_url, settings.instance_path)
    app.extensions["tikaline"] = Services(settings, client, Store(client, settings))
    cli.init_app(app)
    simulator.init_app(app)
    sms_cli.init_app(app)
    webhooks.init_app(app)
    return app


if __name__ == "__main__":
    from gateway import firstrun

    firstrun.main(create_app)
