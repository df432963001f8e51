"""The first run, ``python app.py``: an embedded Redis unless ``REDIS_URL``, the demo data
in an empty store, the outbox worker in this process, served on 127.0.0.1 until Ctrl+C."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.serving import make_server

from gateway import embedded
from gateway.outbox import start_background
from gateway.phones import mask
from gateway.sample import sample_data
from gateway.store import keys, redisconn
from gateway.store.reference import load

log = logging.getLogger("tikaline.firstrun")


def main(create_app: Callable[[dict], Flask]) -> None:
    """First run: embedded Redis unless REDIS_URL, demo data if empty, outbox worker in this
    process, served on 127.0.0.1:5000 (``HOST``, ``PORT``) until Ctrl+C or SIGTERM."""

    # Werkzeug's threaded server, not gunicorn: one process holds the embedded Redis, the
    # worker thread and the web threads together, with no extra dependency; production runs
    # gunicorn and a separate worker (Procfile).

    logging.getLogger("werkzeug").addFilter(_quiet_polling)
    logging.getLogger("werkzeug").addFilter(redact_token)
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "5000"
    if not port.isdigit() or int(port) > 65535:
        sys.exit(f"PORT must be a port number (0-65535), not {port!r}")
    _refuse_open_host(host)
    app = create_app({"FIRST_RUN": True})
    svc = app.extensions["tikaline"]
    worker = None
    local_redis = _supervise_embedded(svc.settings)
    try:
        data_note = _first_run_data(svc.store, os.environ.get("DEMO_DATA"))
        worker = _start_worker(app)
        try:
            server = make_server(host, int(port), app, threaded=True)
        except OSError as exc:
            sys.exit(f"cannot listen on {host}:{port}: {exc.strerror}; set PORT to another port")
        print(_banner(app, host, server.server_port, data_note), flush=True)
        if svc.settings.simulator_enabled and host not in LOOPBACK:
            log.warning(
                "HOST=%s: other machines can open the simulator and read every phone's SMS; "
                "set WEBHOOK_TOKEN to turn it off",
                host,
            )
        # SIGTERM (a supervisor, a test) stops as cleanly as Ctrl+C: the embedded Redis saves.
        signal.signal(signal.SIGTERM, _interrupt)
        server.serve_forever()  # werkzeug returns from here on KeyboardInterrupt
        print("Stopping TikaLine.", flush=True)
    except KeyboardInterrupt:  # Ctrl+C while still starting: stop as cleanly
        print("Stopping TikaLine.", flush=True)
    finally:
        _stop(worker, local_redis, svc.redis)


def _supervise_embedded(settings) -> embedded.EmbeddedRedis | None:
    """The embedded Redis (without REDIS_URL), restarted whenever it dies."""
    if settings.redis_url:
        return None
    server = embedded.shared(settings.instance_path)
    server.supervise()
    return server


def _stop(worker, local_redis: embedded.EmbeddedRedis | None, client: redisconn.Client) -> None:
    """The worker first (it may be recording a send), then the embedded Redis (it saves)."""
    stop = getattr(worker, "stop", None)
    if callable(stop):
        stop()
    redisconn.disconnect(client)
    if local_redis is not None:
        local_redis.stop()


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _refuse_open_host(host: str) -> None:
    """Without a webhook token only this machine may reach the first run (or TIKALINE_DEV=1)."""
    if host in LOOPBACK or os.environ.get("WEBHOOK_TOKEN"):
        return
    if (os.environ.get("TIKALINE_DEV") or "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    sys.exit(
        f"TikaLine cannot start: WEBHOOK_TOKEN is not set and HOST={host} is not "
        f"loopback: anyone on the network could book and record doses; set "
        f"WEBHOOK_TOKEN, or TIKALINE_DEV=1 for development"
    )


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


_TOKEN = re.compile(r"([?&]token=)[^&\s\"]*")


def redact_token(record: logging.LogRecord) -> bool:
    """Access-log lines keep the path but not the webhook token in its query string."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
        )
    return True


