"""Checking a certificate: ``CERT <certificate ID>`` by SMS, and the same check for ``/verify``.

Anyone may check any certificate, so the answer shows only what the certificate itself shows,
the name masked (``R**** K****``: the first letter of each word, never its length). A typo is
caught by the ID's check digit before any lookup; each lookup counts against the sender (a
mobile, or a web client's address) in a rolling hour, so IDs cannot be tried by the thousand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flows.base import Turn
from flows.messages.sms import graphemes
from gateway.codes import parse_certificate, parse_reference
from gateway.store import Store

SMS_LOOKUPS = 10  # lookups a mobile may make in any rolling hour
# A web client's address is often a carrier's NAT, shared by many phones: a wider allowance.
WEB_LOOKUPS = 60
WINDOW = 3600  # seconds
# Doses in a course while the data does not say: every vaccine the programme offers today
# (COVISHIELD, COVAXIN) takes two.
COURSE_DOSES = 2
MASK = "****"
TYPED = 24  # characters of a mistyped ID repeated in the reply


@dataclass(frozen=True)
class Check:
    """What a check found: ``genuine``, ``not_found``, ``bad_id``, ``is_ref``, ``usage`` or
    ``limited``, and the params its texts (``sms.cert.<status>``, ``web.cert.<status>``) take."""

    status: str
    params: dict[str, Any] = field(default_factory=dict)


def mask(name: str) -> str:
    """A name as a stranger may see it: ``Ravi Kumar`` → ``R**** K****``."""
    return " ".join(graphemes(word)[0] + MASK for word in name.split())


def check(store: Store, typed: str, who: str, limit: int, now: datetime) -> Check:
    """Check the certificate ID ``typed`` for ``who`` (a mobile or ``ip:<address>``), counting
    the lookup against ``limit`` an hour."""
    if not typed.strip():
        return Check("usage")
    cert = parse_certificate(typed)
    if not cert:
        ref = parse_reference(typed)
        return Check("is_ref", {"ref": ref}) if ref else Check("bad_id", {"typed": typed[:TYPED]})
    wait = store.take_lookup(who, limit, WINDOW, now)
    if wait:
        return Check("limited", {"minutes": max(1, math.ceil(wait / 60))})
    found = store.certificate(cert)
    if not found:
        return Check("not_found", {"cert": cert})
    return Check(
        "genuine",
        {
            "cert": cert,
            "name": mask(found["name"]),
            "by": found["by"],
            "vaccine": found["vaccine"],
            "dose": found.get("dose") or 1,
            "doses": found.get("doses") or COURSE_DOSES,
            "when": f"{date.fromisoformat(found['date']):%d-%m-%Y}",
            "centre": found["centre_name"],
        },
    )


def sms_check(turn: Turn, rest: str) -> None:
    """``CERT <certificate ID>``: whether it is genuine and, if so, what it certifies."""
    found = check(turn.store, rest, turn.mobile, SMS_LOOKUPS, turn.now)
    turn.say(f"sms.cert.{found.status}", **found.params)
