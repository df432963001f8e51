"""Every Redis key TikaLine uses, named in one place, and the partition each one lives in.

Redis Cluster runs a script only when all its keys hash to one slot, and spreads slots over
masters. So the data is cut into ``PARTITIONS`` logical buckets (256 unless the environment's
``TIKALINE_PARTITIONS`` says otherwise, fixed for the life of a deployment's data): bucket
``n``'s keys carry the hash tag ``{pn}``, so each bucket is one slot and the buckets spread
over however many masters there are. A single Redis holds them all the same way; growing from
one Redis to many masters renames no key.

What lives where (``partition_of`` hashes the identifier):

- **a centre's bucket**: the centre, its sessions and their index, its day counters, its
  availability index, its vaccinators (``staff``) and their refused attempts and waiting
  bookings, the appointments made there, each session's bookings and the bucket's open
  bookings by day (``open_by_day``: centres share it). A booking reference carries its bucket in its
  digits (``codes.new_reference``), so VERIFY, DOSE, CANCEL and CODE find it without a lookup.
  A certificate ID carries the same bucket (``codes.certificate_id``): its index, written by
  the DOSE, lives beside the appointment it names.
- **a mobile's bucket**: the people booked on it (``beneficiaries``, the limit of 4 and one
  open booking each), its conversations, language, inbound replay guards, its vaccinator
  registration (which centre a number works for) and bookings in flight (``reserved``), and
  its certificate lookups (``lookups``; a web client's, by address, in that address's bucket).
- **a pincode's bucket**: the centres of that pincode.
- **every bucket**: its own outbox stream, retry set, dead letters, message records and SMS
  counters, so an SMS is queued in the same script as the change that promises it.
- **one slot each** (``{g}``): the few deployment-wide sets, read by operators, never by a
  hot path.

No script builds a key name: every key comes in KEYS (``tests/test_scripts.py`` checks it
against this module). Ephemeral keys (conversation state, replay guards, rate counters) carry
a TTL.
"""

from __future__ import annotations

import os
import zlib


def _partitions(raw: str) -> int:
    """The number of buckets: read once, as the key names depend on it."""
    if not raw.isdigit() or not 1 <= int(raw) <= 16384:
        raise ValueError(f"TIKALINE_PARTITIONS must be a whole number from 1 to 16384: {raw!r}")
    return int(raw)


PARTITIONS = _partitions(os.environ.get("TIKALINE_PARTITIONS") or "256")
GLOBAL = "tk:{g}:"


def partition_of(ident: str) -> int:
    """The bucket of a centre id, a mobile number or a pincode (stable across processes)."""
    return zlib.crc32(ident.encode()) % PARTITIONS


def ref_partition(ref: str) -> int:
    """The bucket a booking reference (or a certificate ID) was made in: its digits before
    the check digit."""
    return int(ref[:-1]) % PARTITIONS


def prefix(partition: int) -> str:
    return f"tk:{{p{partition}}}:"


def _in(ident: str) -> str:
    return prefix(partition_of(ident))


# -- a centre's bucket ----------------------------------------------------------------------


def centre(centre_id: str) -> str:
    return f"{_in(centre_id)}centre:{centre_id}"  # hash: name, district, state, pincode, …


def session(centre_id: str, session_id: str) -> str:
    return f"{_in(centre_id)}session:{session_id}"  # hash: fields + cap:<i>, booked:<i>


def centre_sessions(centre_id: str) -> str:
    return f"{_in(centre_id)}csessions:{centre_id}"  # zset of session ids scored yyyymmdd


def days(centre_id: str) -> str:
    """hash: <date>:booked|verified|vaccinated (for TODAY), <date>:walkins:<phone>"""
    return f"{_in(centre_id)}days:{centre_id}"


def open_slots(centre_id: str) -> str:
    """Availability index: hash <date> -> JSON [session with each slot's capacity, open]."""
    return f"{_in(centre_id)}open:{centre_id}"


def staff(centre_id: str) -> str:
    return f"{_in(centre_id)}staff:{centre_id}"  # hash: vaccinator phone -> name


def verify_failures(centre_id: str, phone: str) -> str:
    return f"{_in(centre_id)}vfail:{phone}"  # zset: a number's refused attempts, by time, TTL


def vaccinator_waiting(centre_id: str, phone: str) -> str:
    return f"{_in(centre_id)}vwait:{phone}"  # zset: refs this number verified, by when, TTL


def session_bookings(centre_id: str, session_id: str) -> str:
    """set: refs booked on a session and not cancelled (cancel-session finds them here)."""
    return f"{_in(centre_id)}sbook:{session_id}"


