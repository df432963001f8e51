"""What every conversation shares: the turn, the per-request model, screens, pages, budgets.

A flow is a ``transitions`` machine built once per process from the ``STATES`` and
``TRANSITIONS`` at the top of its module. Per request, a light model (a ``Conversation``
carrying the stored state name and a small data dict) is set to its state and one of the
machine's events is fired on it; only the state name and the data are stored.

A screen (a USSD page, or an SMS prompt) is a recipe ``{"t": template, "p": params, "e": end}``
that ``flows.messages.sms.render`` fills; it never holds a security code, only ``ref`` + ``ver``
to derive one, so it can be stored for replays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from transitions import Machine

from flows import messages, words
from flows.messages.sms import render, segments
from gateway.codes import parse_reference
from gateway.inbound import USSD
from gateway.store import Store

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

USSD_SCREEN = 160  # characters, "CON "/"END " included
MAX_OPTIONS = 8  # 9 is "more", 0 is "back"

Data = dict[str, Any]  # a flow's stored data: the answers so far and the page shown
Params = dict[str, Any]  # a template's params; a value may itself be an Entry
Hint = tuple[str, Params]  # a refused answer's hint: template and params


class Entry(TypedDict):
    """A text to render: template and params."""

    t: str
    p: Params


class Recipe(Entry):
    """A screen: its text, and whether it closes the USSD session."""

    e: bool


@dataclass
class Turn:
    """One inbound message being handled: who, where, in which language, and what to send."""

    store: Store
    mobile: str
    channel: str
    lang: str
    vaccinator: dict[str, str] | None = None
    new_lang: str = ""  # set when the person chose a language this turn
    replies: list[Hint] = field(default_factory=list)  # SMS to queue with the commit: (t, p)
    now: datetime = field(init=False)  # the clock, read once per turn: every check sees one time
    stored: bool = False  # the store made a change (a booking): the reply must tell it

    def __post_init__(self) -> None:
        self.now = self.store.now()

    @property
    def epoch(self) -> int:
        """This turn's time in epoch seconds."""
        return int(self.now.timestamp())

    def say(self, template: str, **params: Any) -> None:
        """Queue an SMS reply (sent through the outbox once the turn commits)."""
        self.replies.append((template, params))

    def reference(self, rest: str, usage: str) -> str | None:
        """The booking ref a command carries, or None after replying with ``usage`` (nothing
        typed) or the bad-ref hint (a typo its check digit caught)."""
        if not rest:
            self.say(usage)
            return None
        ref = parse_reference(rest)
        if not ref:
            self.say("sms.bad_ref", typed=rest[:24])
        return ref

    def text(self, recipe: Entry) -> str:
        """A recipe rendered in this turn's language (codes derived, in memory only)."""
        return render(recipe["t"], self.lang, recipe["p"], self.store.settings.keyring)

    def fits(self, recipe: Entry) -> bool:
        """Whether a screen keeps to its channel's budget (set in ``flows/messages/sms.py``)."""
        text = self.text(recipe)
        if self.channel == USSD:
            return len(text) + 4 <= USSD_SCREEN
        encoding, parts = segments(text)
        return parts <= (1 if encoding == "gsm7" else 3)

    def key(self, name: str) -> str:
        """The channel's own template for ``name`` when it has one, else the shared one."""
        own = f"{self.channel}.{name}"
        return own if own in messages.catalogue(messages.DEFAULT) else name

    def day(self, iso: str) -> str:
        """A short day label, e.g. ``Mon 01-12``, in this turn's language."""
        return messages.day(iso, self.lang)


def recipe(template: str, end: bool = False, **params: Any) -> Recipe:
    """A screen: template, params and whether it closes the USSD session."""
    return {"t": template, "p": params, "e": end}


def with_hint(screen: Recipe, hint: Hint | None, channel: str) -> Recipe:
    """The screen with a one-line hint above it (a refused answer), or as it is."""
    if not hint:
        return screen
    return {
        "t": f"{channel}.hinted",
        "e": screen["e"],
        "p": {"hint": {"t": hint[0], "p": hint[1]}, "body": {"t": screen["t"], "p": screen["p"]}},
    }


