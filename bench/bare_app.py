"""The baseline: a bare Flask app whose webhook routes answer ``CON hello`` and do nothing else.

Run under the same gunicorn settings as the gateway, it measures what Flask, gunicorn, the
sockets and the load generator cost on this machine, so the gateway's figures can be read as
a share of that rather than as absolute numbers that drift from machine to machine.
"""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """A Flask app with POST /ussd and POST /sms/inbound, each returning ``CON hello``."""
    app = Flask(__name__)

    @app.post("/ussd")
    @app.post("/sms/inbound")
    def hello():
        return "CON hello", 200, {"Content-Type": "text/plain; charset=utf-8"}

    return app
