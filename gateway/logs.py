"""Logging for every TikaLine process: one line per event, phone numbers masked.

``configure()`` is called by ``create_app()``, so gunicorn's workers, the outbox worker and
the first run all log alike: to stderr, at ``LOG_LEVEL`` (default ``INFO``), as
``2026-12-01 20:31:02,114 INFO tikaline.webhooks: event=ussd_hop session=… from=+9198******11``.
Without it gunicorn keeps Python's last-resort handler, which drops everything below WARNING.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import unicodedata

from flask.logging import default_handler

from gateway.phones import mask

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# E.164 as typed or as it appears URL-encoded in a query string.
_PHONE = re.compile(r"(\+|%2[bB])(\d{7,15})")
_UNSAFE = {"Cc", "Cf", "Zl", "Zp"}  # control, format (bidi overrides), line/paragraph breaks


def clean(value: object, limit: int = 80) -> str:
    """``value`` as one printable line of at most ``limit`` characters, for a log or a hash:
    control and line-breaking characters are shown escaped, never written as they are."""
    text = "".join(_escape(ch) for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(ch: str) -> str:
    if unicodedata.category(ch) not in _UNSAFE:
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"


class OneLineFormatter(logging.Formatter):
    """Formats a record, traceback included, as one line with phone numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        text = _PHONE.sub(lambda m: m.group(1) + mask("+" + m.group(2))[1:], text)
        return "".join(" | " if ch == "\n" else _escape(ch) for ch in text)


def level_from(value: str | None) -> int | None:
    """The level ``LOG_LEVEL`` names (``debug``, ``INFO``, ``30``, …); None if it names none."""
    name = (value or "INFO").strip().upper()
    level = int(name) if name.isdigit() else logging.getLevelName(name)
    return level if isinstance(level, int) else None


def configure() -> None:
    """Log every record to stderr at ``LOG_LEVEL`` (INFO when unset), one line each, the state
    machines' own only at DEBUG; calling it again replaces its handler, never adds one."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(OneLineFormatter(FORMAT))
    root.addHandler(handler)
    wanted = os.environ.get("LOG_LEVEL")
    level = level_from(wanted)
    root.setLevel(level or logging.INFO)
    # ``transitions`` says at INFO how each callback ran, two lines a hop: detail for DEBUG.
    chatty = logging.NOTSET if level is not None and level <= logging.DEBUG else logging.WARNING
    logging.getLogger("transitions").setLevel(chatty)
    if level is None:  # a typo must not keep the gateway from starting
        logging.getLogger(__name__).warning("LOG_LEVEL=%r is not a level: logging at INFO", wanted)
    # Flask gives an app's logger a handler of its own when logging was not set up before the
    # app was built: one format, one line per event.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and default_handler in logger.handlers:
            logger.removeHandler(default_handler)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, as logging's own last resort does."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # StreamHandler sets it; the property always reads sys.stderr