def appointment(ref: str) -> str:
    return f"{prefix(ref_partition(ref))}appt:{ref}"  # hash, see store.APPOINTMENT_FIELDS


def certificate(cert_id: str) -> str:
    """A certificate ID -> the ref of the appointment it was issued for (no TTL)."""
    return f"{prefix(ref_partition(cert_id))}cert:{cert_id}"


def no_certificate(centre_id: str) -> str:
    """A certificate index key in the centre's bucket that no certificate has: what DOSE
    declares for a reference that is not at the vaccinator's centre (it is refused unread)."""
    return f"{_in(centre_id)}cert:-"


def nowhere(centre_id: str) -> str:
    """An appointment key in the centre's bucket that no booking has (references never
    carry a letter): VERIFY of a reference that is not there reads it and finds nothing."""
    return f"{_in(centre_id)}appt:-"


def open_by_day(partition: int) -> str:
    """zset: the bucket's open bookings (refs) scored by their day, yyyymmdd: the missed
    sweep's index, kept by the scripts that open or close a booking."""
    return f"{prefix(partition)}openday"


# -- a mobile's bucket ----------------------------------------------------------------------


def beneficiaries(mobile: str) -> str:
    return f"{_in(mobile)}benef:{mobile}"  # hash: name key -> that person's latest booking


def reserved(partition: int) -> str:
    """zset: "mobile name-key" of bookings in flight, scored by when they must be settled."""
    return f"{prefix(partition)}reserved"


def language(mobile: str) -> str:
    return f"{_in(mobile)}lang:{mobile}"  # "en" or "hi"


def sms_conversation(mobile: str) -> str:
    return f"{_in(mobile)}conv:sms:{mobile}"  # flow state, TTL


def ussd_session(mobile: str, session_id: str) -> str:
    return f"{_in(mobile)}conv:ussd:{session_id}"  # flow state, TTL


def resume(mobile: str) -> str:
    return f"{_in(mobile)}conv:resume:{mobile}"  # a USSD booking dropped mid-way, TTL


def inbound(mobile: str, message_id: str) -> str:
    return f"{_in(mobile)}inbound:{message_id}"  # replay guard for an inbound SMS id, TTL


def inbound_claim(mobile: str, message_id: str) -> str:
    return f"{_in(mobile)}claim:{message_id}"  # an inbound SMS being applied now, short TTL


def vaccinator(phone: str) -> str:
    return f"{_in(phone)}vaccinator:{phone}"  # hash: name, centre_id


def lookups(who: str) -> str:
    """zset: a mobile's (or ``ip:<address>``'s) certificate lookups, by time, TTL."""
    return f"{_in(who)}lookups:{who}"


def console_inbox(phone: str) -> str:
    return f"{_in(phone)}console:{phone}"  # list: JSON entries the console provider "sent", TTL


# -- a pincode's bucket ---------------------------------------------------------------------


def pincode(pin: str) -> str:
    return f"{_in(pin)}pincode:{pin}"  # set of centre ids


# -- every bucket: the outbox ---------------------------------------------------------------

OUTBOX_GROUP = "senders"


def outbox(partition: int) -> str:
    return f"{prefix(partition)}outbox"  # stream: every SMS promised, see gateway.outbox


def dead(partition: int) -> str:
    return f"{prefix(partition)}dead"  # stream: messages that finally failed


def retry(partition: int) -> str:
    return f"{prefix(partition)}retry"  # zset: message key scored by when to retry (epoch ms)


def message(partition: int, message_key: str) -> str:
    return f"{prefix(partition)}msg:{message_key}"  # hash: delivery status of one SMS


def sms_counts(partition: int) -> str:
    return f"{prefix(partition)}smscounts"  # hash: queued, sent, delivered, failed, dead


def provider_message(provider_id: str) -> str:
    return f"{_in(provider_id)}pmid:{provider_id}"  # provider messageId -> "<bucket> <key>"


# -- deployment-wide, one slot each ---------------------------------------------------------

CENTRES = f"{GLOBAL}centres"  # set of centre ids (operators, first run)
VACCINATORS = f"{GLOBAL}vaccinators"  # set of phones (operators, simulator)
SESSION_CENTRES = f"{GLOBAL}sessions"  # hash: session id -> centre id (load-data's checks)
MIN_AGES = f"{GLOBAL}minages"  # zset: session id scored by its minimum age (0: none)
SEND_RATE = f"{GLOBAL}sendrate"  # hash: the fleet's token bucket for OUTBOX_RATE
SIMULATOR_LOGIN_FAILURES = f"{GLOBAL}simlogin:failures"  # counter, TTL: the login's window
