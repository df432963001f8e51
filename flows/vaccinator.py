"""Vaccinator commands by SMS, from registered numbers only: ``VERIFY``, ``DOSE``, ``TODAY``.

::

    idle ──VERIFY <ref> <code> ok──→ verified ──DOSE [<ref>] [batch] ok──→ idle
      ↑ └──── refused: stays ────┘      └──── refused: stays, ref kept

The machine remembers the last booking verified, so ``DOSE`` alone records it. Every refusal
of the store gets its own reply; the store decides (right centre, today, open, code) and
counts wrong codes, so a number that is not a vaccinator's changes nothing.
"""

from __future__ import annotations

import json
import math
import re

from flows import words
from flows.base import Conversation, Flow, Turn
from gateway.codes import CODE_DIGITS, REF_LENGTH, parse_reference

STATES = ["idle", "verified"]
TRANSITIONS = [
    {"trigger": "verify", "source": ["idle", "verified"], "dest": "verified",
     "conditions": "code_matches"},
    {"trigger": "verify", "source": ["idle", "verified"], "dest": "="},
    {"trigger": "dose", "source": ["idle", "verified"], "dest": "idle",
     "conditions": "dose_recorded", "after": "forget"},
    {"trigger": "dose", "source": ["idle", "verified"], "dest": "="},
    {"trigger": "today", "source": ["idle", "verified"], "dest": "=", "after": "tell_counts"},
]
TTL = 30 * 60  # how long DOSE alone means the booking just verified
_SPLIT = re.compile(r"[\s\-./]+")
_BATCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/-]{0,19}$")


def split_reference(rest: str) -> tuple[str | None, list[str]]:
    """The booking ref at the start of ``rest`` (grouped or not) and the words after it."""
    parts = [p for p in _SPLIT.split(rest) if p]
    found = [(n, ref) for n in range(1, len(parts) + 1)
             if (ref := parse_reference("".join(parts[:n])))]
    # Prefer a ref of our own length: a shorter prefix may pass the check digit by chance.
    best = next((f for f in found if len(f[1]) == REF_LENGTH), found[0] if found else None)
    if best:
        return best[1], parts[best[0]:]
    if parts and len(parts[0]) == REF_LENGTH + CODE_DIGITS and parse_reference(
            parts[0][:REF_LENGTH]):  # ref and code typed without a space
        return parts[0][:REF_LENGTH], [parts[0][REF_LENGTH:], *parts[1:]]
    return None, parts


class Vaccinator(Conversation):
    """One vaccinator number; ``data["ref"]`` is the booking last verified."""

    def code_matches(self, rest: str) -> bool:
        """Guard with the one write: the store checks the code (counting a wrong one)."""
        ref, others = split_reference(rest)
        code = words.number("".join(others), CODE_DIGITS) if others else None
        if not ref or not code:
            self._usage(rest, ref, "vacc.usage_verify")
            return False
        outcome = self.turn.store.verify(vaccinator=self.turn.mobile, ref=ref, code=code)
        if outcome.ok:
            who = json.loads(outcome.value)
            self.turn.say("vacc.verified", ref=ref, name=who["name"], by=who["by"],
                          dose=who["dose"], time=who["time"])
            self.data["ref"] = ref
            return True
        self._refused(outcome.status, outcome.value, ref)
        return False

    def dose_recorded(self, rest: str) -> bool:
        """Guard with the one write: the store records the dose (and queues the SMS)."""
        ref, others = split_reference(rest)
        if not ref and others and any(c.isdigit() for c in others[0]):
            self.turn.say("sms.bad_ref", typed=rest[:24])
            return False
        ref = ref or self.data.get("ref")
        batch = " ".join(others)
        if not ref or (batch and not _BATCH.match(batch)):
            self.turn.say("vacc.usage_dose")
            return False
        outcome = self.turn.store.record_dose(vaccinator=self.turn.mobile, ref=ref,
                                              batch=batch)
        if outcome.ok:
            self.turn.say("vacc.dosed", ref=ref, cert=outcome.value)
            return True
        self._refused(outcome.status, outcome.value, ref)
        return False

    def forget(self, *_) -> None:
        """Forget the booking verified."""
        self.data.pop("ref", None)

    def tell_counts(self, *_) -> None:
        """Reply with today's counts at the vaccinator's centre, each person counted once."""
        centre_id = self.turn.vaccinator["centre_id"]
        counts = self.turn.store.centre_today(centre_id)
        # The day's counters nest (vaccinated ⊂ verified ⊂ booked): shown as parts of booked.
        booked, verified = counts["booked"], max(counts["verified"], counts["vaccinated"])
        self.turn.say("vacc.today", centre=counts["name"] or centre_id,
                      day=self.turn.day(counts["date"]), booked=booked,
                      vaccinated=counts["vaccinated"],
                      waiting=verified - counts["vaccinated"],
                      unverified=max(0, booked - verified), open=counts["open"])

    def _usage(self, rest: str, ref: str | None, usage: str) -> None:
        if not ref and any(c.isdigit() for c in rest):
            self.turn.say("sms.bad_ref", typed=rest[:24])
        else:
            self.turn.say(usage)

    def _refused(self, status: str, value: str, ref: str) -> None:
        params = {"ref": ref}
        if status == "blocked":
            params["minutes"] = max(1, math.ceil(int(value or 3600) / 60))
        elif status == "wrong_day":
            params["day"] = self.turn.day(value)
        elif status == "wrong_code":
            params["left"] = value
        elif status == "already_recorded":
            params["cert"] = value
        elif status == "locked" and value == "0":
            status = "locked_now"  # this wrong code was the last one allowed
        known = status in REFUSALS
        self.turn.say(f"vacc.{status}" if known else "vacc.error", **params)


REFUSALS = ("not_vaccinator", "blocked", "not_found", "wrong_centre", "wrong_day",
            "already_vaccinated", "cancelled", "locked", "locked_now", "missed", "wrong_code",
            "not_verified", "already_recorded")

FLOW = Flow("vaccinator", Vaccinator, STATES, TRANSITIONS)


def run(turn: Turn, command: str, rest: str, stored: dict | None) -> dict | None:
    """Handle one vaccinator command; the state to keep ({"s", "d"}), None when idle."""
    stored = stored or {"s": "idle", "d": {}}
    model, _ = FLOW.run(turn, stored["s"], stored["d"], command, rest)
    return {"s": model.state, "d": model.data} if model.state != "idle" else None
