"""The appointment store: every change is one Lua script, every read one round trip.

Redis is passed in (``Store(redis, settings, lifecycle)``), never global. Each script validates
everything before its first write and queues the SMS it promises on the outbox stream in the
same step (see ``gateway/store/lua/``). Outcomes are returned as ``Outcome(status, value)``; the
statuses are the ones the scripts return and the flows translate into replies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import redis
from redis.client import Pipeline
from redis.cluster import ClusterPipeline

from gateway import codes
from gateway.config import Settings
from gateway.phones import mask
from gateway.store import booking, closing, conversations, keys, replies
from gateway.store.booking import MAX_BENEFICIARIES as MAX_BENEFICIARIES
from gateway.store.closing import Closing
from gateway.store.conversations import (
    KEEP,
    FlowState,
    Mark,
    Sms,
    SmsTurnState,
    UssdSession,
    UssdTurnState,
)
from gateway.store.people import name_key as name_key
from gateway.store.redisconn import Client, at_master_of
from gateway.store.replies import Document, Raw
from gateway.store.scripts import scripts_for

if TYPE_CHECKING:  # reference.py imports this package: the edge runs one way at run time
    from gateway.store.reference import Record

MAX_ATTEMPTS = 5
MAX_REISSUES = 3  # fresh codes a booking may get a day (CODE <ref>)
FAILURE_LIMIT = 20  # refused VERIFY/DOSE attempts a vaccinator number may make…
FAILURE_WINDOW = 3600  # …in any rolling window of this many seconds
CERT_IDS = 2  # candidate certificate IDs a dose may take (see dose.lua)
WAITING_WINDOW = 30 * 60  # a booking verified this long ago no longer waits for DOSE alone
PROGRAMME_AGE = 18  # the youngest who may book while no session says otherwise
AGE_FRESH = 60  # seconds a process's copy of the youngest age may let someone through
log = logging.getLogger("tikaline.store")
Pipe = Pipeline | ClusterPipeline


@dataclass(frozen=True)
class Outcome:
    """What a store operation did: ``status`` is ``ok`` or the reason it refused."""

    status: str
    value: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _as_outcome(reply: Sequence[Raw | int]) -> Outcome:
    status, value = (replies.text(x) for x in reply)
    return Outcome(status, value)


def _queue_centre_week(pipe: Pipe, centre_id: str, dates: list[str]) -> None:
    """A centre's details and its availability index for ``dates``: two replies."""
    pipe.hmget(keys.centre(centre_id), ["name", "district", "pincode", "address"])
    pipe.hmget(keys.open_slots(centre_id), dates)


def slot_over(date: str, time: str, now: datetime) -> bool:
    """Whether a slot ('HH:MM-HH:MM') on ``date`` can no longer be booked at ``now``: as
    slot_over in common.lua."""
    today = now.date().isoformat()
    if date != today:
        return date < today
    ends = time.rpartition("-")[2]
    return len(ends) == 5 and ends <= f"{now:%H:%M}"


def _open_session(entry: Document, date: str, now: datetime) -> Document:
    """An availability index entry (see reindex in common.lua) as the flows read it."""
    slots = [
        {"time": time, "capacity": cap, "open": 0 if slot_over(date, time, now) else max(0, free)}
        for time, cap, free in entry["slots"]
    ]
    return {
        "id": entry["id"],
        "date": date,
        "vaccine": entry["vaccine"],
        "min_age": entry["min_age"],
        "max_age": entry["max_age"],
        "slots": slots,
        "open": sum(slot["open"] for slot in slots),
    }


def _queue_session_and_centre(pipe: Pipe, centre_id: str, session_id: str) -> None:
    """What an appointment shares with its session and centre: two replies."""
    pipe.hmget(keys.session(centre_id, session_id), ["slots", "vaccine"])
    pipe.hget(keys.centre(centre_id), "name")


def _document(appt: Mapping[str, str], session: list[Raw | None], name: Raw | None) -> Document:
    """An appointment as the flows read it: the slot's time and the vaccine live once in the
    session, the dose is stored only when not the first; the code check left out."""
    slots, vaccine = session
    times = json.loads(slots) if slots else []
    slot = int(appt.get("slot") or 0)
    doc: Document = {k: v for k, v in appt.items() if k != "check"}
    doc.setdefault("time", times[slot] if slot < len(times) else "")
    doc.setdefault("vaccine", replies.text(vaccine or b""))
    doc.setdefault("dose", "1")
    doc["centre_name"] = replies.text(name) if name else appt["centre"]
    return doc


def _session(text: str | None) -> UssdSession | None:
    stored = conversations.loads(text)
    return conversations.session_from_stored(stored) if stored else None


