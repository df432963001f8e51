"""Every Redis key TikaLine uses, named in one place.

Why one hash tag, ``{tk}``, for all of them:

A booking must, in one atomic step, check a session's capacity, check the mobile's
beneficiary limit (4) and the beneficiary's one open booking, write the appointment, and
queue the confirmation SMS on the outbox stream. A mobile may book at any centre, so no
partition (by centre, district or mobile) keeps a session and a mobile together for every
pair; and the outbox must sit beside both. Redis Cluster runs a script only when all its keys
hash to one slot, so every key that a script touches carries the same tag. The scripts also
build a few keys from stored values (an appointment's session, a beneficiary's appointment),
as BullMQ does, from templates this module hands them (``template``); they stay in the
slot because they carry the tag too.

The trade is that one cluster slot, hence one Redis core, carries every write (the bench
measures how many bookings a second that is, against a national drive's peak). If that ever
stops being enough, the next step is a tag per state ``{tk:DL}``
with mobiles registered per state; this module is the only place that would change.

Ephemeral keys (conversation state, replay guards, rate counters) carry a TTL.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

TAG = "{tk}"
PREFIX = f"tk:{TAG}:"


@cache
def template(build: Callable[..., str]) -> str:
    """``build``'s key with ``%s`` for each part, handed to a script that must build that key
    from a stored value (``string.format``), so that no key name is spelled in Lua."""
    return build(*["%s"] * build.__code__.co_argcount)


def centre(centre_id: str) -> str:
    return f"{PREFIX}centre:{centre_id}"


CENTRES = f"{PREFIX}centres"  # set of centre ids


def pincode(pin: str) -> str:
    return f"{PREFIX}pincode:{pin}"  # set of centre ids


def session(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"  # hash: fields + cap:<i>, booked:<i>


MIN_AGES = f"{PREFIX}minages"  # zset: session id scored by its minimum age (0: none)


def centre_sessions(centre_id: str) -> str:
    return f"{PREFIX}csessions:{centre_id}"  # zset of session ids scored yyyymmdd


def vaccinator(phone: str) -> str:
    return f"{PREFIX}vaccinator:{phone}"  # hash: name, centre_id


VACCINATORS = f"{PREFIX}vaccinators"  # set of phones


def beneficiaries(mobile: str) -> str:
    return f"{PREFIX}benef:{mobile}"  # hash: normalised name -> that beneficiary's latest ref


def appointment(ref: str) -> str:
    return f"{PREFIX}appt:{ref}"  # hash, see store.APPOINTMENT_FIELDS


def day(centre_id: str, date: str) -> str:
    return f"{PREFIX}day:{centre_id}:{date}"  # hash: booked, verified, vaccinated


def verify_failures(phone: str) -> str:
    return f"{PREFIX}vfail:{phone}"  # zset: a vaccinator number's refused attempts, by time, TTL


def vaccinator_waiting(phone: str) -> str:
    return f"{PREFIX}vwait:{phone}"  # zset: refs this number verified, scored by when, TTL


def language(mobile: str) -> str:
    return f"{PREFIX}lang:{mobile}"  # "en" or "hi"


def conversation(channel: str, ident: str) -> str:
    return f"{PREFIX}conv:{channel}:{ident}"  # flow state, TTL


def resume(mobile: str) -> str:
    return conversation("resume", mobile)  # a USSD booking dropped mid-way, TTL


def inbound(message_id: str) -> str:
    return f"{PREFIX}inbound:{message_id}"  # replay guard for an inbound SMS id, TTL


def inbound_claim(message_id: str) -> str:
    return f"{PREFIX}claim:{message_id}"  # an inbound SMS being applied right now, short TTL


OUTBOX = f"{PREFIX}outbox"  # stream: every SMS promised, see gateway.outbox
OUTBOX_GROUP = "senders"
DEAD = f"{PREFIX}dead"  # stream: messages that finally failed
RETRY = f"{PREFIX}retry"  # zset: message key scored by when to try it again (epoch ms)


def message(message_key: str) -> str:
    return f"{PREFIX}msg:{message_key}"  # hash: delivery status of one outbound SMS


def provider_message(provider_id: str) -> str:
    return f"{PREFIX}pmid:{provider_id}"  # provider messageId -> our message key


def console_inbox(phone: str) -> str:
    return f"{PREFIX}console:{phone}"  # list: JSON entries the console provider "sent", TTL


SMS_COUNTS = f"{PREFIX}smscounts"  # hash: queued, sent, delivered, failed, dead


SIMULATOR_LOGIN_FAILURES = f"{PREFIX}simlogin:failures"  # counter, TTL: the login's window
