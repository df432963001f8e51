"""Booking a vaccination, one machine for both channels (USSD menu 1, SMS ``BOOK [pincode]``).

::

    name → birth_year → pincode → centre (⟲ 9 more) → date → slot → confirm → booked
                      └── BOOK <pincode> with open centres ──┘          ├──→ stopped
                                                                        └──→ refused

Centres are those with open capacity in the next 7 days for the beneficiary's age. An answer
moves on when its guards accept it (rows tried in order); when none does, the same screen
comes back with the hint the failing guard left. ``0`` (USSD) goes back one screen.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flows import lifecycle, words
from flows.base import Conversation, Data, Flow, Hint, Recipe, Turn, recipe, with_hint
from flows.messages.sms import graphemes
from gateway.store import MAX_BENEFICIARIES, Outcome, name_key

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = [
    "name",
    "birth_year",
    "pincode",
    "centre",
    "date",
    "slot",
    "confirm",
    "booked",
    "stopped",
    "refused",
    "menu",
]
FINAL = ("booked", "stopped", "refused")

TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "answer", "source": "name", "dest": "birth_year", "conditions": "valid_name"},
    {
        "trigger": "answer",
        "source": "birth_year",
        "dest": "centre",
        "conditions": ["valid_birth_year", "pincode_given", "centres_open"],
    },
    {
        "trigger": "answer",
        "source": "birth_year",
        "dest": "pincode",
        "conditions": "valid_birth_year",
    },
    {
        "trigger": "answer",
        "source": "pincode",
        "dest": "centre",
        "conditions": ["valid_pincode", "centres_open"],
    },
    {
        "trigger": "answer",
        "source": ["centre", "date", "slot"],
        "dest": "=",
        "conditions": "wants_more",
        "after": "next_page",
    },
    {"trigger": "answer", "source": "centre", "dest": "date", "conditions": "picked_centre"},
    {"trigger": "answer", "source": "date", "dest": "slot", "conditions": "picked_date"},
    {"trigger": "answer", "source": "slot", "dest": "confirm", "conditions": "picked_slot"},
    {"trigger": "answer", "source": "confirm", "dest": "stopped", "conditions": "said_no"},
    {
        "trigger": "answer",
        "source": "confirm",
        "dest": "booked",
        "conditions": ["said_yes", "booking_made"],
    },
    {"trigger": "answer", "source": "confirm", "dest": "slot", "conditions": "slot_taken"},
    {"trigger": "answer", "source": "confirm", "dest": "date", "conditions": "day_taken"},
    {"trigger": "answer", "source": "confirm", "dest": "centre", "conditions": "centre_taken"},
    {"trigger": "answer", "source": "confirm", "dest": "pincode", "conditions": "all_taken"},
    {"trigger": "answer", "source": "confirm", "dest": "refused", "conditions": "booking_refused"},
    {"trigger": "back", "source": "name", "dest": "menu"},
    {"trigger": "back", "source": "birth_year", "dest": "name"},
    {"trigger": "back", "source": "pincode", "dest": "birth_year"},
    {
        "trigger": "back",
        "source": ["centre", "date", "slot"],
        "dest": "=",
        "conditions": "on_later_page",
        "after": "previous_page",
    },
    {"trigger": "back", "source": "centre", "dest": "pincode"},
    {"trigger": "back", "source": "date", "dest": "centre", "after": "first_page"},
    {"trigger": "back", "source": "slot", "dest": "date", "after": "first_page"},
    {"trigger": "back", "source": "confirm", "dest": "slot", "after": "first_page"},
]

# What a refusal of the store means to the person booking.
REFUSALS = {
    "already_booked": "already_booked",
    "too_many": "too_many",
    "too_young": "age",
    "too_old": "age",
    "past": "gone",
    "no_session": "gone",
    "no_slot": "gone",
}
# A refusal that sends the caller back to the other slots of the day, with this hint.
SLOT_LOST = {"full": "hint.slot_full", "passed": "hint.slot_passed"}
FRESH = 60  # seconds a kept list of dates and slots is shown without reading it again
OLDEST = 120


def age_fits(session: dict[str, Any], birth_year: int) -> bool:
    """Whether someone born in ``birth_year`` is in a session's age range (in its year)."""
    age = int(session["date"][:4]) - birth_year
    low, high = session.get("min_age") or "", session.get("max_age") or ""
    return (low == "" or age >= int(low)) and (high == "" or age <= int(high))


