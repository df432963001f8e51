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
import json
import logging

import redis

from flows import booking, cancel, menu, messages, status, words
from flows.base import Turn
from gateway.inbound import USSD, InboundMessage, Reply
from gateway.phones import mask
from gateway.sms_text import render
from gateway.store import Store, keys

SESSION_TTL = 10 * 60  # the network ends a session after 3 minutes; replays come within that
RESUME_TTL = 30 * 60  # how long a dropped booking is offered on the next dial
FLOWS = {flow.name: flow for flow in (menu.FLOW, booking.FLOW, status.FLOW, cancel.FLOW)}
log = logging.getLogger("tikaline.ussd")


def handle(store: Store, msg: InboundMessage) -> Reply:
    """The screen for one hop; a failure still answers, with an ``END`` that says so."""
    try:
        return _hop(store, msg)
    except Exception:  # a hop answered without CON/END would fail the caller's session
        log.exception("event=ussd_failed session=%s from=%s", msg.session_id, mask(msg.sender))
        return Reply(messages.text("ussd.busy"), end=True)


def _hop(store: Store, msg: InboundMessage) -> Reply:
    conv_key = keys.conversation(USSD, msg.session_id)
    pointer_key = keys.conversation("resume", msg.sender)
    lang_key = keys.language(msg.sender)
    snap = store.snapshot(strings=[conv_key, pointer_key, lang_key])
    conv, pointer = _load(snap[conv_key]), _load(snap[pointer_key])
    turn = Turn(store, msg.sender, USSD, snap[lang_key] or messages.DEFAULT)
    path = msg.text

    if conv is None:
        offer = pointer and pointer.get("f") == booking.FLOW.name
        flow, state, data = ("menu", "resume", {"pointer": pointer}) if offer \
            else ("menu", "main", {})
        model, _ = FLOWS[flow].run(turn, state, data)
    elif conv["m"] != msg.sender:
        log.warning("event=ussd_session_mismatch session=%s from=%s", msg.session_id,
                    mask(msg.sender))
        return Reply(messages.text("ussd.busy", turn.lang), end=True)
    elif len(path) <= conv["pl"] or conv["scr"]["e"]:
        log.info("event=ussd_replay session=%s from=%s", msg.session_id, mask(msg.sender))
        return _replay(store, conv)
    else:
        flow, model = _step(turn, conv, _newest(path, conv).strip())

    while model.state in FLOWS[flow].exits:  # the flow hands the caller to another one
        flow, state = FLOWS[flow].exits[model.state]
        data = {}
        if flow == "resumed":
            resumed = model.data["pointer"]
            flow, state, data = resumed["f"], resumed["s"], booking.resumed(resumed["d"])
        model, _ = FLOWS[flow].run(turn, state, data)
    screen = model.screen()

    rev = conv["rev"] if conv else 0
    written = _commit(
        store, turn, conversation=conv_key, ttl=SESSION_TTL, expect_rev=rev,
        state=json.dumps({"rev": rev + 1, "f": flow, "s": model.state, "d": model.data,
                          "m": msg.sender, "l": turn.lang, "pl": len(path),
                          "ph": _digest(path), "scr": screen}, ensure_ascii=False),
        pointer=_pointer(flow, model, conv), pointer_ttl=RESUME_TTL, lang=turn.new_lang)
    log.info("event=ussd_hop session=%s from=%s flow=%s state=%s end=%s", msg.session_id,
             mask(msg.sender), flow, model.state, screen["e"])
    if not written:  # a duplicate of this hop committed first: answer what it answered
        again = _load(store.snapshot(strings=[conv_key])[conv_key])
        return _replay(store, again) if again else Reply(messages.text("ussd.busy"), end=True)
    return Reply(turn.text(screen), end=screen["e"])


def _commit(store: Store, turn: Turn, **hop) -> bool:
    """Save the hop (see ``Store.commit_turn``); a failure after the store made a booking
    counts as saved, so the caller is told of the booking rather than "busy"."""
    try:
        return store.commit_turn(mobile=turn.mobile, **hop)
    except redis.RedisError:
        if not turn.stored:
            raise
        # The booking and its code SMS are in Redis; only where the caller stood is lost. A
        # repeat of this hop books again, and the store answers it as a replay of this one.
        log.exception("event=ussd_commit_failed_after_booking from=%s", mask(turn.mobile))
        return True


def _step(turn: Turn, conv: dict, answer: str):
    """The caller's answer applied to the stored flow: ``00`` menu, ``0`` back, else answer."""
    flow, state, data = conv["f"], conv["s"], conv["d"]
    key = words.normal(answer)  # ० and ०० (Devanagari keypads) mean what 0 and 00 do
    if key == "00":
        flow = "menu"
        model, _ = FLOWS[flow].run(turn, "main", {"left": conv["f"]})
        return flow, model
    if key == "0":
        model, moved = FLOWS[flow].run(turn, state, data, "back")
    else:
        model, moved = FLOWS[flow].run(turn, state, data, "answer", answer)
    if not moved and model.hint is None:
        model.hint = ("hint.choose", {})
    return flow, model


def _pointer(flow: str, model, conv: dict | None) -> str:
    """What to keep for a caller who drops now: the booking in progress, or nothing."""
    if flow == booking.FLOW.name:
        if model.state in booking.FINAL or model.state == "name":
            return ""
        return json.dumps({"f": flow, "s": model.state, "d": model.data}, ensure_ascii=False)
    if model.data.get("forget") or model.data.get("left") == booking.FLOW.name:
        return ""  # the caller chose to start over, or left the booking for the menu
    return "="


def close(store: Store, msg: InboundMessage) -> None:
    """The end-of-session notice: a booking dropped mid-way stays offered on the next dial."""
    status_ = msg.meta.get("status", "")
    log.info("event=ussd_end session=%s from=%s status=%s hops=%s", msg.session_id,
             mask(msg.sender), status_, msg.meta.get("hops", ""))
    if status_ == "Success":
        return
    conv_key = keys.conversation(USSD, msg.session_id)
    conv = _load(store.snapshot(strings=[conv_key])[conv_key])
    if not conv or conv["m"] != msg.sender or conv["f"] != booking.FLOW.name:
        return
    if conv["s"] in booking.FINAL or conv["s"] == "name":
        return
    store.commit_turn(mobile=msg.sender, conversation=conv_key, state="=", pointer=json.dumps(
        {"f": conv["f"], "s": conv["s"], "d": conv["d"]}, ensure_ascii=False),
        pointer_ttl=RESUME_TTL)


def _newest(path: str, conv: dict) -> str:
    seen = conv["pl"]
    if seen == 0:
        return path
    if path[seen] == "*" and _digest(path[:seen]) == conv["ph"]:
        return path[seen + 1:]
    return path.rsplit("*", 1)[-1]  # the path changed under us: trust only its last input


def _replay(store: Store, conv: dict) -> Reply:
    screen = conv["scr"]
    text = render(screen["t"], conv["l"], screen["p"], store.settings.keyring)
    return Reply(text, end=screen["e"])


def _digest(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _load(raw: str | None) -> dict | None:
    return json.loads(raw) if raw else None
