"""USSD hops: state per session in Redis, replays answered from the stored screen.

A hop costs at most three Redis round trips: one pipelined read (the session's state, the
caller's resume pointer and language), at most one read or change of the flow (availability,
the slip, a booking, a cancel), and one atomic commit (state, screen, pointer, language).
A repeated hop (same ``sessionId`` and ``text``) costs one: its stored screen is re-rendered.

The network sends ``text`` as every input joined by ``*``; the newest input is what follows
the ``text`` seen last (kept as its length and digest), so a ``*`` typed inside an answer
stays in the answer. ``0`` is back, ``00`` the main menu (``०`` and ``००`` too).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flows import booking, cancel, menu, messages, status, words
from flows.base import Conversation, Flow, Turn
from flows.messages.sms import render
from gateway.errors import REDIS_ERRORS
from gateway.inbound import USSD, InboundMessage, Reply
from gateway.phones import mask
from gateway.store import Store
from gateway.store.conversations import (
    DELETE,
    KEEP,
    FlowState,
    Mark,
    Screen,
    UssdSession,
    flow_from_stored,
    flow_to_stored,
)

SESSION_TTL = 10 * 60  # the network ends a session after 3 minutes; replays come within that
RESUME_TTL = 30 * 60  # how long a dropped booking is offered on the next dial
FLOWS: dict[str, Flow[Conversation]] = {
    flow.name: flow for flow in (menu.FLOW, booking.FLOW, status.FLOW, cancel.FLOW)
}
log = logging.getLogger("tikaline.ussd")


def handle(store: Store, msg: InboundMessage) -> Reply:
    """The screen for one hop; a failure still answers, with an ``END`` that says so."""
    try:
        return _hop(store, msg)
    except Exception:  # a hop answered without CON/END would fail the caller's session
        log.exception("event=ussd_failed session=%s from=%s", msg.session_id, mask(msg.sender))
        return Reply(messages.text("ussd.busy"), end=True)


def _hop(store: Store, msg: InboundMessage) -> Reply:
    read = store.load_ussd_turn(msg.session_id, msg.sender)
    session = read.session
    turn = Turn(store, msg.sender, USSD, read.lang or messages.DEFAULT)
    path = msg.text

    if session is None:
        offer = read.resume if read.resume and read.resume.flow == booking.FLOW.name else None
        flow, state, data = (
            ("menu", "resume", {"pointer": flow_to_stored(offer)})
            if offer
            else ("menu", "main", {})
        )
        model, _ = FLOWS[flow].run(turn, state, data)
    elif session.mobile != msg.sender:
        log.warning(
            "event=ussd_session_mismatch session=%s from=%s", msg.session_id, mask(msg.sender)
        )
        return Reply(messages.text("ussd.busy", turn.lang), end=True)
    elif len(path) <= session.path_len or session.screen.end:
        log.info("event=ussd_replay session=%s from=%s", msg.session_id, mask(msg.sender))
        return _replay(store, session)
    else:
        flow, model = _step(turn, session.at, _newest(path, session).strip())

    while model.state in FLOWS[flow].exits:  # the flow hands the caller to another one
        flow, state = FLOWS[flow].exits[model.state]
        data = {}
        if flow == "resumed":
            resumed = flow_from_stored(model.data["pointer"])
            flow, state, data = resumed.flow, resumed.state, booking.resumed(resumed.data)
        model, _ = FLOWS[flow].run(turn, state, data)
    screen = model.screen()
    if screen is None:  # only a state that hands over has none, and the loop above left those
        raise LookupError(f"{flow} has no screen at {model.state}")

    rev = session.rev if session else 0
    at = FlowState(flow, model.state, model.data)
    written = _commit(
        store,
        turn,
        session_id=msg.session_id,
        ttl=SESSION_TTL,
        expect_rev=rev,
        session=UssdSession(
            at,
            msg.sender,
            turn.lang,
            len(path),
            _digest(path),
            Screen(screen["t"], screen["p"], screen["e"]),
            rev=rev + 1,
        ),
        resume=_resume(at),
        resume_ttl=RESUME_TTL,
        chosen_lang=turn.new_lang or None,
    )
    log.info(
        "event=ussd_hop session=%s from=%s flow=%s state=%s end=%s",
        msg.session_id,
        mask(msg.sender),
        flow,
        model.state,
        screen["e"],
    )
    if not written:  # a duplicate of this hop committed first: answer what it answered
        again = store.ussd_session(msg.session_id, msg.sender)
        return _replay(store, again) if again else Reply(messages.text("ussd.busy"), end=True)
    return Reply(turn.text(screen), end=screen["e"])


def _commit(store: Store, turn: Turn, **hop: Any) -> bool:
    """Save the hop (see ``Store.save_ussd_turn``); a failure after the store made a booking
    counts as saved, so the caller is told of the booking rather than "busy"."""
    try:
        return store.save_ussd_turn(mobile=turn.mobile, **hop)
    except REDIS_ERRORS:
        if not turn.stored:
            raise
        # The booking and its code SMS are in Redis; only where the caller stood is lost. A
        # repeat of this hop books again, and the store answers it as a replay of this one.
        log.exception("event=ussd_commit_failed_after_booking from=%s", mask(turn.mobile))
        return True


def _step(turn: Turn, at: FlowState, answer: str) -> tuple[str, Conversation]:
    """The caller's answer applied to the stored flow: ``00`` menu, ``0`` back, else answer."""
    key = words.normal(answer)  # ० and ०० (Devanagari keypads) mean what 0 and 00 do
    if key == "00":
        model, _ = FLOWS["menu"].run(turn, "main", {"left": at.flow})
        return "menu", model
    if key == "0":
        model, moved = FLOWS[at.flow].run(turn, at.state, at.data, "back")
    else:
        model, moved = FLOWS[at.flow].run(turn, at.state, at.data, "answer", answer)
    if not moved and model.hint is None:
        model.hint = ("hint.choose", {})
    return at.flow, model