def _open_slots(session: dict[str, Any]) -> list[list[Any]]:
    return [[i, slot["time"]] for i, slot in enumerate(session["slots"]) if slot["open"] > 0]


class Booking(Conversation):
    """One booking conversation; ``data`` holds the answers so far."""

    _centres: list[dict[str, Any]] | None = None
    outcome: Outcome | None = None  # what the store said to the booking, once it was asked

    # -- reads (at most one per turn) -------------------------------------------------------

    def centres(self) -> list[dict[str, Any]]:
        """Centres near the pincode with open slots in the next 7 days for this age."""
        if self._centres is None:
            found = []
            for centre in self.turn.store.availability(self.data["pin"], now=self.turn.now):
                sessions = [
                    s for s in centre["sessions"] if s["open"] > 0 and age_fits(s, self.data["by"])
                ]
                if sessions:
                    found.append({**centre, "sessions": sessions})
            self._centres = found
        return self._centres

    def _centre(self, centre_id: str) -> dict[str, Any] | None:
        return next((c for c in self.centres() if c["id"] == centre_id), None)

    def _keep_dates(self, centre: dict[str, Any] | None) -> None:
        # Each date's open slots are kept with it, so the date and slot screens need no read
        # of their own for a minute; the book script checks the slot again, atomically.
        sessions = centre["sessions"] if centre else []
        self.data.update(
            at=self.turn.epoch, dates=[[s["id"], s["date"], _open_slots(s)] for s in sessions]
        )

    def _refresh(self) -> None:
        """Read the kept dates and slots again once they are over a minute old (or were kept
        before a resume, or by a release that kept no time)."""
        if self.turn.epoch - self.data.get("at", 0) <= FRESH:
            return
        self._keep_dates(self._centre(self.data["cid"]))
        if self.data.get("sid"):
            date_ = next((d for d in self.data["dates"] if d[0] == self.data["sid"]), None)
            self.data["slots"] = date_[2] if date_ else []

    # -- guards -----------------------------------------------------------------------------

    def valid_name(self, text: str) -> bool:
        """Guard: a name of 2 to 30 letters, of someone this mobile may book for; kept."""
        name = words.person_name(text)
        if not name:
            return self.refuse("hint.name")
        # Said now rather than after six questions; the store checks again when booking.
        slip = self.turn.store.slip(self.turn.mobile)
        same = [a for a in slip if name_key(a["name"]) == name_key(name)]
        held = [a for a in same if a["shown_state"] in lifecycle.OPEN_STATES]
        if held:
            return self.refuse("hint.already_booked", name=held[0]["name"], ref=held[0]["ref"])
        holders = [a["name"] for a in slip if a["shown_state"] in lifecycle.COUNTED_STATES]
        if name_key(name) not in map(name_key, holders) and len(holders) >= MAX_BENEFICIARIES:
            self.hint = self._who_can_be_booked(holders)
            return False
        self.data["name"] = name
        return True

    def _who_can_be_booked(self, holders: list[str]) -> Hint:
        """The refusal naming the people who hold this mobile's places, shortened to fit."""
        firsts = [n.split()[0] for n in holders]
        tries = [holders, firsts] + [["".join(graphemes(n)[:k]) for n in firsts] for k in (8, 5, 3)]
        for names in tries:
            hint: Hint = ("hint.too_many", {"most": MAX_BENEFICIARIES, "names": ", ".join(names)})
            if self.turn.fits(with_hint(self.screen_name(), hint, self.turn.channel)):
                break
        return hint

    def valid_birth_year(self, text: str) -> bool:
        """Guard: a 4-digit year within the last 120, of someone some session takes; kept."""
        year = words.number(text, 4)
        this_year = self.turn.now.year
        if year and int(year) > this_year:
            return self.refuse("hint.birth_year_future", year=year)
        if not year or int(year) < this_year - OLDEST:
            return self.refuse("hint.birth_year")
        # Ages are counted in years, as the sessions' limits are: 18 during this year.
        # Said at once when no session takes someone this young, not as "no open slots" later.
        youngest = self.turn.store.too_young(this_year - int(year))
        if youngest is not None:
            return self.refuse("hint.too_young", most=youngest, latest=this_year - youngest)
        self.data["by"] = int(year)
        return True

    def pincode_given(self, *_: object) -> bool:
        """Guard: the pincode came with BOOK."""
        return bool(self.data.get("pin"))

    def valid_pincode(self, text: str) -> bool:
        """Guard: a 6-digit pincode; kept."""
        pin = words.number(text, 6)
        if not pin or pin.startswith("0"):
            return self.refuse("hint.pincode")
        self.data["pin"] = pin
        return True

    def centres_open(self, *_: object) -> bool:
        """Guard: some centre near the pincode has an open slot for this age."""
        if not self.centres():
            return self.refuse("hint.no_centres", pin=self.data["pin"])
        self.first_page()
        return True

    def picked_centre(self, text: str) -> bool:
        """Guard: a centre of the page shown, still open; its dates kept."""
        picked = words.choice(text, len(self.data.get("opts", [])))
        if not picked:
            return self.refuse("hint.choose")
        centre = self._centre(self.data["opts"][picked - 1])
        if not centre:
            return self.refuse("hint.centre_full")
        self.data.update(cid=centre["id"], cname=centre["name"])
        self._keep_dates(centre)
        self.first_page()
        return True

    def picked_date(self, text: str) -> bool:
        """Guard: a date of the page shown, still open; its slots kept."""
        picked = words.choice(text, len(self.data.get("opts", [])))
        if not picked:
            return self.refuse("hint.choose")
        session_id = self.data["opts"][picked - 1]
        self._refresh()
        date_ = next((d for d in self.data["dates"] if d[0] == session_id), None)
        # A slot taken since is refused by the book script, and the slot screen comes back.
        if not date_ or not date_[2]:
            self.first_page()
            return self.refuse("hint.date_gone")
        self.data.update(sid=session_id, date=date_[1], slots=date_[2])
        self.first_page()
        return True

    def picked_slot(self, text: str) -> bool:
        """Guard: a slot of the page shown, still open; kept."""
        picked = words.choice(text, len(self.data.get("opts", [])))
        if not picked:
            return self.refuse("hint.choose")
        slot = self.data["opts"][picked - 1]
        self._refresh()
        times = dict(self.data["slots"])
        if slot not in times:
            self.first_page()
            return self.refuse("hint.slot_gone")
        self.data.update(slot=slot, time=times[slot])
        return True

    def said_yes(self, text: str) -> bool:
        """Guard: the answer is yes (1)."""
        return words.yes(text)

    def said_no(self, text: str) -> bool:
        """Guard: the answer is no (2)."""
        return words.no(text)

    def booking_made(self, *_: object) -> bool:
        """Guard with the one write: the store books the slot (and queues the code SMS)."""
        self.outcome = outcome = self.turn.store.book(
            mobile=self.turn.mobile,
            name=self.data["name"],
            birth_year=self.data["by"],
            centre_id=self.data["cid"],
            session_id=self.data["sid"],
            slot=self.data["slot"],
            lang=self.turn.lang,
            now=self.turn.now,
        )
        # A replay is this very booking asked for again (a repeat racing the first: a person
        # asking anew was told at the name question), so it is shown as booked.
        if outcome.status in ("ok", "replay"):
            self.data["ref"] = outcome.value
            self.turn.stored = True
            return True
        return False

    def _found_full(self) -> Outcome | None:
        """The store's outcome when it found the slot full, or its end come, else None."""
        # A slot whose end came while confirming is lost as surely as one that filled.
        outcome = self.outcome
        return outcome if outcome is not None and outcome.status in SLOT_LOST else None

    def slot_taken(self, *_: object) -> bool:
        """Guard: the store found the slot full, or its end come; the day's slots still open."""
        lost = self._found_full()
        if lost is None:
            return False
        still_open = json.loads(lost.value or "[]")
        self.data["slots"] = still_open if isinstance(still_open, list) else []
        if not self.data["slots"]:
            return False
        self.hint = (SLOT_LOST[lost.status], {})
        self.first_page()
        return True

    def day_taken(self, *_: object) -> bool:
        """Guard: that day is full now; the centre's other days, with a hint."""
        lost = self._found_full()
        if lost is None:
            return False
        self.data["dates"] = [d for d in self.data["dates"] if d[0] != self.data["sid"]]
        if not self.data["dates"]:
            return False
        self.hint = ("hint.date_full" if lost.status == "full" else "hint.date_gone", {})
        self.first_page()
        return True

    def centre_taken(self, *_: object) -> bool:
        """Guard: that centre is full now; the centres still open near the pincode."""
        if not self._found_full() or not self.centres():
            return False
        self.hint = ("hint.centre_full", {})
        self.first_page()
        return True

    def all_taken(self, *_: object) -> bool:
        """Guard: nothing is open near the pincode any more; ask for another."""
        if not self._found_full():
            return False
        self.hint = ("hint.no_centres", {"pin": self.data["pin"]})
        return True

    def booking_refused(self, *_: object) -> bool:
        """Guard: the store refused for another reason; the reason kept."""
        outcome = self.outcome
        if outcome is None:
            return self.refuse(self.turn.key("hint.confirm"))
        self.data["why"] = REFUSALS.get(outcome.status, "error")
        self.data["ref"] = outcome.value if self.data["why"] == "already_booked" else ""
        return True

    # -- screens ----------------------------------------------------------------------------

    def _show(self, screen: str, end: bool = False, **params: Any) -> Recipe:
        return recipe(self.turn.key(f"book.{screen}"), end, **params)

    def screen_name(self) -> Recipe:
        return self._show("name")

    def screen_birth_year(self) -> Recipe:
        return self._show("birth_year", name=self.data["name"])

    def screen_pincode(self) -> Recipe:
        return self._show("pincode", name=self.data["name"])

    def screen_centre(self) -> Recipe:
        items = [(c["id"], c["name"]) for c in self.centres()]
        if not items:  # every centre filled up since the list was shown
            self.hint = ("hint.no_centres", {"pin": self.data["pin"]})
            return self._show("pincode", name=self.data["name"])
        return self.page(
            items,
            lambda lines, more: self._show(
                "centre", pin=self.data["pin"], items=lines, more=more and "\n" + more
            ),
        )

    def screen_date(self) -> Recipe:
        self._refresh()
        items = [(date_[0], self.turn.day(date_[1])) for date_ in self.data["dates"]]
        return self.page(
            items,
            lambda lines, more: self._show(
                "date", centre=self.data["cname"], items=lines, more=more and "\n" + more
            ),
        )

    def screen_slot(self) -> Recipe:
        self._refresh()
        params = {"centre": self.data["cname"], "day": self.turn.day(self.data["date"])}
        if not self.data["slots"]:
            return self._show("slot_none", **params)
        return self.page(
            [tuple(slot) for slot in self.data["slots"]],
            lambda lines, more: self._show(
                "slot", items=lines, more=more and "\n" + more, **params
            ),
        )

    def screen_confirm(self) -> Recipe:
        return self._show(
            "confirm",
            name=self.data["name"],
            by=self.data["by"],
            centre=self.data["cname"],
            day=self.turn.day(self.data["date"]),
            time=self.data["time"],
        )

    def screen_booked(self) -> Recipe | None:
        if self.turn.channel != "ussd":
            return None  # the confirmation SMS queued with the booking is the reply
        return self._show("booked", end=True, name=self.data["name"], ref=self.data["ref"])

    def screen_stopped(self) -> Recipe:
        return self._show("stopped", end=True)

    def screen_refused(self) -> Recipe:
        return recipe(
            f"book.refused.{self.data['why']}",
            True,
            name=self.data["name"],
            ref=self.data.get("ref") or "",
        )

    def screen_menu(self) -> Recipe | None:
        return None  # handed over to the menu


FLOW = Flow("booking", Booking, STATES, TRANSITIONS, exits={"menu": ("menu", "main")})


def is_over(state: str) -> bool:
    """Whether a booking at ``state`` has ended: booked, stopped or refused."""
    return state in FINAL


def resumable(state: str) -> bool:
    """Whether a booking dropped at ``state`` is offered on the next dial: once it has a name
    and until it is over."""
    return not is_over(state) and state != "name"


def resumed(data: Data) -> Data:
    """A dropped booking's data, taken up again: its kept dates and slots are read anew."""
    return {k: v for k, v in data.items() if k != "at"}


def start(turn: Turn, pincode_text: str = "") -> tuple[Booking, Data]:
    """A new booking at its first question; ``BOOK <pincode>`` remembers the pincode."""
    data: Data = {}
    hint: Hint | None = None
    if pincode_text:
        pin = words.number("".join(t for t in words.tokens(pincode_text) if t.isdigit()), 6)
        if pin and not pin.startswith("0"):
            data["pin"] = pin
        else:
            hint = ("hint.pincode_later", {})
    model, _ = FLOW.run(turn, "name", data)
    model.hint = hint
    return model, data
