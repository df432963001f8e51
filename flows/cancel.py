"""Cancelling a booking: USSD "3 Cancel" (pick, confirm) and SMS ``CANCEL <ref>``.

::

    pick (⟲ 9 more) ─n→ confirm ─1→ cancelled
                              ├─2→ kept
                              └──→ refused (not this mobile's, already over, …)

Only bookings that can still be cancelled are offered (lifecycle: booked, verified, locked,
and their day not over). The store frees the slot and queues the confirmation SMS in the
same step; that SMS is the reply to ``CANCEL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows import lifecycle, words
from flows.base import Conversation, Flow, Hint, Recipe, Turn, recipe
from gateway.store import Outcome

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = ["pick", "confirm", "cancelled", "kept", "refused", "menu"]
TRANSITIONS: list[TransitionConfigDict] = [
    {
        "trigger": "answer",
        "source": "pick",
        "dest": "=",
        "conditions": "wants_more",
        "after": "next_page",
    },
    {"trigger": "answer", "source": "pick", "dest": "confirm", "conditions": "picked_booking"},
    {"trigger": "answer", "source": "confirm", "dest": "kept", "conditions": "said_no"},
    {
        "trigger": "answer",
        "source": "confirm",
        "dest": "cancelled",
        "conditions": ["said_yes", "cancel_done"],
    },
    {"trigger": "answer", "source": "confirm", "dest": "refused", "conditions": "cancel_refused"},
    {
        "trigger": "back",
        "source": "pick",
        "dest": "=",
        "conditions": "on_later_page",
        "after": "previous_page",
    },
    {"trigger": "back", "source": "pick", "dest": "menu"},
    {"trigger": "back", "source": "confirm", "dest": "pick"},
]
CANCELLABLE = lifecycle.sources("cancel")


def refusal(turn: Turn, status: str, value: str, ref: str) -> Hint:
    """The reply to a cancel the store refused."""
    if status == "state" and value == "cancelled":
        return "cancel.refused.already", {"ref": ref}
    if status == "state":
        return "cancel.refused.state", {"ref": ref, "state": {"t": f"state.{value}", "p": {}}}
    if status == "past":
        return "cancel.refused.past", {"ref": ref, "day": turn.day(value)}
    return "cancel.refused.not_found", {"ref": ref}


class Cancel(Conversation):
    """Cancel over USSD; ``data["pick"]`` is the booking chosen."""

    _slip: list[dict[str, Any]] | None = None
    outcome: Outcome | None = None  # what the store said to the cancel, once it was asked

    def open_bookings(self) -> list[dict[str, Any]]:
        """The bookings of this mobile that can still be cancelled (one read per turn)."""
        if self._slip is None:
            self._slip = [
                a for a in self.turn.store.slip(self.turn.mobile) if a["shown_state"] in CANCELLABLE
            ]
        return self._slip

    def picked_booking(self, text: str) -> bool:
        """Guard: a booking of the page shown, still cancellable; kept."""
        picked = words.choice(text, len(self.data.get("opts", [])))
        if not picked:
            return self.refuse("hint.choose")
        ref = self.data["opts"][picked - 1]
        a = next((a for a in self.open_bookings() if a["ref"] == ref), None)
        if not a:
            return self.refuse("hint.gone")
        self.data["pick"] = {
            "ref": ref,
            "name": a["name"],
            "centre": a["centre_name"],
            "date": a["date"],
            "time": a["time"],
        }
        return True

    def said_yes(self, text: str) -> bool:
        """Guard: the answer is yes (1)."""
        return words.yes(text)

    def said_no(self, text: str) -> bool:
        """Guard: the answer is no (2): nothing is cancelled."""
        return words.no(text)

    def cancel_done(self, *_: object) -> bool:
        """Guard with the one write: the store cancels (and queues the SMS)."""
        self.outcome = outcome = self.turn.store.cancel(
            mobile=self.turn.mobile, ref=self.data["pick"]["ref"], lang=self.turn.lang
        )
        self.turn.stored = outcome.ok  # to be told even if the turn cannot be saved
        return outcome.ok

    def cancel_refused(self, *_: object) -> bool:
        """Guard: the store refused; the reason kept."""
        outcome = self.outcome
        if outcome is None:
            return self.refuse("ussd.hint.confirm")
        self.data["why"] = refusal(
            self.turn, outcome.status, outcome.value, self.data["pick"]["ref"]
        )
        return True

    def screen_pick(self) -> Recipe:
        items = [
            (a["ref"], f"{a['name']} {self.turn.day(a['date'])}") for a in self.open_bookings()
        ]
        if not items:
            return recipe("ussd.cancel.none")
        return self.page(
            items,
            lambda lines, more: recipe("ussd.cancel.pick", items=lines, more=more and "\n" + more),
        )

    def screen_confirm(self) -> Recipe:
        pick = self.data["pick"]
        return recipe(
            "ussd.cancel.confirm",
            name=pick["name"],
            centre=pick["centre"],
            day=self.turn.day(pick["date"]),
            time=pick["time"],
        )

    def screen_cancelled(self) -> Recipe:
        return recipe(
            "ussd.cancel.done", True, name=self.data["pick"]["name"], ref=self.data["pick"]["ref"]
        )

    def screen_kept(self) -> Recipe:
        pick = self.data["pick"]
        return recipe(
            "ussd.cancel.kept",
            True,
            name=pick["name"],
            day=self.turn.day(pick["date"]),
            time=pick["time"],
        )

    def screen_refused(self) -> Recipe:
        template, params = self.data["why"]
        return recipe(template, True, **params)

    def screen_menu(self) -> Recipe | None:
        return None


FLOW = Flow("cancel", Cancel, STATES, TRANSITIONS, exits={"menu": ("menu", "main")})


def sms_cancel(turn: Turn, rest: str) -> None:
    """``CANCEL <ref>``: the store's SMS confirms a cancel; a refusal is answered here."""
    ref = turn.reference(rest, "sms.cancel.usage")
    if not ref:
        return
    outcome = turn.store.cancel(mobile=turn.mobile, ref=ref, lang=turn.lang)
    if not outcome.ok:
        template, params = refusal(turn, outcome.status, outcome.value, ref)
        turn.say(template, **params)
