"""Inbound SMS: keywords first, then the answer to an open question, else the help text.

A turn costs one pipelined read (replay guard, booking conversation, vaccinator registration,
language), at most one read or change of the store, and one commit that writes
the replay guard, the conversation and the reply SMS together, or nothing at all when the
guard is already there. Replies leave through the outbox, never from the request.
"""

from __future__ import annotations

import logging

from flows import booking, cancel, certificate, commands, status, vaccinator, words
from flows.base import Conversation, Turn
from gateway.inbound import SMS, InboundMessage
from gateway.phones import mask
from gateway.store import Store
from gateway.store.conversations import DELETE, KEEP, FlowState, Mark, Sms, SmsTurnState

GUARD_TTL = 48 * 3600  # the provider retries an unanswered callback for minutes, not days
CONVERSATION_TTL = 2 * 3600  # an unanswered booking question is forgotten after this
CLAIM_TTL = 30  # a copy of an SMS is being applied: far longer than a turn takes
log = logging.getLogger("tikaline.sms")


def handle(store: Store, msg: InboundMessage) -> bool:
    """Apply one inbound SMS and queue its replies, exactly once per message id.

    False when another copy of the same message is being applied right now: the caller asks
    the provider to retry it (by then it is a replay, or the other copy failed and left it)."""
    mobile = msg.sender
    state = store.load_sms_turn(msg.message_id, mobile, CLAIM_TTL)
    if state.replay:
        log.info("event=sms_replay id=%s from=%s", msg.message_id, mask(mobile))
        return True
    if not state.claimed:
        log.info("event=sms_in_flight id=%s from=%s", msg.message_id, mask(mobile))
        return False
    try:
        _turn(store, msg, state)
    except Exception:
        store.release_claim(msg.message_id, msg.sender)  # let the provider's retry apply it
        raise
    return True


def _turn(store: Store, msg: InboundMessage, state: SmsTurnState) -> None:
    command, rest = words.command(msg.text)
    mobile = msg.sender
    turn = Turn(store, mobile, SMS, state.lang or "en", vaccinator=state.vaccinator)
    conv = state.conversation
    kept: FlowState | Mark = KEEP

    if command in words.VACCINATOR_COMMANDS:
        if turn.vaccinator:
            vaccinator.run(turn, command, rest)  # a booking conversation stays as it was
        else:
            turn.say("vacc.not_vaccinator")  # nothing else happens for other numbers
    elif turn.vaccinator and (meant := words.near_miss(msg.text)):
        vaccinator.near_miss(turn, *meant)  # never an answer to a booking question
    elif command == "book":
        model, _ = booking.start(turn, rest)
        kept = _ask(turn, model)
    elif command == "status":
        status.sms_slip(turn)
    elif command == "cancel" and not rest and conv:
        kept = DELETE  # CANCEL on its own during a booking stops the booking
        turn.say("sms.book.stopped")
    elif command == "cancel":
        cancel.sms_cancel(turn, rest)
    elif command == "code":
        commands.new_code(turn, rest)
    elif command == "cert":
        certificate.sms_check(turn, rest)
    elif command == "lang":
        commands.language(turn, rest)
    elif command == "help" or not conv:
        commands.help_text(turn)
    else:
        model, moved = booking.FLOW.run(turn, conv.state, conv.data, "answer", msg.text)
        if not moved and model.hint is None:
            model.hint = ("hint.choose", {})
        kept = _ask(turn, model)

    written = store.save_sms_turn(
        message_id=msg.message_id,
        mobile=mobile,
        conversation=kept,
        ttl=CONVERSATION_TTL,
        guard_ttl=GUARD_TTL,
        chosen_lang=turn.new_lang or None,
        replies=[
            Sms(f"reply:{msg.message_id}:{i}", t, turn.lang, p)
            for i, (t, p) in enumerate(turn.replies)
        ],
    )
    log.info(
        "event=sms_turn id=%s from=%s command=%s replies=%d written=%s",
        msg.message_id,
        mask(mobile),
        command or ("answer" if conv else "none"),
        len(turn.replies),
        written,
    )


def _ask(turn: Turn, model: Conversation) -> FlowState | Mark:
    """Queue the booking's next question; the conversation to keep (deleted once it is over)."""
    screen = model.screen()
    if screen:
        turn.say(screen["t"], **screen["p"])
    if booking.is_over(model.state):
        return DELETE
    return FlowState(booking.FLOW.name, model.state, model.data)