def _quiet_polling(record: logging.LogRecord) -> bool:
    # The simulator polls its inbox every second; those lines would drown the useful ones.
    return "/simulator/inbox" not in record.getMessage()


def _first_run_data(store, demo_flag: str | None) -> str:
    """Load the demo data into an empty store (unless DEMO_DATA=0) and say what happened."""
    if not store.is_empty():
        count = store.r.scard(keys.CENTRES)
        return f"kept the {count} centres already in Redis (demo data loads only when empty)"
    if (demo_flag or "").strip().lower() in {"0", "false", "no", "off"}:
        return "empty store, demo data not loaded (DEMO_DATA=0); use flask --app app load-data"
    first = store.now().date()
    report = load(store, sample_data(first))
    return (
        f"loaded demo data: {report.centres} centres, {report.sessions} sessions "
        f"from {first} for 7 days, {report.vaccinators} vaccinators"
    )


def _start_worker(app: Flask):
    """The outbox worker as a background thread of this process."""
    return start_background(app)


def _banner(app: Flask, host: str, port: int, data_note: str) -> str:
    """Where to look, printed once the port is bound."""
    svc = app.extensions["tikaline"]
    settings = svc.settings
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    if settings.redis_url:
        redis_note = f"REDIS_URL {_mask_url(settings.redis_url)}"
    else:
        server = embedded.shared(settings.instance_path)
        owner = "" if server.owned else " (run by another process of this instance)"
        redis_note = (
            f"embedded redis-server{owner}, persisted (AOF) in "
            f"{settings.instance_path}, socket {server.socket}"
        )
    if settings.simulator_enabled:
        login = " (log in with SIMULATOR_PASSWORD)" if settings.webhook_token else ""
        simulator = f"{base}/simulator/{login}"
    else:
        simulator = "off (WEBHOOK_TOKEN is set; SIMULATOR_ENABLED=1 turns it on)"
    sms = (
        f"Africa's Talking, user {settings.at_username}"
        if settings.at_username
        else "console: SMS are logged and shown in the simulator (AT_USERNAME, AT_API_KEY send)"
    )
    token = (
        "required as ?token="
        if settings.webhook_token
        else "none: anyone who reaches this port may post webhooks (set WEBHOOK_TOKEN)"
    )
    listen = f"{host}:{port} only" if host in LOOPBACK else f"{host}:{port} (HOST)"
    lines = [
        "",
        "TikaLine is running.",
        f"  Phone simulator  {simulator}",
        f"  Health check     {base}/healthz",
        f"  Webhooks         {base}/ussd  /ussd/events  /sms/inbound  /sms/delivery",
        f"  Listening on     {listen}",
        f"  Webhook token    {token}",
        f"  Redis            {redis_note}",
        f"  Data             {data_note}",
        f"  Outbound SMS     {sms}",
    ]
    for i, (phone, name, centre) in enumerate(_vaccinator_lines(svc.store)):
        label = "Vaccinators" if i == 0 else ""
        lines.append(f"  {label:<16} {phone}  {name}, {centre}")
    lines += [
        "  Citizen          any other mobile, e.g. +919811111111: dial *384*1# or text HELP",
        "Press Ctrl+C to stop.",
        "",
    ]
    return "\n".join(lines)


def _vaccinator_lines(store, limit: int = 5) -> list[tuple[str, str, str]]:
    phones = sorted(p.decode() for p in store.r.srandmember(keys.VACCINATORS, limit) or [])
    rows = []
    for phone in phones:
        v = store.vaccinator(phone) or {}
        cid = v.get("centre_id", "")
        name, pin = (
            x.decode() if x else "" for x in store.r.hmget(keys.centre(cid), "name", "pincode")
        )
        rows.append((mask(phone), v.get("name", ""), f"centre {cid} {name}, pincode {pin}"))
    return rows


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