def _new_caps(old: Mapping[str, str], session: Record) -> Iterator[tuple[int, int, int, int]]:
    """(slot, capacity stored, capacity wanted, booked) for each slot already stored."""
    caps = [s["capacity"] for s in session["slots"]]
    i = 0
    while f"cap:{i}" in old:
        yield (
            i,
            int(old[f"cap:{i}"]),
            caps[i] if i < len(caps) else 0,
            int(old.get(f"booked:{i}") or 0),
        )
        i += 1


def _session_refusal(old: Mapping[str, str], session: Record) -> Outcome | None:
    """What upsert_session.lua would refuse for this stored session, checked before writing."""
    if not old or old.get("cancelled_at"):  # called off: loading leaves it as it is
        return None
    if (old.get("centre_id"), old.get("date")) != (session["centre_id"], session["date"]):
        return Outcome("moved", f"{old.get('centre_id')} {old.get('date')}")
    for i, _, want, booked in _new_caps(old, session):
        if want < booked:
            return Outcome("below_booked", f"{i}:{booked}")
    return None


class Lifecycle(Protocol):
    """The appointment rules the scripts are handed, e.g. the module ``flows.lifecycle``: the
    store applies them atomically but does not decide them, so it imports no flow."""

    OPEN_STATES: list[str]
    COUNTED_STATES: list[str]

    def sources(self, trigger: str) -> list[str]: ...

    def shown_state(self, state: str, date: str, today: str) -> str: ...


