"""The neutral message a provider's webhook becomes, and the reply a flow gives back.

Providers parse their own wire format into an ``InboundMessage`` and format a ``Reply`` into
theirs; flows see only these two types, never a form field or a provider's name for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USSD = "ussd"
SMS = "sms"

NEW = "new"  # the first hop of a USSD session (or any SMS)
RESUME = "resume"  # a later hop of the same USSD session
CLOSE = "close"  # the network reports the USSD session over


@dataclass(frozen=True)
class InboundMessage:
    """One inbound SMS, USSD hop or end-of-session notice, provider details aside."""

    channel: str  # USSD or SMS
    sender: str  # E.164
    # SMS: the message. USSD: every input of the session so far joined by "*" (the common
    # convention of USSD gateways); the flow compares it with what it has already seen.
    text: str
    session_id: str = ""  # USSD session
    event: str = NEW  # NEW, RESUME or CLOSE
    message_id: str = ""  # the provider's id of an inbound SMS: the replay guard
    meta: dict[str, str] = field(default_factory=dict)  # provider extras, for logs only


@dataclass(frozen=True)
class Reply:
    """A USSD screen: ``end`` closes the session."""

    text: str
    end: bool = False
