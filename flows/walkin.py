"""``WALKIN <mobile> <name> <birth year>``: a vaccinator books someone who came without a
booking into today's session at their centre.

The slot is the first one still to come (by its time) with room, in a session whose age range
takes the person; the store then books it exactly as any booking (the person limits of the
mobile, capacity and ages checked again, atomically) and queues the code SMS to the citizen's
mobile, in its language if it chose one, else the vaccinator's. The number's walk-ins are
counted per day by the store, which refuses past ``WALKIN_DAILY_LIMIT``. Bad input gets the
usage with what was wrong, and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flows import words
from flows.base import Hint, Turn
from flows.booking import OLDEST, age_fits
from gateway.phones import local_mobile
from gateway.store import Outcome

TYPED = 24  # characters of a bad mobile number repeated in the reply
_PHONE_PART = re.compile(r"^[+(]?[\d()\-.]+$")
# What a refusal of the store means to the vaccinator (a reply template each).
REFUSALS = {
    "limit": "vacc.walkin.limit",
    "not_vaccinator": "vacc.not_vaccinator",
    "already_booked": "vacc.walkin.already_booked",
    "replay": "vacc.walkin.already_booked",  # that person already holds this very slot
    "too_many": "vacc.walkin.too_many",
    "too_young": "vacc.walkin.age",
    "too_old": "vacc.walkin.age",
    "full": "vacc.walkin.full",
    "passed": "vacc.walkin.full",
    "past": "vacc.walkin.full",
    "no_slot": "vacc.walkin.full",
    "no_session": "vacc.walkin.no_session",
}
TAKEN = ("full", "passed")  # another booking took the slot first: the next one is tried


@dataclass(frozen=True)
class Person:
    """Who walked in, as the vaccinator typed them."""

    mobile: str
    name: str
    birth_year: int


def parse(rest: str, region: str, this_year: int) -> Person | Hint:
    """The person a WALKIN names (mobile first, the birth year last, the name between), or
    the reply saying what is wrong."""
    parts = words.normal(rest).split()
    last = parts[-1] if len(parts) > 1 else ""
    year = parts.pop() if last.isascii() and last.isdigit() else ""
    phone = []
    while parts and _PHONE_PART.match(parts[0]):
        phone.append(parts.pop(0))
    if not phone:
        return ("vacc.walkin.usage", {})
    mobile = local_mobile("".join(phone), region)
    if not mobile:
        return ("vacc.walkin.bad_mobile", {"typed": " ".join(phone)[:TYPED]})
    name = words.person_name(" ".join(parts))
    if not name:
        return ("vacc.walkin.bad_name", {})
    if not (len(year) == 4 and this_year - OLDEST <= int(year) <= this_year):
        return ("vacc.walkin.bad_year", {"oldest": this_year - OLDEST, "latest": this_year})
    return Person(mobile, name, int(year))


def candidates(sessions: list[dict[str, Any]], birth_year: int) -> list[tuple[str, int, str]]:
    """(session id, slot, time) of today's open slots for someone born in ``birth_year``,
    the earliest first."""
    found = [
        (slot["time"], session["id"], i)
        for session in sessions
        if age_fits(session, birth_year)
        for i, slot in enumerate(session["slots"])
        if slot["open"] > 0
    ]
    return [(sid, i, time) for time, sid, i in sorted(found)]


def book(turn: Turn, rest: str) -> None:
    """WALKIN: book the person into today's first open slot that takes them; reply with the
    ref and the slot, or why nothing was booked."""
    if turn.vaccinator is None:  # the router runs these commands for vaccinators only
        raise LookupError("WALKIN from a number that is not a vaccinator's")
    person = parse(rest, turn.store.settings.default_region, turn.now.year)
    if not isinstance(person, Person):
        turn.say(person[0], **person[1])
        return
    centre_id = turn.vaccinator["centre_id"]
    sessions = turn.store.open_today(centre_id, turn.now)
    slots = candidates(sessions, person.birth_year)
    if not slots:
        _no_slot(turn, sessions, person)
        return
    outcome, time = _book_first(turn, centre_id, person, slots)
    if outcome.ok:
        turn.stored = True
        turn.say("vacc.walkin.booked", ref=outcome.value, time=time, **_about(person))
    else:
        _refused(turn, outcome, person)


def _book_first(
    turn: Turn, centre_id: str, person: Person, slots: list[tuple[str, int, str]]
) -> tuple[Outcome, str]:
    """Book the first of ``slots`` still free (the store checks each again); the outcome and
    the slot's time."""
    lang = turn.store.language(person.mobile) or turn.lang
    outcome = Outcome("full")
    for session_id, slot, time in slots:
        outcome = turn.store.walk_in(
            vaccinator=turn.mobile,
            centre_id=centre_id,
            mobile=person.mobile,
            name=person.name,
            birth_year=person.birth_year,
            session_id=session_id,
            slot=slot,
            lang=lang,
            now=turn.now,
        )
        if outcome.status not in TAKEN:
            return outcome, time
    return outcome, ""


def _about(person: Person) -> dict[str, Any]:
    return {"name": person.name, "by": person.birth_year, "mobile": person.mobile}


def _no_slot(turn: Turn, sessions: list[dict[str, Any]], person: Person) -> None:
    """Why no slot today takes the person: no session, none for their age, or all full."""
    if not sessions:
        turn.say("vacc.walkin.no_session")
    elif not any(age_fits(s, person.birth_year) for s in sessions):
        turn.say("vacc.walkin.age", **_about(person))
    else:
        turn.say("vacc.walkin.full")


def _refused(turn: Turn, outcome: Outcome, person: Person) -> None:
    template = REFUSALS.get(outcome.status, "vacc.error")
    params = _about(person)
    if outcome.status in ("already_booked", "replay"):
        params["ref"] = outcome.value
    elif outcome.status in ("limit", "too_many"):
        params["most"] = outcome.value
    turn.say(template, **params)
