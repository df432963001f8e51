"""Conversation state as typed records, and the one codec to and from its compact stored form.

Stored JSON keeps short field names because a USSD session is written on every hop:
a session is ``{"rev", "f", "s", "d", "m", "l", "pl", "ph", "scr": {"t", "p", "e"}}``, a
dropped booking kept for the next dial is ``{"f", "s", "d"}`` and an SMS conversation
``{"s", "d"}``. Only this module spells those names; ``converse.lua`` also reads ``rev``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")

SMS_FLOW = "booking"  # the one conversation SMS holds, so its stored form leaves it unnamed


class Mark(Enum):
    """A stored value a turn leaves as it is, or removes."""

    KEEP = "="
    DELETE = ""


KEEP = Mark.KEEP
DELETE = Mark.DELETE


@dataclass(frozen=True)
class FlowState:
    """Where a caller stands in a flow: its name, the machine's state and the flow's data."""

    flow: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Screen:
    """A screen's recipe: template, params and whether it ends the USSD session."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)
    end: bool = False


@dataclass(frozen=True)
class UssdSession:
    """One USSD session after a hop: the flow, whose it is, and what the caller last saw."""

    at: FlowState
    mobile: str
    lang: str
    path_len: int  # how much of the network's ``*``-joined text was already read…
    path_digest: str  # …and its digest, to tell the newest input from an older one
    screen: Screen
    rev: int = 1  # counts the hops saved, so a duplicate hop that lost a race writes nothing


@dataclass(frozen=True)
class Sms:
    """A reply SMS queued with the turn; ``key`` makes a repeated turn queue it once."""

    key: str
    template: str
    lang: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsTurnState:
    """What an inbound SMS turn reads before it runs, in one round trip."""

    replay: bool  # this message id was handled already
    claimed: bool  # this copy won the right to apply it (False: another copy is running)
    conversation: FlowState | None
    vaccinator: dict[str, str] | None
    lang: str | None


@dataclass(frozen=True)
class UssdTurnState:
    """What a USSD hop reads before it runs, in one round trip."""

    session: UssdSession | None
    resume: FlowState | None  # a booking dropped on an earlier dial
    lang: str | None


def dumps(stored: dict[str, Any]) -> str:
    """JSON as every release has written it: non-ASCII names kept as they are."""
    return json.dumps(stored, ensure_ascii=False)


def flow_to_stored(at: FlowState) -> dict[str, Any]:
    """The compact form of a place in a flow (the resume pointer's, and the menu keeps it)."""
    return {"f": at.flow, "s": at.state, "d": at.data}


def flow_from_stored(raw: dict[str, Any]) -> FlowState:
    """A place in a flow from its compact form."""
    return FlowState(raw.get("f", SMS_FLOW), raw["s"], raw["d"])


def sms_to_stored(at: FlowState) -> str:
    """An SMS conversation as stored."""
    return dumps({"s": at.state, "d": at.data})


def session_to_stored(session: UssdSession) -> str:
    """A USSD session as stored."""
    screen = session.screen
    return dumps(
        {
            "rev": session.rev,
            **flow_to_stored(session.at),
            "m": session.mobile,
            "l": session.lang,
            "pl": session.path_len,
            "ph": session.path_digest,
            "scr": {"t": screen.template, "p": screen.params, "e": screen.end},
        }
    )


def session_from_stored(raw: dict[str, Any]) -> UssdSession:
    """A USSD session from its compact form."""
    scr = raw["scr"]
    return UssdSession(
        at=flow_from_stored(raw),
        mobile=raw["m"],
        lang=raw["l"],
        path_len=raw["pl"],
        path_digest=raw["ph"],
        screen=Screen(scr["t"], scr["p"], bool(scr["e"])),
        rev=raw["rev"],
    )


def pointer_to_stored(at: FlowState) -> str:
    """A dropped booking kept for the next dial, as stored."""
    return dumps(flow_to_stored(at))


def loads(text: str | None) -> dict[str, Any] | None:
    """The stored JSON, or None for a key that is not there."""
    return json.loads(text) if text else None


def change(value: T | Mark, encode: Callable[[T], str]) -> str:
    """A value to write, ``encode``d, or a mark as the commit script spells it."""
    return value.value if isinstance(value, Mark) else encode(value)
