"""The USSD main menu, the offer to resume a dropped booking, language and help.

::

    main ─1→ book (booking flow)      resume ─1→ resumed (the booking where it dropped)
         ─2→ appointments (status)           ─2→ main (the dropped booking forgotten)
         ─3→ cancel (cancel flow)
         ─4→ language ─1/2→ main (in the chosen language)
         ─5→ help
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows import words
from flows.base import Conversation, Flow, Recipe, recipe
from gateway.store.conversations import flow_from_stored

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = ["main", "resume", "language", "help", "book", "appointments", "cancel", "resumed"]
MENU = {"1": "book", "2": "appointments", "3": "cancel", "4": "language", "5": "help"}
LANGUAGES = {"1": "en", "2": "hi"}


def _chosen(dest: str) -> TransitionConfigDict:
    """The main menu's row to ``dest``, taken when its number is chosen."""
    return {"trigger": "answer", "source": "main", "dest": dest, "conditions": f"chose_{dest}"}


TRANSITIONS: list[TransitionConfigDict] = [
    *map(_chosen, MENU.values()),
    {"trigger": "answer", "source": "resume", "dest": "resumed", "conditions": "chose_continue"},
    {
        "trigger": "answer",
        "source": "resume",
        "dest": "main",
        "conditions": "chose_start_over",
        "after": "forget_booking",
    },
    {"trigger": "answer", "source": "language", "dest": "main", "conditions": "picked_language"},
    {"trigger": "back", "source": ["language", "help", "resume"], "dest": "main"},
]

EXITS = {
    "book": ("booking", "name"),
    "appointments": ("status", "list"),
    "cancel": ("cancel", "pick"),
    "resumed": ("resumed", ""),
}


class Menu(Conversation):
    """The menu; ``data["pointer"]`` holds the dropped booking while it is offered."""

    def _chose(self, text: str, dest: str) -> bool:
        return MENU.get(words.normal(text)) == dest

    def chose_book(self, text: str) -> bool:
        """Guard: menu option 1."""
        return self._chose(text, "book")

    def chose_appointments(self, text: str) -> bool:
        """Guard: menu option 2."""
        return self._chose(text, "appointments")

    def chose_cancel(self, text: str) -> bool:
        """Guard: menu option 3."""
        return self._chose(text, "cancel")

    def chose_language(self, text: str) -> bool:
        """Guard: menu option 4."""
        return self._chose(text, "language")

    def chose_help(self, text: str) -> bool:
        """Guard: menu option 5."""
        return self._chose(text, "help")

    def chose_continue(self, text: str) -> bool:
        """Guard: continue the dropped booking (1)."""
        return words.normal(text) == "1" and bool(self.data.get("pointer"))

    def chose_start_over(self, text: str) -> bool:
        """Guard: forget the dropped booking (2)."""
        return words.normal(text) == "2"

    def forget_booking(self, *_: object) -> None:
        """Drop the offered booking for good."""
        self.data.pop("pointer", None)
        self.data["forget"] = True

    def picked_language(self, text: str) -> bool:
        """Guard: a language of the list; the replies switch to it now."""
        lang = LANGUAGES.get(words.normal(text))
        if not lang:
            return self.refuse("hint.choose")
        self.turn.lang = self.turn.new_lang = lang
        return True

    def screen_main(self) -> Recipe:
        return recipe("ussd.menu")

    def screen_resume(self) -> Recipe:
        offered = flow_from_stored(self.data["pointer"])
        return recipe("ussd.resume", name=offered.data.get("name", ""))

    def screen_language(self) -> Recipe:
        return recipe("ussd.language")

    def screen_help(self) -> Recipe:
        return recipe("ussd.help")


FLOW = Flow("menu", Menu, STATES, TRANSITIONS, exits=EXITS)
