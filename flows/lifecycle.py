"""The appointment lifecycle, declared as data and built once.

::

                  verify (code ok)            record_dose
      booked ──────────────────────► verified ───────────► vaccinated
       │  ▲ │                           │
       │  │ └── 5 wrong codes ──► locked │
       │  └──── reissue (new code) ◄─┘  │
       │                                │
       ├──── cancel, centre_cancel ────►├──► cancelled   (booked, verified, locked)
       └──── day over (miss) ──────────►└──► missed      (booked, verified, locked)

A booking the centre cancelled (cancel-session) is ``cancelled`` with ``cancelled_by =
centre``. ``miss`` fires from the outbox worker's sweep once the booked day is over in
``TIMEZONE`` (and from the store when a booking meets such a record first).

Only the state name is stored (field ``state`` of the appointment hash). The Lua scripts
that change appointments are handed the source states of their trigger from this machine,
so the rules live here and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transitions import Machine

if TYPE_CHECKING:  # the library declares its config types in its stubs only
    from transitions.core import TransitionConfigDict

STATES = ["booked", "verified", "vaccinated", "cancelled", "locked", "missed"]

TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "verify", "source": ["booked", "verified"], "dest": "verified"},
    {"trigger": "fail_code", "source": ["booked", "verified"], "dest": "="},
    {"trigger": "lock", "source": ["booked", "verified"], "dest": "locked"},
    {"trigger": "reissue", "source": ["booked", "locked"], "dest": "booked"},
    {"trigger": "record_dose", "source": "verified", "dest": "vaccinated"},
    {"trigger": "cancel", "source": ["booked", "verified", "locked"], "dest": "cancelled"},
    # The centre cancels a whole session (cancel-session): the same state, with the field
    # cancelled_by = centre, so every reader of "cancelled" treats both alike.
    {"trigger": "centre_cancel", "source": ["booked", "verified", "locked"], "dest": "cancelled"},
    {"trigger": "miss", "source": ["booked", "verified", "locked"], "dest": "missed"},
    # The centre moves a session's bookings to another day (cancel-session --to-date): a
    # verified booking must be verified again on its new day; a locked one stays locked.
    {"trigger": "reschedule", "source": ["booked", "verified"], "dest": "booked"},
    {"trigger": "reschedule", "source": "locked", "dest": "locked"},
]

MACHINE = Machine(
    model=None, states=STATES, transitions=TRANSITIONS, initial="booked", auto_transitions=False
)


def sources(trigger: str) -> list[str]:
    """The states from which ``trigger`` may fire."""
    return sorted(MACHINE.events[trigger].transitions)


def can(trigger: str, state: str) -> bool:
    return state in MACHINE.events[trigger].transitions


# "Open" bookings hold a slot and a beneficiary's one open booking: those that can still be missed.
OPEN_STATES = sources("miss")
# A person holds one of a mobile's places while their booking is open or after their dose;
# a cancelled or missed booking frees it.
COUNTED_STATES = OPEN_STATES + ["vaccinated"]


def shown_state(state: str, date: str, today: str) -> str:
    """The state a person should see: an open booking whose day is over was missed."""
    return "missed" if state in OPEN_STATES and date < today else state
