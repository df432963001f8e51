"""Vaccinator commands by SMS, from registered numbers only: ``VERIFY``, ``DOSE``, ``TODAY``,
``WALKIN`` (see ``flows/walkin.py``).

The machine has one state: what a vaccinator has verified lives in the store (the number's
waiting set), not in the conversation, so ``DOSE`` alone is taken only when exactly one
booking this number verified in the last 30 minutes is still waiting, and a refused VERIFY
changes nothing. Every refusal of the store gets its own reply; the store decides (right
centre, today, open, code) and counts failures, so a number that is not a vaccinator's
changes nothing. Replies that record something name the person, not only the ref.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from flows import walkin, words
from flows.base import Conversation, Entry, Flow, Turn
from gateway.codes import CODE_DIGITS, REF_LENGTH, parse_reference

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = ["idle"]
TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "verify", "source": "idle", "dest": "=", "after": "check_code"},
    {"trigger": "dose", "source": "idle", "dest": "=", "after": "record_dose"},
    {"trigger": "today", "source": "idle", "dest": "=", "after": "tell_counts"},
    {"trigger": "walkin", "source": "idle", "dest": "=", "after": "book_walk_in"},
]
LISTED = 3  # waiting bookings listed at most when DOSE alone is ambiguous
SUGGESTED = 40  # characters of a mistyped command repeated in "Did you mean …?"
_GROUP = re.compile(r"[\s\-./]*(\d+)")
_BATCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/.\-]{0,19}$")


def split_reference(rest: str) -> tuple[str | None, str]:
    """The booking ref at the start of ``rest`` (grouped or not) and the text after it."""
    prefixes, digits, pos = [], "", 0
    while found := _GROUP.match(rest, pos):
        digits, pos = digits + found.group(1), found.end()
        if ref := parse_reference(digits):
            prefixes.append((ref, pos))
    # Prefer a ref of our own length: a shorter prefix may pass the check digit by chance.
    best = next((p for p in prefixes if len(p[0]) == REF_LENGTH), prefixes[0] if prefixes else None)
    if best:
        return best[0], rest[best[1] :].strip(" -./")
    first = rest.split()[0] if rest.split() else ""
    if len(first) == REF_LENGTH + CODE_DIGITS and parse_reference(first[:REF_LENGTH]):
        return first[:REF_LENGTH], rest[REF_LENGTH:].strip()  # ref and code without a space
    return None, rest.strip()


def _places(n: int) -> Entry:
    """The open places as an entry the sender renders: "1 place", "5 places"."""
    return {"t": "vacc.open_one" if n == 1 else "vacc.open", "p": {"n": n}}


class Vaccinator(Conversation):
    """One vaccinator number's turn; nothing is kept between turns but in the store."""

    def check_code(self, rest: str) -> None:
        """VERIFY: the store checks the code (counting a wrong one); the reply names who."""
        ref, after = split_reference(rest)
        code = words.number(after, CODE_DIGITS) if after else None
        if not ref or not code:
            self._usage(rest, ref, "vacc.usage_verify")
            return
        outcome = self.turn.store.verify(
            vaccinator=self.turn.mobile, ref=ref, code=code, now=self.turn.now
        )
        if outcome.ok:
            who = json.loads(outcome.value)
            self.turn.say(
                "vacc.verified",
                ref=ref,
                name=who["name"],
                by=who["by"],
                dose=who["dose"],
                time=who["time"],
            )
        else:
            self._refused(outcome.status, outcome.value, ref)

    def record_dose(self, rest: str) -> None:
        """DOSE: the store records the dose (and queues the SMS); the reply names who."""
        ref, batch = split_reference(rest)
        if not ref and batch and any(c.isdigit() for c in batch.split()[0]):
            self.turn.say("sms.bad_ref", typed=rest[:24])
            return
        if batch and not _BATCH.match(batch):
            self.turn.say("vacc.usage_dose")
            return
        ref = ref or self._the_one_waiting()
        if not ref:
            return
        outcome = self.turn.store.record_dose(
            vaccinator=self.turn.mobile, ref=ref, batch=batch, now=self.turn.now
        )
        if outcome.ok:
            who = json.loads(outcome.value)
            self.turn.say("vacc.dosed", ref=ref, name=who["name"], by=who["by"], cert=who["cert"])
        else:
            self._refused(outcome.status, outcome.value, ref)

    def _the_one_waiting(self) -> str | None:
        """The ref DOSE alone means: the only booking waiting, else None after asking which."""
        waiting = self.turn.store.waiting(self.turn.mobile, now=self.turn.now)
        if len(waiting) == 1:
            ref: str = waiting[0]["ref"]
            return ref
        if not waiting:
            self.turn.say("vacc.usage_dose")
            return None
        for shown in range(min(LISTED, len(waiting)), 0, -1):  # as many as fit one SMS
            reply = self._choose(waiting, shown)
            if shown == 1 or self.turn.fits(reply):
                break
        self.turn.say(reply["t"], **reply["p"])
        return None

    @staticmethod
    def _choose(waiting: list[dict[str, Any]], shown: int) -> Entry:
        """The reply listing the first ``shown`` of several waiting bookings."""
        items = [{"t": "vacc.waiting_item", "p": w} for w in waiting[:shown]]
        more = len(waiting) - shown
        return {
            "t": "vacc.choose",
            "p": {
                "n": len(waiting),
                "items": items,
                "more": {"t": "vacc.and_more", "p": {"n": more}} if more else "",
            },
        }

    def tell_counts(self, *_: object) -> None:
        """Reply with today's counts at the vaccinator's centre, each person counted once."""
        if self.turn.vaccinator is None:  # the router runs these commands for vaccinators only
            raise LookupError("TODAY from a number that is not a vaccinator's")
        centre_id = self.turn.vaccinator["centre_id"]
        counts = self.turn.store.centre_today(centre_id, now=self.turn.now)
        # The day's counters nest (vaccinated ⊂ verified ⊂ booked): shown as parts of booked.
        booked, verified = counts["booked"], max(counts["verified"], counts["vaccinated"])
        self.turn.say(
            "vacc.today",
            centre=counts["name"] or centre_id,
            day=self.turn.day(counts["date"]),
            booked=booked,
            vaccinated=counts["vaccinated"],
            waiting=verified - counts["vaccinated"],
            unverified=max(0, booked - verified),
            open=_places(counts["open"]),
        )

    def book_walk_in(self, rest: str) -> None:
        """WALKIN: book someone who came without a booking into today's first open slot."""
        walkin.book(self.turn, rest)

    def _usage(self, rest: str, ref: str | None, usage: str) -> None:
        if not ref and any(c.isdigit() for c in rest):
            self.turn.say("sms.bad_ref", typed=rest[:24])
        else:
            self.turn.say(usage)

    def _refused(self, status: str, value: str, ref: str) -> None:
        params: dict[str, Any] = {"ref": ref}
        if status == "blocked":
            params["minutes"] = max(1, math.ceil(int(value or 3600) / 60))
        elif status == "wrong_day":
            params["day"] = self.turn.day(value)
        elif status == "wrong_code":
            params["left"] = value
            status = "wrong_code_one" if value == "1" else status
        elif status == "already_recorded":
            params["cert"] = value
        elif status == "locked" and value == "0":
            status = "locked_now"  # this wrong code was the last one allowed
        known = status in REFUSALS
        self.turn.say(f"vacc.{status}" if known else "vacc.error", **params)


REFUSALS = (
    "not_vaccinator",
    "blocked",
    "not_found",
    "wrong_centre",
    "wrong_day",
    "already_vaccinated",
    "cancelled",
    "locked",
    "locked_now",
    "missed",
    "wrong_code",
    "not_verified",
    "already_recorded",
    "wrong_code_one",
)

FLOW = Flow("vaccinator", Vaccinator, STATES, TRANSITIONS)


def near_miss(turn: Turn, command: str, rest: str) -> None:
    """A mistyped command from a vaccinator number: ask back, do nothing."""
    suggestion = f"{command.upper()} {rest}".strip()
    if len(suggestion) > SUGGESTED:
        suggestion = suggestion[: SUGGESTED - 3].rstrip() + "..."
    turn.say("vacc.did_you_mean", suggestion=suggestion)


def run(turn: Turn, command: str, rest: str) -> None:
    """Handle one vaccinator command (its replies are queued on the turn)."""
    FLOW.run(turn, "idle", {}, command, rest)
