"""The one-message SMS commands: ``LANG HI|EN``, ``HELP`` and ``CODE <ref>``."""

from __future__ import annotations

from flows import words
from flows.base import Turn

LANGUAGE_WORDS = {"lang_en": "en", "lang_hi": "hi"}


def language(turn: Turn, rest: str) -> None:
    """``LANG HI`` / ``LANG EN``: replies in that language from now on."""
    lang = LANGUAGE_WORDS.get(words.answer_word(rest) or "")
    if not lang:
        turn.say("sms.lang.usage")
        return
    turn.lang = turn.new_lang = lang
    turn.say("sms.lang.set")


def help_text(turn: Turn) -> None:
    """``HELP`` (and anything that fits nothing): the commands this number can use."""
    turn.say("sms.help.vaccinator" if turn.vaccinator else "sms.help")


def new_code(turn: Turn, rest: str) -> None:
    """``CODE <ref>``: a fresh code for a booked or locked booking of this mobile, by SMS."""
    ref = turn.reference(rest, "sms.code.usage")
    if not ref:
        return
    outcome = turn.store.reissue(mobile=turn.mobile, ref=ref, lang=turn.lang, now=turn.now)
    if outcome.ok:
        return  # the store queued the SMS with the new code
    if outcome.status == "state":
        turn.say("sms.code.state", ref=ref, state={"t": f"state.{outcome.value}", "p": {}})
    elif outcome.status == "past":
        turn.say("sms.code.past", ref=ref, day=turn.day(outcome.value))
    elif outcome.status == "conflict":
        turn.say("sms.code.retry", ref=ref)
    elif outcome.status == "limit":
        turn.say("sms.code.limit", ref=ref, most=outcome.value)
    else:
        turn.say("sms.code.not_found", ref=ref)