class Conversation:
    """The per-request model: ``state`` (set by the machine), ``data`` (stored), the turn.

    Subclasses name their guards after the rule they check and render each state with a
    ``screen_<state>`` method (``None`` for a state that hands over to another flow)."""

    state: str  # set by the flow's machine

    def __init__(self, turn: Turn, data: Data):
        self.turn = turn
        self.data = data
        self.hint: Hint | None = None

    def refuse(self, key: str, **params: Any) -> bool:
        """A guard's "no": remember the hint to show above the screen again."""
        self.hint = (key, params)
        return False

    def screen(self) -> Recipe | None:
        """This state's screen, with the hint of a refused answer."""
        shown: Recipe | None = getattr(self, f"screen_{self.state}")()
        return with_hint(shown, self.hint, self.turn.channel) if shown else None

    def page(self, items: list[tuple[str, str]], build: Callable[[str, str], Recipe]) -> Recipe:
        """The page of ``items`` (value, label) from ``data["page"]``: as many as fit (one at
        least, eight at most); ``build(lines, more)`` makes the screen. Remembers the values
        shown as ``data["opts"]`` so a reply's number means what the caller saw."""
        start = min(self.data.get("page", 0), max(0, len(items) - 1))
        count = max(1, min(MAX_OPTIONS, len(items) - start))
        # Sized as if a wrong answer's hint were already there, so that the page shown
        # again under it holds the same items under the same numbers.
        hint: Hint = self.hint or ("hint.choose", {})
        while True:
            shown = items[start : start + count]
            more = start + count < len(items)
            lines = "\n".join(f"{i} {label}" for i, (_, label) in enumerate(shown, 1))
            screen = build(lines, self.turn.text(recipe(self.turn.key("more"))) if more else "")
            if count == 1 or self.turn.fits(with_hint(screen, hint, self.turn.channel)):
                break
            count -= 1
        self.data.update(page=start, opts=[value for value, _ in shown], more=more)
        return screen

    # Paging guards and actions, shared by every listed screen.

    def wants_more(self, text: str = "", *_: object) -> bool:
        """Guard: the caller asked for the next page of a list that has one."""
        asked = words.normal(text) == "9" or words.answer_word(text) == "more"
        return bool(self.data.get("more")) and asked

    def next_page(self, *_: object) -> None:
        """Show the next page, remembering where this one started."""
        self.data.setdefault("pages", []).append(self.data.get("page", 0))
        self.data["page"] = self.data.get("page", 0) + len(self.data.get("opts", []))

    def on_later_page(self, *_: object) -> bool:
        """Guard: a page before this one exists."""
        return bool(self.data.get("pages"))

    def previous_page(self, *_: object) -> None:
        """Show the page before."""
        self.data["page"] = self.data["pages"].pop()

    def first_page(self, *_: object) -> None:
        """Start a list at its first page."""
        self.data.update(page=0, pages=[])


M = TypeVar("M", bound=Conversation, covariant=True)


class Flow(Generic[M]):
    """A conversation's machine, built once, and how it hands over to other flows."""

    def __init__(
        self,
        name: str,
        model: type[M],
        states: Sequence[str],
        transitions: Sequence[TransitionConfigDict],
        exits: dict[str, tuple[str, str]] | None = None,
    ):
        self.name = name
        self.model = model
        self.machine = Machine(
            model=None,
            states=states,
            transitions=transitions,
            initial=states[0],
            auto_transitions=False,
        )
        self.exits = exits or {}  # state -> (flow, state): where the caller goes next

    def run(
        self, turn: Turn, state: str, data: Data, trigger: str | None = None, *args: str
    ) -> tuple[M, bool]:
        """A model at ``state`` (a registered one, else ValueError), ``trigger`` fired on it
        when it applies there."""
        # The event is fired on the model directly instead of attaching it with add_model:
        # attaching binds a method per event and state on every model (a fifth of a hop's
        # flow time) and shares the machine's model list between threads.
        model = self.model(turn, data)
        self.machine.set_state(state, model)
        event = self.machine.events.get(trigger) if trigger else None
        moved = bool(event and state in event.transitions and event.trigger(model, *args))
        return model, moved
