"""The appointment slip: every beneficiary of a mobile, with the code of each open booking.

Over USSD ("2 My appointments") one booking per screen, ``1`` for the next, ``0`` back; over
SMS (``STATUS``) as few messages as the budget allows. Codes are derived when the text is
rendered, from ``ref`` + ``ver``: neither the stored screen nor the queued SMS holds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows import words
from flows.base import Conversation, Entry, Flow, Recipe, Turn, recipe
from flows.messages.sms import segments

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = ["list", "menu"]
TRANSITIONS: list[TransitionConfigDict] = [
    {
        "trigger": "answer",
        "source": "list",
        "dest": "=",
        "conditions": "wants_next",
        "after": "next_one",
    },
    {
        "trigger": "back",
        "source": "list",
        "dest": "=",
        "conditions": "not_first",
        "after": "previous_one",
    },
    {"trigger": "back", "source": "list", "dest": "menu"},
]
WITH_CODE = ("booked", "verified")  # the states in which a vaccinator will ask for the code
# What a person looks for first: the bookings still to go to, then the doses had, then the
# bookings that are over without one.
SHOWN_FIRST = {"booked": 0, "verified": 0, "locked": 0, "vaccinated": 1}


def in_order(slip: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slip with open bookings first, then vaccinated, then cancelled and missed."""
    return sorted(slip, key=lambda a: (SHOWN_FIRST.get(a["shown_state"], 2), a["date"], a["name"]))


SLIP_BUDGET = {"gsm7": 3, "ucs2": 5}  # segments per SMS (see flows/messages/sms.py)


class Status(Conversation):
    """The slip over USSD; ``data["i"]`` is the booking shown."""

    _slip: list[dict[str, Any]] | None = None

    def slip(self) -> list[dict[str, Any]]:
        """The slip of this mobile (one read per turn)."""
        if self._slip is None:
            self._slip = in_order(self.turn.store.slip(self.turn.mobile))
        return self._slip

    def wants_next(self, text: str) -> bool:
        """Guard: 1 while a next booking exists; else the hint names the keys on screen."""
        has_next = self.data.get("i", 0) + 1 < self.data.get("n", 0)
        if words.normal(text) == "1" and has_next:
            return True
        return self.refuse("hint.next_back" if has_next else "hint.back")

    def next_one(self, *_: object) -> None:
        """Show the next booking."""
        self.data["i"] = self.data.get("i", 0) + 1

    def not_first(self, *_: object) -> bool:
        """Guard: a booking before this one exists."""
        return bool(self.data.get("i", 0) > 0)

    def previous_one(self, *_: object) -> None:
        """Show the booking before."""
        self.data["i"] -= 1

    def screen_list(self) -> Recipe:
        slip = self.slip()
        if not slip:
            self.data.update(i=0, n=0)
            return recipe("ussd.status.none")
        i = min(self.data.get("i", 0), len(slip) - 1)
        self.data.update(i=i, n=len(slip))
        a = slip[i]
        more = self.turn.text(recipe("ussd.next")) + "\n" if i + 1 < len(slip) else ""
        params = {
            "i": i + 1,
            "n": len(slip),
            "name": a["name"],
            "ref": a["ref"],
            "centre": a["centre_name"],
            "day": self.turn.day(a["date"]),
            "time": a["time"],
            "more": more,
        }
        if a["shown_state"] in WITH_CODE:
            return recipe("ussd.status.open", ver=int(a["ver"]), kid=a.get("k"), **params)
        return recipe(
            "ussd.status.closed", state={"t": f"state.{a['shown_state']}", "p": {}}, **params
        )

    def screen_menu(self) -> Recipe | None:
        return None


FLOW = Flow("status", Status, STATES, TRANSITIONS, exits={"menu": ("menu", "main")})


def slip_line(turn: Turn, a: dict[str, Any]) -> Entry:
    """One booking of the SMS slip, as an entry the sender renders (code derived then)."""
    params = {"name": a["name"], "ref": a["ref"], "day": turn.day(a["date"])}
    if a["shown_state"] in WITH_CODE:
        return {
            "t": "sms.slip.open",
            "p": {
                **params,
                "ver": int(a["ver"]),
                "kid": a.get("k"),
                "centre": a["centre_name"],
                "time": a["time"],
            },
        }
    if a["shown_state"] == "locked":
        return {"t": "sms.slip.locked", "p": params}
    return {
        "t": "sms.slip.closed",
        "p": {**params, "state": {"t": f"state.{a['shown_state']}", "p": {}}},
    }


def sms_slip(turn: Turn) -> None:
    """Queue the slip for ``STATUS``: the bookings packed into as few SMS as fit the budget."""
    slip = in_order(turn.store.slip(turn.mobile))
    if not slip:
        turn.say("sms.slip.none")
        return
    group: list[Entry] = []
    for line in (slip_line(turn, a) for a in slip):
        if group and not _fits_slip(turn, group + [line]):
            turn.say("sms.slip", lines=group)
            group = []
        group.append(line)
    turn.say("sms.slip", lines=group)


def _fits_slip(turn: Turn, lines: list[Entry]) -> bool:
    encoding, parts = segments(turn.text(recipe("sms.slip", lines=lines)))
    return parts <= SLIP_BUDGET[encoding]