def _resume(at: FlowState) -> FlowState | Mark:
    """What to keep for a caller who drops now: the booking in progress, or nothing."""
    if at.flow == booking.FLOW.name:
        return at if _resumable(at) else DELETE
    if at.data.get("forget") or at.data.get("left") == booking.FLOW.name:
        return DELETE  # the caller chose to start over, or left the booking for the menu
    return KEEP


def _resumable(at: FlowState) -> bool:
    """Whether a caller dropped at ``at`` is offered it on the next dial."""
    return at.flow == booking.FLOW.name and booking.resumable(at.state)


def close(store: Store, msg: InboundMessage) -> None:
    """The end-of-session notice: a booking dropped mid-way stays offered on the next dial."""
    status_ = msg.meta.get("status", "")
    log.info(
        "event=ussd_end session=%s from=%s status=%s hops=%s",
        msg.session_id,
        mask(msg.sender),
        status_,
        msg.meta.get("hops", ""),
    )
    if status_ == "Success":
        return
    session = store.ussd_session(msg.session_id, msg.sender)
    if session and session.mobile == msg.sender and _resumable(session.at):
        store.save_ussd_turn(
            session_id=msg.session_id,
            mobile=msg.sender,
            session=KEEP,
            resume=session.at,
            resume_ttl=RESUME_TTL,
        )


def _newest(path: str, session: UssdSession) -> str:
    seen = session.path_len
    if seen == 0:
        return path
    if path[seen] == "*" and _digest(path[:seen]) == session.path_digest:
        return path[seen + 1 :]
    return path.rsplit("*", 1)[-1]  # the path changed under us: trust only its last input


def _replay(store: Store, session: UssdSession) -> Reply:
    screen = session.screen
    text = render(screen.template, session.lang, screen.params, store.settings.keyring)
    return Reply(text, end=screen.end)


def _digest(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:16]