class Store:
    """Appointments, reference data and the outbox in one Redis."""

    def __init__(self, client: Client, settings: Settings, lifecycle: Lifecycle):
        self.r = client
        self.settings = settings
        self.lifecycle = lifecycle
        self._scripts = scripts_for(client)
        self._youngest: tuple[int, float] | None = None  # (age, when read) of the sessions

    # -- time -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The time in ``TIMEZONE`` by the settings' clock; a turn reads it once."""
        return datetime.fromtimestamp(self.settings.clock(), self.settings.tz)

    def epoch(self) -> int:
        """Timestamps at rest are epoch seconds: a third of the bytes of an ISO string."""
        return int(self.now().timestamp())

    def today(self) -> str:
        return self.now().date().isoformat()

    def _run(
        self, script: str, keys_: list[str], args: Sequence[str | int], durable: bool = False
    ) -> Outcome:
        return _as_outcome(self._call(script, keys_, args, durable))

    def _call(
        self, script: str, keys_: list[str], args: Sequence[str | int], durable: bool = False
    ) -> Any:
        """Run a script; ``durable``: answer once ``REDIS_WAIT_REPLICAS`` replicas have its
        write (WAIT on the same connection, so it waits for this write), or the wait ran
        out: then the answer still goes (the master has the write) and the log says so."""
        wanted = self.settings.redis_wait_replicas
        if not durable or wanted <= 0:
            return self._scripts[script](keys=keys_, args=args)

        def run_and_wait(master: redis.Redis) -> list[Any]:
            with master.pipeline(transaction=False) as pipe:
                self._scripts[script](keys=keys_, args=args, client=pipe)
                pipe.wait(wanted, self.settings.redis_wait_ms)
                return pipe.execute()

        # The script's master, followed to its successor after a failover.
        reply, acked = at_master_of(self.r, keys_[0], run_and_wait)
        if int(acked) < wanted:
            log.warning(
                "event=replicas_lagging script=%s replicas=%d wanted=%d timeout_ms=%d: "
                "answered; a failover now could lose this write",
                script,
                int(acked),
                wanted,
                self.settings.redis_wait_ms,
            )
        return reply

    # -- citizen operations -----------------------------------------------------------------

    def book(
        self,
        *,
        mobile: str,
        name: str,
        birth_year: int,
        session_id: str,
        centre_id: str | None = None,
        slot: int,
        lang: str = "en",
        now: datetime | None = None,
    ) -> Outcome:
        """Book a slot (value = ref) at ``now`` (the turn's time); a slot whose end has come
        is refused as ``passed``. Asking again for the booking this beneficiary already holds
        is a replay: status ``replay`` with the same ref, nothing written or queued.

        Two buckets take part (see ``booking``): the mobile's holds the person's place
        (``reserve``), the centre's takes the slot and queues the code SMS (``book.lua``),
        then the mobile's records the outcome (``confirm``). Without ``centre_id`` (an
        operator's or a test's call) the session's centre is looked up."""
        if centre_id is None:
            found = self.r.hget(keys.SESSION_CENTRES, session_id)
            if found is None:
                return Outcome("no_session")
            centre_id = replies.text(found)
        return booking.book(
            self,
            booking.Request(
                mobile=mobile,
                name=name,
                name_key=name_key(name),
                birth_year=birth_year,
                centre_id=centre_id,
                session_id=session_id,
                slot=slot,
                lang=lang,
            ),
            now or self.now(),
        )

    def settle(self, limit: int = 100) -> int:
        """Settle bookings a crash left in flight past their time; how many were settled."""
        return booking.settle_due(self.r, self.epoch(), limit)

    def _appointment_fields(self, ref: str, *fields: str) -> list[str | None]:
        """Fields of an appointment, read before a script whose keys depend on them."""
        raw = self.r.hmget(keys.appointment(ref), list(fields))
        return [replies.optional_text(v) for v in raw]

    def cancel(self, *, mobile: str, ref: str, lang: str = "en") -> Outcome:
        sid, centre_id, name = self._appointment_fields(ref, "sid", "centre", "name")
        if not sid or not centre_id:
            return Outcome("not_found")
        outcome = self._run(
            "cancel",
            [
                keys.appointment(ref),
                keys.session(centre_id, sid),
                keys.days(centre_id),
                keys.open_slots(centre_id),
                keys.outbox(keys.ref_partition(ref)),
                keys.sms_counts(keys.ref_partition(ref)),
                keys.open_by_day(keys.ref_partition(ref)),
                keys.session_bookings(centre_id, sid),
            ],
            [
                ref,
                mobile,
                self.today(),
                self.epoch(),
                lang,
                ",".join(self.lifecycle.sources("cancel")),
                sid,
            ],
        )
        if outcome.ok:
            self.sync_person(mobile, outcome.value, ref, "cancelled")
        return Outcome(outcome.status, ref if outcome.ok else outcome.value)

    def cancel_session(self, session_id: str, reason: str, to_date: str | None = None) -> Closing:
        """The centre calls off a session: nobody books it again, its open bookings are
        cancelled (or, with ``to_date``, moved to that day's session where they fit), each
        person told once with ``reason`` (see ``closing``)."""
        return closing.close_session(self, session_id, reason, to_date, self.now())

    def sync_person(self, mobile: str, name: str, ref: str, state: str) -> None:
        """Bring the person's record on their mobile in line with their appointment."""
        self._scripts["person"](
            keys=[keys.beneficiaries(mobile)], args=[name_key(name), ref, state]
        )

    def reissue(
        self, *, mobile: str, ref: str, lang: str = "en", now: datetime | None = None
    ) -> Outcome:
        """A fresh code for a booked or locked appointment (value = the new code version);
        ``limit`` after 3 in a day. Wrong codes already entered still count after it."""
        stored, sid, centre_id = self._appointment_fields(ref, "ver", "sid", "centre")
        if stored is None or not sid or not centre_id:
            return Outcome("not_found")
        version = int(stored)
        ring = self.settings.keyring  # a fresh code is made with the current key
        new_code = codes.derive_code(ring.current, ref, version + 1)
        return self._run(
            "reissue",
            [
                keys.appointment(ref),
                keys.session(centre_id, sid),
                keys.centre(centre_id),
                keys.outbox(keys.ref_partition(ref)),
                keys.sms_counts(keys.ref_partition(ref)),
            ],
            [
                ref,
                mobile,
                (now or self.now()).date().isoformat(),
                version,
                codes.code_check(ring.current, ref, new_code),
                lang,
                ",".join(self.lifecycle.sources("reissue")),
                MAX_REISSUES,
                ring.current_id,
                sid,
            ],
        )

    # -- vaccinator operations --------------------------------------------------------------

    def verify(
        self, *, vaccinator: str, ref: str, code: str, now: datetime | None = None
    ) -> Outcome:
        """Check a code at ``now``; ok → value is JSON {name, by, dose, time}; wrong_code →
        attempts left; blocked → seconds until the number may try again."""
        now = now or self.now()
        return self._vaccinator_run(
            "verify",
            vaccinator,
            ref,
            [
                ref,
                vaccinator,
                self.settings.keyring.checks(ref, code),
                now.date().isoformat(),
                int(now.timestamp()),
                MAX_ATTEMPTS,
                FAILURE_LIMIT,
                ",".join(self.lifecycle.sources("verify")),
                ",".join(self.lifecycle.sources("lock")),
                WAITING_WINDOW,
                FAILURE_WINDOW,
            ],
        )

    def record_dose(
        self, *, vaccinator: str, ref: str, batch: str = "", now: datetime | None = None
    ) -> Outcome:
        """Record the dose after VERIFY; ok → value is JSON {name, by, cert};
        already_recorded → value is the certificate ID (the one the first DOSE gave)."""
        now = now or self.now()
        outcome = self._vaccinator_run(
            "dose",
            vaccinator,
            ref,
            [
                ref,
                vaccinator,
                now.date().isoformat(),
                int(now.timestamp()),
                batch,
                ",".join(self.certificate_candidates(ref)),
                FAILURE_LIMIT,
                FAILURE_WINDOW,
            ],
        )
        if outcome.ok:
            dosed = replies.document(outcome.value)
            self.sync_person(str(dosed.pop("mobile")), str(dosed["name"]), ref, "vaccinated")
            return Outcome("ok", json.dumps(dosed))
        return outcome

    def certificate_candidates(self, ref: str) -> list[str]:
        """The IDs a dose of ``ref`` may get, in the ref's bucket: the first unless another
        certificate already holds it (see dose.lua)."""
        where = (keys.ref_partition(ref), keys.PARTITIONS)
        secret = self.settings.secret_key
        return [codes.certificate_id(secret, ref, *where, attempt=i) for i in range(CERT_IDS)]

    def _vaccinator_run(
        self, script: str, vaccinator: str, ref: str, args: Sequence[str | int]
    ) -> Outcome:
        """Run a VERIFY/DOSE script in the vaccinator's centre's bucket (both touch the same
        keys); alert in the log when a refusal reached the number's limit."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hget(keys.vaccinator(vaccinator), "centre_id")
            pipe.hmget(keys.appointment(ref), ["sid", "centre"])
            centre, (sid, at) = pipe.execute()
        if centre is None:
            return Outcome("not_vaccinator")
        centre_id = replies.text(centre)
        here = at is not None and replies.text(at) == centre_id
        extra = self._dose_keys(centre_id, ref, here) if script == "dose" else []
        reply = self._call(
            script,
            [
                keys.appointment(ref) if here else keys.nowhere(centre_id),
                keys.session(centre_id, replies.text(sid) if here and sid else "-"),
                keys.staff(centre_id),
                keys.verify_failures(centre_id, vaccinator),
                keys.vaccinator_waiting(centre_id, vaccinator),
                keys.days(centre_id),
                keys.outbox(keys.partition_of(centre_id)),
                keys.sms_counts(keys.partition_of(centre_id)),
                *extra,
            ],
            [*args, centre_id, "1" if at is not None and not here else "0"],
            durable=True,
        )
        if len(reply) > 2:  # this refusal was the last the number may make for now
            log.warning(
                "event=vaccinator_limit from=%s failures=%d window_s=%d",
                mask(vaccinator),
                FAILURE_LIMIT,
                FAILURE_WINDOW,
            )
        return _as_outcome(reply[:2])

    def _dose_keys(self, centre_id: str, ref: str, here: bool) -> list[str]:
        """The keys DOSE needs besides VERIFY's: the centre, the bucket's open bookings by day
        and the candidate certificates' index (a key no certificate has when the ref is not at
        this centre: refused unread)."""
        first = [keys.centre(centre_id), keys.open_by_day(keys.partition_of(centre_id))]
        if not here:
            return first + [keys.no_certificate(centre_id)] * CERT_IDS
        return first + [keys.certificate(c) for c in self.certificate_candidates(ref)]

    def waiting(self, vaccinator: str, now: datetime | None = None) -> list[Document]:
        """Bookings this number verified in the last 30 minutes and has not dosed, oldest
        first: [{ref, name, by}]."""
        now = now or self.now()
        centre = self.r.hget(keys.vaccinator(vaccinator), "centre_id")
        if centre is None:
            return []
        since = int(now.timestamp()) - WAITING_WINDOW
        wait_key = keys.vaccinator_waiting(replies.text(centre), vaccinator)
        refs = replies.members(self.r.zrangebyscore(wait_key, since, "+inf"))
        fields = ["state", "verified_by", "verified_on", "name", "by"]
        found = self._each(refs, lambda pipe, ref: pipe.hmget(keys.appointment(ref), fields))
        today = now.date().isoformat()
        return [
            {"ref": ref, "name": a[3], "by": a[4]}
            for ref, raw in zip(refs, found, strict=True)
            if (a := [replies.optional_text(x) for x in raw])[:3] == ["verified", vaccinator, today]
        ]

    def walk_in(
        self,
        *,
        vaccinator: str,
        centre_id: str,
        mobile: str,
        name: str,
        birth_year: int,
        session_id: str,
        slot: int,
        lang: str,
        now: datetime,
    ) -> Outcome:
        """Book a walk-in as ``book`` books anyone (value = ref), counted against the
        vaccinator number's walk-ins of the day: ``limit`` once ``WALKIN_DAILY_LIMIT`` of them
        are made (value = the limit), ``not_vaccinator`` for a number off the centre's staff.
        A booking refused, or already there (``replay``), hands its count back."""
        taken = self._count_walk_in("take", vaccinator, centre_id, now)
        if not taken.ok:
            return taken
        try:
            outcome = self.book(
                mobile=mobile,
                name=name,
                birth_year=birth_year,
                session_id=session_id,
                centre_id=centre_id,
                slot=slot,
                lang=lang,
                now=now,
            )
        except Exception:
            self._count_walk_in("give", vaccinator, centre_id, now)
            raise
        if not outcome.ok:
            self._count_walk_in("give", vaccinator, centre_id, now)
        return outcome

    def _count_walk_in(self, mode: str, vaccinator: str, centre_id: str, now: datetime) -> Outcome:
        return self._run(
            "walkin",
            [keys.days(centre_id), keys.staff(centre_id)],
            [
                mode,
                f"{now.date().isoformat()}:walkins:{vaccinator}",
                vaccinator,
                self.settings.walkin_daily_limit,
            ],
        )

    def _each(self, items: Sequence[str], queue: Callable[[Pipe, str], object]) -> list[Any]:
        """One pipelined read per item (on a cluster, one round trip per master)."""
        if not items:
            return []
        with self.r.pipeline(transaction=False) as pipe:
            for item in items:
                queue(pipe, item)
            return list(pipe.execute())

    # -- reads ------------------------------------------------------------------------------

    def availability(
        self, pincode: str, days: int = 7, now: datetime | None = None
    ) -> list[Document]:
        """Centres of a pincode with their sessions in the next ``days`` and open slots, from
        each centre's availability index (two round trips, whatever the number of centres
        elsewhere); a slot whose end has come by ``now`` (the turn's time) has none open."""
        now = now or self.now()
        dates = [(now.date() + timedelta(days=i)).isoformat() for i in range(days)]
        ids = sorted(replies.text(c) for c in self.r.smembers(keys.pincode(pincode)))
        found = self._each(ids, lambda pipe, cid: _queue_centre_week(pipe, cid, dates))
        centres = []
        for cid, (info, week) in zip(ids, zip(found[::2], found[1::2], strict=True), strict=True):
            sessions = [
                _open_session(entry, date, now)
                for date, raw in zip(dates, week, strict=True)
                if raw
                for entry in json.loads(raw)
            ]
            names = ("name", "district", "pincode", "address")
            centre: Document = {"id": cid}
            centre.update(zip(names, (replies.text(v or b"") for v in info), strict=True))
            centre["sessions"] = sessions
            centre["open"] = sum(s["open"] for s in sessions)
            centres.append(centre)
        return centres

    def open_today(self, centre_id: str, now: datetime) -> list[Document]:
        """A centre's sessions of ``now``'s day from its availability index (one round trip),
        each slot with its open places, none once its end has come."""
        today = now.date().isoformat()
        index = self.r.hget(keys.open_slots(centre_id), today)
        return [_open_session(entry, today, now) for entry in json.loads(index or "[]")]

    def language(self, mobile: str) -> str | None:
        """The language a mobile chose (LANG HI/EN, the USSD menu), if it chose one."""
        return replies.optional_text(self.r.get(keys.language(mobile)))

    def too_young(self, age: int) -> int | None:
        """The lowest minimum age of the loaded sessions when ``age`` is below it, else None."""
        # The age question is on every booking: a copy under a minute old lets people through
        # without a round trip. A refusal always reads Redis, so sessions just loaded for
        # younger people are never refused from an old copy; someone let through by one is
        # still held to each session's own range in the centre list and the book script.
        kept = self._youngest
        if kept and self.settings.clock() - kept[1] < AGE_FRESH and age >= kept[0]:
            return None
        youngest = self._read_youngest()
        return youngest if age < youngest else None

    def _read_youngest(self) -> int:
        lowest = self.r.zrange(keys.MIN_AGES, 0, 0, withscores=True)
        youngest = int(lowest[0][1]) if lowest else PROGRAMME_AGE
        self._youngest = (youngest, self.settings.clock())
        return youngest

    def appointment(self, ref: str) -> Document | None:
        """One appointment with its session's time and vaccine (without its code check)."""
        appt = replies.fields(self.r.hgetall(keys.appointment(ref)))
        if appt.get("state", "void") == "void":
            return None
        return self._present(ref, self._filled([appt])[0])

    def certificate(self, cert_id: str) -> Document | None:
        """The vaccinated appointment a certificate ID was issued for (with its vaccine and
        centre's name), or None: no such certificate."""
        ref = replies.optional_text(self.r.get(keys.certificate(cert_id)))
        appt = self.appointment(ref) if ref else None
        if not appt or appt["state"] != "vaccinated" or appt.get("cert") != cert_id:
            return None
        return appt

    def take_lookup(self, who: str, limit: int, window: int, now: datetime) -> int:
        """Count one certificate lookup by ``who`` (a mobile, or ``ip:<address>``): 0 while
        fewer than ``limit`` fell in the last ``window`` seconds, else the seconds to wait
        (and it is not counted)."""
        wait: int = self._scripts["lookup"](
            keys=[keys.lookups(who)], args=[int(now.timestamp()), window, limit]
        )
        return int(wait)

    def _filled(self, appts: list[dict[str, str]]) -> list[Document]:
        """Appointments with their session's time and vaccine and their centre's name, read
        in one pipelined round trip; the code check left out."""
        with self.r.pipeline(transaction=False) as pipe:
            for a in appts:
                _queue_session_and_centre(pipe, a["centre"], a["sid"])
            found = pipe.execute()
        return [
            _document(a, session, name)
            for a, session, name in zip(appts, found[::2], found[1::2], strict=True)
        ]

    def _present(self, ref: str, appt: Document) -> Document:
        appt["ref"] = ref
        appt["shown_state"] = self.lifecycle.shown_state(appt["state"], appt["date"], self.today())
        if appt["shown_state"] in ("booked", "verified"):
            appt["code"] = self.settings.keyring.code(ref, int(appt["ver"]), appt.get("k"))
        return appt

    def beneficiaries(self, mobile: str) -> list[Document]:
        """This mobile's beneficiaries (name, birth year) from their latest appointments."""
        return [
            {"name": a["name"], "birth_year": int(a["by"]), "ref": a["ref"]}
            for a in self.slip(mobile)
        ]

    def centre_names(self, centre_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(centre_ids)
        if not ids:
            return {}
        with self.r.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hget(keys.centre(cid), "name")
            names = pipe.execute()
        return {cid: replies.text(n) if n else cid for cid, n in zip(ids, names, strict=True)}

    def vaccinator(self, phone: str) -> dict[str, str] | None:
        raw = replies.fields(self.r.hgetall(keys.vaccinator(phone)))
        return raw or None

    # -- reference data (operators) ---------------------------------------------------------

    def centre_ids(self) -> set[str]:
        return {replies.text(c) for c in self.r.smembers(keys.CENTRES)}

    def load_reference(
        self, data: Mapping[str, list[Record]]
    ) -> tuple[dict[str, Outcome], dict[str, int]]:
        """Write checked centres, sessions and vaccinators; returns the sessions refused
        (``moved`` to another centre or date, or capacity ``below_booked``) and the
        created/updated tally.

        Every session is checked before anything is written: a refusal found then writes
        nothing. Each session is then written by one script that checks again (a booking may
        land meanwhile); on a cluster the data spans buckets, so no single transaction holds
        it all: a session refused at that point is reported and the rest is written, and
        loading the file again after fixing it finishes the job (a load is idempotent).
        """
        sessions = data["sessions"]
        stored = self._stored_sessions(sessions)
        refusals = {s["id"]: why for s in sessions if (why := _session_refusal(stored[s["id"]], s))}
        if refusals:
            return refusals, {}
        self._write_centres_and_staff(data)
        done = {s["id"]: self._upsert_session(s) for s in sessions}
        self._youngest = None  # this process reads the new youngest age at once
        refusals = {sid: o for sid, o in done.items() if not o.ok}
        return refusals, {
            "created": sum(o.value == "created" for o in done.values()),
            "updated": sum(o.value == "updated" for o in done.values()),
        }

    def _stored_sessions(self, sessions: Sequence[Record]) -> dict[str, dict[str, str]]:
        """Each session as stored (empty when new); one stored at another centre as
        ``{centre_id, date}`` of where it is."""
        ids = [s["id"] for s in sessions]
        placed = self.r.hmget(keys.SESSION_CENTRES, ids) if ids else []
        where = {
            sid: replies.text(c) if c else s["centre_id"]
            for sid, c, s in zip(ids, placed, sessions, strict=True)
        }
        found = self._each(ids, lambda pipe, sid: pipe.hgetall(keys.session(where[sid], sid)))
        return {sid: replies.fields(raw) for sid, raw in zip(ids, found, strict=True)}

    def _write_centres_and_staff(self, data: Mapping[str, list[Record]]) -> None:
        centre_ids = [c["id"] for c in data["centres"]]
        phones = [v["phone"] for v in data["vaccinators"]]
        old_pins = self._each(centre_ids, lambda pipe, cid: pipe.hget(keys.centre(cid), "pincode"))
        old_posts = self._each(phones, lambda pipe, p: pipe.hget(keys.vaccinator(p), "centre_id"))
        with self.r.pipeline(transaction=False) as pipe:
            for centre, old_pin in zip(data["centres"], old_pins, strict=True):
                self._queue_centre(pipe, centre, replies.text(old_pin or b""))
            for vaccinator, old in zip(data["vaccinators"], old_posts, strict=True):
                self._queue_vaccinator(pipe, vaccinator, replies.optional_text(old))
            pipe.execute()

    @staticmethod
    def _queue_centre(pipe: Pipe, centre: Record, old_pin: str) -> None:
        key = keys.centre(centre["id"])
        pipe.hset(
            key,
            mapping={
                k: centre.get(k) or ""
                for k in ("id", "name", "district", "state", "pincode", "address")
            },
        )
        pipe.sadd(keys.CENTRES, centre["id"])
        if old_pin and old_pin != centre["pincode"]:
            pipe.srem(keys.pincode(old_pin), centre["id"])
        pipe.sadd(keys.pincode(centre["pincode"]), centre["id"])

    def _upsert_session(self, session: Record) -> Outcome:
        slots = session["slots"]
        centre_id = session["centre_id"]
        outcome = self._run(
            "upsert_session",
            [
                keys.session(centre_id, session["id"]),
                keys.centre_sessions(centre_id),
                keys.open_slots(centre_id),
            ],
            [
                session["id"],
                centre_id,
                session["date"],
                session["date"].replace("-", ""),
                session["vaccine"],
                "" if session.get("min_age") is None else session["min_age"],
                "" if session.get("max_age") is None else session["max_age"],
                json.dumps([s["time"] for s in slots]),
                *[s["capacity"] for s in slots],
            ],
        )
        if outcome.ok:  # where it is, for the next load's check; the youngest age it takes
            with self.r.pipeline(transaction=False) as pipe:
                pipe.hset(keys.SESSION_CENTRES, session["id"], centre_id)
                pipe.zadd(keys.MIN_AGES, {session["id"]: session.get("min_age") or 0})
                pipe.execute()
        return outcome

    @staticmethod
    def _queue_vaccinator(pipe: Pipe, vaccinator: Record, old_centre: str | None) -> None:
        phone, centre_id = vaccinator["phone"], vaccinator["centre_id"]
        name = vaccinator.get("name") or ""
        if old_centre and old_centre != centre_id:
            pipe.hdel(keys.staff(old_centre), phone)
        pipe.hset(keys.staff(centre_id), phone, name)  # what VERIFY and DOSE check
        pipe.hset(keys.vaccinator(phone), mapping={"name": name, "centre_id": centre_id})
        pipe.sadd(keys.VACCINATORS, phone)

    def remove_vaccinator(self, phone: str) -> bool:
        """Take a number's vaccinator rights away at once; False if it had none."""
        centre = self.r.hget(keys.vaccinator(phone), "centre_id")
        if centre is not None:  # the centre's staff first: that is what VERIFY and DOSE check
            self.r.hdel(keys.staff(replies.text(centre)), phone)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.delete(keys.vaccinator(phone))
            pipe.srem(keys.VACCINATORS, phone)
            removed, _ = pipe.execute()
        return bool(removed)

    def is_empty(self) -> bool:
        return self.r.scard(keys.CENTRES) == 0

    # -- conversations (flows/): one read, one commit per turn -------------------------------

    def load_sms_turn(self, message_id: str, mobile: str, claim_ttl: int) -> SmsTurnState:
        """An SMS turn's state in one round trip; claims the message id for ``claim_ttl`` s."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.set(keys.inbound_claim(mobile, message_id), "1", nx=True, ex=claim_ttl)
            for key in (
                keys.inbound(mobile, message_id),
                keys.sms_conversation(mobile),
                keys.language(mobile),
            ):
                pipe.get(key)
            pipe.hgetall(keys.vaccinator(mobile))
            claimed, guard, conv, lang, vaccinator = pipe.execute()
        stored = conversations.loads(replies.optional_text(conv))
        return SmsTurnState(
            replay=guard is not None,
            claimed=bool(claimed),
            conversation=conversations.flow_from_stored(stored) if stored else None,
            vaccinator=replies.fields(vaccinator) or None,
            lang=replies.optional_text(lang),
        )

    def release_claim(self, message_id: str, mobile: str) -> None:
        """Give up applying an inbound SMS, so the provider's retry applies it."""
        self.r.delete(keys.inbound_claim(mobile, message_id))

    def save_sms_turn(
        self,
        *,
        message_id: str,
        mobile: str,
        conversation: FlowState | Mark,
        ttl: int,
        guard_ttl: int,
        chosen_lang: str | None = None,
        replies: Sequence[Sms] = (),
    ) -> bool:
        """Write an SMS turn atomically with its replay guard; False when it was a replay."""
        return self._commit_turn(
            mobile=mobile,
            conversation=keys.sms_conversation(mobile),
            state=conversations.change(conversation, conversations.sms_to_stored),
            ttl=ttl,
            guard=keys.inbound(mobile, message_id),
            guard_ttl=guard_ttl,
            lang=chosen_lang or "",
            messages=replies,
        )

    def load_ussd_turn(self, session_id: str, mobile: str) -> UssdTurnState:
        """A USSD hop's state in one round trip: the session, the dropped booking, the language."""
        with self.r.pipeline(transaction=False) as pipe:
            for key in (
                keys.ussd_session(mobile, session_id),
                keys.resume(mobile),
                keys.language(mobile),
            ):
                pipe.get(key)
            session, resume, lang = (replies.optional_text(v) for v in pipe.execute())
        pointer = conversations.loads(resume)
        return UssdTurnState(
            session=_session(session),
            resume=conversations.flow_from_stored(pointer) if pointer else None,
            lang=lang,
        )

    def ussd_session(self, session_id: str, mobile: str) -> UssdSession | None:
        """A USSD session as its last hop saved it."""
        return _session(replies.optional_text(self.r.get(keys.ussd_session(mobile, session_id))))

    def save_ussd_turn(
        self,
        *,
        session_id: str,
        mobile: str,
        session: UssdSession | Mark,
        ttl: int = 0,
        expect_rev: int | None = None,
        resume: FlowState | Mark = KEEP,
        resume_ttl: int = 0,
        chosen_lang: str | None = None,
    ) -> bool:
        """Write a hop atomically; False when the session moved past ``expect_rev`` first."""
        return self._commit_turn(
            mobile=mobile,
            conversation=keys.ussd_session(mobile, session_id),
            state=conversations.change(session, conversations.session_to_stored),
            ttl=ttl,
            expect_rev=expect_rev,
            pointer=conversations.change(resume, conversations.pointer_to_stored),
            pointer_ttl=resume_ttl,
            lang=chosen_lang or "",
        )

    def _commit_turn(
        self,
        *,
        mobile: str,
        conversation: str,
        state: str,
        ttl: int,
        guard: str = "",
        guard_ttl: int = 0,
        expect_rev: int | None = None,
        pointer: str = "=",
        pointer_ttl: int = 0,
        lang: str = "",
        messages: Sequence[Sms] = (),
    ) -> bool:
        """Write a turn atomically (see converse.lua); False when a replay or a race lost."""
        args: list[str | int] = [
            guard_ttl if guard else 0,
            "" if expect_rev is None else expect_rev,
            state,
            ttl,
            pointer,
            pointer_ttl,
            lang,
        ]
        for m in messages:
            args += [m.key, mobile, m.template, m.lang, conversations.dumps(m.params)]
        written: int = self._scripts["converse"](
            keys=[
                guard or keys.inbound(mobile, "-"),
                conversation,
                keys.resume(mobile),
                keys.language(mobile),
                keys.outbox(keys.partition_of(mobile)),
                keys.sms_counts(keys.partition_of(mobile)),
            ],
            args=args,
        )
        return written == 1

    def slip(self, mobile: str) -> list[Document]:
        """The slip in two round trips: each beneficiary's latest appointment, with the centre
        name, the shown state and, while open, the code (derived here, never stored)."""
        records = [json.loads(raw) for raw in self.r.hvals(keys.beneficiaries(mobile))]
        with self.r.pipeline(transaction=False) as pipe:
            for rec in records:  # the person's record names the appointment's session
                pipe.hgetall(keys.appointment(rec["r"]))
                _queue_session_and_centre(pipe, rec["c"], rec["sid"])
            found = pipe.execute()
        slip = [
            self._present(str(rec["r"]), _document({"ref": rec["r"], **fields}, session, name))
            for rec, raw, session, name in zip(
                records, found[::3], found[1::3], found[2::3], strict=True
            )
            if (fields := replies.fields(raw)).get("state", "void") != "void"
        ]
        return sorted(slip, key=lambda a: (a["date"], a["name"]))

    def centre_today(self, centre_id: str, now: datetime | None = None) -> Document:
        """Today's counts at a centre (booked, verified, vaccinated, and open places in the
        slots still to come) and its name, in one round trip."""
        now = now or self.now()  # one reading: the day and the hour agree
        today = now.date().isoformat()
        counted = ("booked", "verified", "vaccinated")
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hget(keys.centre(centre_id), "name")
            pipe.hmget(keys.days(centre_id), [f"{today}:{c}" for c in counted])
            pipe.hget(keys.open_slots(centre_id), today)
            name, counts, index = pipe.execute()
        sessions = [_open_session(e, today, now) for e in json.loads(index or "[]")]
        return {
            "date": today,
            "name": replies.text(name or b""),
            **{c: int(n or 0) for c, n in zip(counted, counts, strict=True)},
            "open": sum(s["open"] for s in sessions),
        }
