"""Inbound SMS: keywords first, then the answer to an open question, else the help text.

A turn costs one pipelined read (replay guard, booking conversation, vaccinator registration,
language), at most one read or change of the store, and one commit that writes
the replay guard, the conversation and the reply SMS together, or nothing at all when the
guard is already there. Replies leave through the outbox, never from the request.
"""

from __future__ import annotations

import json
import logging

from flows import booking, cancel, commands, status, vaccinator, words
from flows.base import Turn
from gateway.inbound import SMS, InboundMessage
from gateway.phones import mask
from gateway.store import Store, keys

GUARD_TTL = 48 * 3600  # the provider retries an unanswered callback for minutes, not days
CONVERSATION_TTL = 2 * 3600  # an unanswered booking question is forgotten after this
CLAIM_TTL = 30  # a copy of an SMS is being applied: far longer than a turn takes
log = logging.getLogger("tikaline.sms")


def handle(store: Store, msg: InboundMessage) -> bool:
    """Apply one inbound SMS and queue its replies, exactly once per message id.

    False when another copy of the same message is being applied right now: the caller asks
    the provider to retry it (by then it is a replay, or the other copy failed and left it)."""
    mobile = msg.sender
    guard, claim = keys.inbound(msg.message_id), keys.inbound_claim(msg.message_id)
    conv_key = keys.conversation(SMS, mobile)
    lang_key = keys.language(mobile)
    snap = store.snapshot(strings=[guard, conv_key, lang_key],
                          hashes=[keys.vaccinator(mobile)], claim=(claim, CLAIM_TTL))
    if snap[guard] is not None:
        log.info("event=sms_replay id=%s from=%s", msg.message_id, mask(mobile))
        return True
    if not snap["claimed"]:
        log.info("event=sms_in_flight id=%s from=%s", msg.message_id, mask(mobile))
        return False
    try:
        _turn(store, msg, snap, guard, conv_key, lang_key)
    except Exception:
        store.r.delete(claim)  # let the provider's retry apply it
        raise
    return True


def _turn(store: Store, msg: InboundMessage, snap: dict, guard: str, conv_key: str,
          lang_key: str) -> None:
    command, rest = words.command(msg.text)
    mobile = msg.sender
    turn = Turn(store, mobile, SMS, snap[lang_key] or "en",
                vaccinator=snap[keys.vaccinator(mobile)] or None)
    conv = _load(snap[conv_key])
    key, ttl, state = conv_key, CONVERSATION_TTL, "="

    if command in words.VACCINATOR_COMMANDS:
        if turn.vaccinator:
            vaccinator.run(turn, command, rest)  # a booking conversation stays as it was
        else:
            turn.say("vacc.not_vaccinator")  # nothing else happens for other numbers
    elif turn.vaccinator and (meant := words.near_miss(msg.text)):
        vaccinator.near_miss(turn, *meant)  # never an answer to a booking question
    elif command == "book":
        model, _ = booking.start(turn, rest)
        state = _ask(turn, model)
    elif command == "status":
        status.sms_slip(turn)
    elif command == "cancel" and not rest and conv:
        state = ""  # CANCEL on its own during a booking stops the booking
        turn.say("sms.book.stopped")
    elif command == "cancel":
        cancel.sms_cancel(turn, rest)
    elif command == "code":
        commands.new_code(turn, rest)
    elif command == "lang":
        commands.language(turn, rest)
    elif command == "help" or not conv:
        commands.help_text(turn)
    else:
        model, moved = booking.FLOW.run(turn, conv["s"], conv["d"], "answer", msg.text)
        if not moved and model.hint is None:
            model.hint = ("hint.choose", {})
        state = _ask(turn, model)

    written = store.commit_turn(
        mobile=mobile, conversation=key, state=state, ttl=ttl, guard=guard,
        guard_ttl=GUARD_TTL, lang=turn.new_lang,
        messages=[{"k": f"reply:{msg.message_id}:{i}", "t": t, "l": turn.lang, "p": p}
                  for i, (t, p) in enumerate(turn.replies)])
    log.info("event=sms_turn id=%s from=%s command=%s replies=%d written=%s", msg.message_id,
             mask(mobile), command or ("answer" if conv else "none"), len(turn.replies), written)


def _ask(turn: Turn, model) -> str:
    """Queue the booking's next question; the conversation to keep ('' once it is over)."""
    screen = model.screen()
    if screen:
        turn.say(screen["t"], **screen["p"])
    if model.state in booking.FINAL:
        return ""
    return json.dumps({"s": model.state, "d": model.data}, ensure_ascii=False)


def _load(raw: str | None) -> dict | None:
    return json.loads(raw) if raw else None
