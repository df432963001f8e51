"""Unit layer: each flow's decisions that need no Redis: which ref a vaccinator typed, who may
book at which session, which answer a guard takes or refuses (and with which hint), paging,
the order of the slip. A turn here has a clock but no store: a decision that reads one is a
journey."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows import booking, status, vaccinator
from flows.base import Turn, with_hint
from flows.booking import Booking
from flows.cancel import Cancel
from flows.menu import Menu
from flows.status import Status

REF = "1234567890"  # 123456789 and its Verhoeff check digit, 0


class _NoStore:
    """Only the clock a turn reads when it starts: a guard that reached for the store's data
    would fail loudly, so what passes here is decided without Redis."""

    @staticmethod
    def now() -> datetime:
        return datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _turn(channel: str = "ussd", lang: str = "en") -> Turn:
    """A turn whose store holds nothing but the time."""
    return Turn(store=_NoStore(), mobile="+919811111111", channel=channel, lang=lang)


# -- the vaccinator's reference ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rest, ref, after",
    [
        (f"{REF} 4321", REF, "4321"),
        ("12345 67890 4321", REF, "4321"),
        ("12345-67890-4321", REF, "4321"),
        (f"{REF}4321", REF, "4321"),  # ref and code without a space
        ("१२३४५ ६७८९० ४३२१", REF, "४३२१"),  # Devanagari digits read as digits
        (REF, REF, ""),
        # In fours: 10000006 passes the check by chance, the whole ten digits are meant.
        ("1000 0006 14 4321", "1000000614", "4321"),
        ("1234567891 4321", None, "1234567891 4321"),  # a typo its check digit catches
        ("", None, ""),
    ],
)
def test_the_reference_a_vaccinator_typed_is_found_however_it_was_grouped(rest, ref, after):
    assert vaccinator.split_reference(rest) == (ref, after)


def test_one_open_place_is_said_in_the_singular():
    assert vaccinator._places(1)["t"] == "vacc.open_one"
    assert vaccinator._places(5) == {"t": "vacc.open", "p": {"n": 5}}


def test_dose_alone_with_several_waiting_lists_some_and_counts_the_rest():
    waiting = [{"ref": str(i), "name": f"P{i}"} for i in range(5)]
    reply = vaccinator.Vaccinator._choose(waiting, 3)
    assert reply["t"] == "vacc.choose" and reply["p"]["n"] == 5
    assert [item["p"]["name"] for item in reply["p"]["items"]] == ["P0", "P1", "P2"]
    assert reply["p"]["more"] == {"t": "vacc.and_more", "p": {"n": 2}}
    assert vaccinator.Vaccinator._choose(waiting[:3], 3)["p"]["more"] == ""


# -- booking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "low, high, birth_year, fits",
    [
        ("18", "", 2008, True),  # 18 during the session's year
        ("18", "", 2009, False),
        ("", "44", 1982, True),
        ("", "44", 1981, False),
        ("", "", 1906, True),
        ("45", "60", 1966, True),
    ],
)
def test_a_session_takes_the_ages_it_names(low, high, birth_year, fits):
    session = {"date": "2026-12-02", "min_age": low, "max_age": high}
    assert booking.age_fits(session, birth_year) is fits


def test_only_slots_with_places_are_offered():
    session = {"slots": [{"time": "09:00", "open": 0}, {"time": "10:00", "open": 3}]}
    assert booking._open_slots(session) == [[1, "10:00"]]


@pytest.mark.parametrize(
    "state, over, offered",
    [
        ("name", False, False),  # nothing worth taking up again yet
        ("birth_year", False, True),
        ("confirm", False, True),
        ("booked", True, False),
        ("stopped", True, False),
        ("refused", True, False),
    ],
)
def test_a_dropped_booking_is_offered_again_once_it_has_a_name(state, over, offered):
    assert booking.is_over(state) is over and booking.resumable(state) is offered


def test_a_resumed_booking_reads_its_dates_and_slots_anew():
    kept = {"name": "Asha Devi", "by": 1990, "at": 1700000000, "dates": []}
    assert booking.resumed(kept) == {"name": "Asha Devi", "by": 1990, "dates": []}


@pytest.mark.parametrize(
    "typed, hint",
    [
        ("2027", ("hint.birth_year_future", {"year": "2027"})),
        ("1900", ("hint.birth_year", {})),  # more than 120 years ago
        ("90", ("hint.birth_year", {})),
        ("nineteen ninety", ("hint.birth_year", {})),
    ],
)
def test_a_birth_year_that_cannot_be_is_refused_with_its_own_hint(typed, hint):
    model = Booking(_turn(), {})
    assert model.valid_birth_year(typed) is False and model.hint == hint
    assert "by" not in model.data


@pytest.mark.parametrize("typed", ["110017", "११००१७", " 110 017 "])
def test_a_pincode_is_kept(typed):
    model = Booking(_turn(), {})
    assert model.valid_pincode(typed) and model.data["pin"] == "110017"


@pytest.mark.parametrize("typed", ["011001", "11001", "abcdef"])
def test_a_pincode_that_cannot_be_is_refused(typed):
    model = Booking(_turn(), {})
    assert not model.valid_pincode(typed) and model.hint == ("hint.pincode", {})


@pytest.mark.parametrize(
    "typed, yes, no", [("1", True, False), ("haan", True, False), ("2", False, True)]
)
def test_confirming_takes_yes_and_no_in_either_language(typed, yes, no):
    model = Booking(_turn(), {})
    assert model.said_yes(typed) is yes and model.said_no(typed) is no


# -- menu, paging, status, cancel -----------------------------------------------------------


@pytest.mark.parametrize(
    "typed, chosen",
    [("1", "book"), ("2", "appointments"), ("3", "cancel"), ("4", "language"), ("5", "help")],
)
def test_each_menu_number_leads_to_its_own_place(typed, chosen):
    menu = Menu(_turn(), {})
    guards = ("book", "appointments", "cancel", "language", "help")
    assert [g for g in guards if getattr(menu, f"chose_{g}")(typed)] == [chosen]


def test_continuing_a_dropped_booking_needs_one_to_continue():
    assert not Menu(_turn(), {}).chose_continue("1")
    assert Menu(_turn(), {"pointer": {"f": "booking"}}).chose_continue("1")


@pytest.mark.parametrize("typed, lang", [("1", "en"), ("2", "hi"), ("२", "hi")])
def test_a_language_picked_from_the_list_switches_the_replies_now(typed, lang):
    turn = _turn()
    assert Menu(turn, {}).picked_language(typed) and turn.lang == turn.new_lang == lang


def test_a_language_not_on_the_list_is_refused():
    menu = Menu(_turn(), {})
    assert not menu.picked_language("3") and menu.hint == ("hint.choose", {})


def test_more_and_back_walk_the_pages_of_a_list():
    model = Cancel(_turn(), {"page": 0, "opts": ["a", "b", "c"], "more": True})
    assert model.wants_more("9") and model.wants_more("more")
    model.next_page()
    assert model.data["page"] == 3 and model.on_later_page()
    model.previous_page()
    assert model.data["page"] == 0 and not model.on_later_page()
    assert not Cancel(_turn(), {"more": False}).wants_more("9")  # the last page has no more


@pytest.mark.parametrize(
    "data, typed, moves, hint",
    [
        ({"i": 0, "n": 2}, "1", True, None),
        ({"i": 1, "n": 2}, "1", False, ("hint.back", {})),  # the last: only back is shown
        ({"i": 0, "n": 2}, "7", False, ("hint.next_back", {})),
    ],
)
def test_the_slip_moves_on_only_while_a_next_booking_exists(data, typed, moves, hint):
    model = Status(_turn(), dict(data))
    assert model.wants_next(typed) is moves and model.hint == hint


def test_the_slip_shows_bookings_to_go_to_first_then_doses_then_the_rest():
    slip = [
        {"shown_state": "cancelled", "date": "2026-11-01", "name": "C"},
        {"shown_state": "vaccinated", "date": "2026-11-02", "name": "V"},
        {"shown_state": "booked", "date": "2026-12-05", "name": "B2"},
        {"shown_state": "missed", "date": "2026-10-01", "name": "M"},
        {"shown_state": "booked", "date": "2026-12-03", "name": "B1"},
    ]
    assert [a["name"] for a in status.in_order(slip)] == ["B1", "B2", "V", "M", "C"]


@pytest.mark.parametrize("typed", ["0", "4", "x"])
def test_a_booking_not_on_the_page_is_refused_before_anything_is_read(typed):
    model = Cancel(_turn(), {"opts": ["1", "2", "3"]})
    assert not model.picked_booking(typed) and model.hint == ("hint.choose", {})


def test_a_refused_answer_puts_its_hint_above_the_same_screen():
    screen = {"t": "ussd.menu", "p": {}, "e": False}
    hinted = with_hint(screen, ("hint.choose", {}), "ussd")
    assert hinted["t"] == "ussd.hinted" and hinted["p"]["body"] == {"t": "ussd.menu", "p": {}}
    assert hinted["p"]["hint"] == {"t": "hint.choose", "p": {}}
    assert with_hint(screen, None, "ussd") is screen
