"""The appointment store: every change is one Lua script, every read one round trip.

Redis is passed in (``Store(redis, settings, lifecycle)``), never global. Each script validates
everything before its first write and queues the SMS it promises on the outbox stream in the
same step (see ``gateway/store/lua/``). Outcomes are returned as ``Outcome(status, value)``; the
statuses are the ones the scripts return and the flows translate into replies.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import redis
from redis.client import Pipeline

from gateway import codes
from gateway.config import Settings
from gateway.inbound import SMS, USSD
from gateway.phones import mask
from gateway.store import conversations, keys, replies
from gateway.store.conversations import (
    KEEP,
    FlowState,
    Mark,
    Sms,
    SmsTurnState,
    UssdSession,
    UssdTurnState,
)
from gateway.store.replies import Document, Raw
from gateway.store.scripts import scripts_for

if TYPE_CHECKING:  # reference.py imports this package: the edge runs one way at run time
    from gateway.store.reference import Record

MAX_BENEFICIARIES = 4
MAX_ATTEMPTS = 5
MAX_REISSUES = 3  # fresh codes a booking may get a day (CODE <ref>)
FAILURE_LIMIT = 20  # refused VERIFY/DOSE attempts a vaccinator number may make…
FAILURE_WINDOW = 3600  # …in any rolling window of this many seconds
WAITING_WINDOW = 30 * 60  # a booking verified this long ago no longer waits for DOSE alone
PROGRAMME_AGE = 18  # the youngest who may book while no session says otherwise
AGE_FRESH = 60  # seconds a process's copy of the youngest age may let someone through
LOAD_TRIES = 20  # bookings landing on sessions a load cuts, each time: give up, load again
log = logging.getLogger("tikaline.store")


@dataclass(frozen=True)
class Outcome:
    """What a store operation did: ``status`` is ``ok`` or the reason it refused."""

    status: str
    value: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def name_key(name: str) -> str:
    """How two spellings of one beneficiary's name are told to be the same person."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _as_outcome(reply: Sequence[Raw | int]) -> Outcome:
    status, value = (replies.text(x) for x in reply)
    return Outcome(status, value)


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


def _could_refuse(old: Mapping[str, str], session: Record) -> bool:
    """Whether a booking could make this upsert fail: new, or some slot loses capacity."""
    return not old or any(want < cap for _, cap, want, _ in _new_caps(old, session))


def _session_refusal(old: Mapping[str, str], session: Record) -> Outcome | None:
    """What upsert_session.lua would refuse for this stored session, checked before writing."""
    if not old:
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

    def __init__(self, client: redis.Redis, settings: Settings, lifecycle: Lifecycle):
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

    def _run(self, script: str, keys_: list[str], args: Sequence[str | int]) -> Outcome:
        return _as_outcome(self._scripts[script](keys=keys_, args=args))

    # -- citizen operations -----------------------------------------------------------------

    def book(
        self,
        *,
        mobile: str,
        name: str,
        birth_year: int,
        session_id: str,
        slot: int,
        lang: str = "en",
        now: datetime | None = None,
    ) -> Outcome:
        """Book a slot (value = ref) at ``now`` (the turn's time); a slot whose end has come
        is refused as ``passed``. Asking again for the booking this beneficiary already holds
        is a replay: status ``replay`` with the same ref, nothing written or queued."""
        now = now or self.now()
        ring = self.settings.keyring  # new codes: the current key, whose id the booking keeps
        for _ in range(5):  # a fresh reference on the (1 in 10^8) chance of a collision
            ref = codes.new_reference()
            check = codes.code_check(ring.current, ref, codes.derive_code(ring.current, ref, 0))
            outcome = self._run(
                "book",
                [
                    keys.session(session_id),
                    keys.beneficiaries(mobile),
                    keys.OUTBOX,
                    keys.SMS_COUNTS,
                    keys.appointment(ref),
                ],
                [
                    keys.template(keys.appointment),
                    ref,
                    mobile,
                    name,
                    name_key(name),
                    birth_year,
                    slot,
                    now.date().isoformat(),
                    int(now.timestamp()),
                    check,
                    lang,
                    MAX_BENEFICIARIES,
                    ",".join(self.lifecycle.OPEN_STATES),
                    f"{now:%H:%M}",
                    ",".join(self.lifecycle.COUNTED_STATES),
                    ring.current_id,
                    keys.template(keys.day),
                    keys.template(keys.centre),
                ],
            )
            if outcome.status != "ref_taken":
                return outcome
        return outcome

    def cancel(self, *, mobile: str, ref: str, lang: str = "en") -> Outcome:
        return self._run(
            "cancel",
            [keys.appointment(ref), keys.OUTBOX, keys.SMS_COUNTS],
            [
                keys.template(keys.session),
                keys.template(keys.day),
                ref,
                mobile,
                self.today(),
                self.epoch(),
                lang,
                ",".join(self.lifecycle.sources("cancel")),
            ],
        )

    def reissue(
        self, *, mobile: str, ref: str, lang: str = "en", now: datetime | None = None
    ) -> Outcome:
        """A fresh code for a booked or locked appointment (value = the new code version);
        ``limit`` after 3 in a day. Wrong codes already entered still count after it."""
        stored = self.r.hget(keys.appointment(ref), "ver")
        if stored is None:
            return Outcome("not_found")
        version = int(stored)
        ring = self.settings.keyring  # a fresh code is made with the current key
        new_code = codes.derive_code(ring.current, ref, version + 1)
        return self._run(
            "reissue",
            [keys.appointment(ref), keys.OUTBOX, keys.SMS_COUNTS],
            [
                keys.template(keys.session),
                keys.template(keys.centre),
                ref,
                mobile,
                (now or self.now()).date().isoformat(),
                version,
                codes.code_check(ring.current, ref, new_code),
                lang,
                ",".join(self.lifecycle.sources("reissue")),
                MAX_REISSUES,
                ring.current_id,
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
                keys.template(keys.session),
                keys.template(keys.day),
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
        already_recorded → value is the certificate ID."""
        now = now or self.now()
        return self._vaccinator_run(
            "dose",
            vaccinator,
            ref,
            [
                keys.template(keys.session),
                keys.template(keys.day),
                keys.template(keys.centre),
                ref,
                vaccinator,
                now.date().isoformat(),
                int(now.timestamp()),
                batch,
                codes.certificate_id(self.settings.secret_key, ref),
                FAILURE_LIMIT,
                FAILURE_WINDOW,
            ],
        )

    def _vaccinator_run(
        self, script: str, vaccinator: str, ref: str, args: Sequence[str | int]
    ) -> Outcome:
        """Run a VERIFY/DOSE script (both touch the same keys); alert in the log when a
        refusal reached the number's limit."""
        keys_ = [
            keys.appointment(ref),
            keys.vaccinator(vaccinator),
            keys.verify_failures(vaccinator),
            keys.vaccinator_waiting(vaccinator),
            keys.OUTBOX,
            keys.SMS_COUNTS,
        ]
        reply = self._scripts[script](keys=keys_, args=args)
        if len(reply) > 2:  # this refusal was the last the number may make for now
            log.warning(
                "event=vaccinator_limit from=%s failures=%d window_s=%d",
                mask(vaccinator),
                FAILURE_LIMIT,
                FAILURE_WINDOW,
            )
        return _as_outcome(reply[:2])

    def waiting(self, vaccinator: str, now: datetime | None = None) -> list[Document]:
        """Bookings this number verified in the last 30 minutes and has not dosed, oldest
        first: [{ref, name, by}]."""
        now = now or self.now()
        return replies.documents(
            self._scripts["waiting"](
                keys=[keys.vaccinator_waiting(vaccinator)],
                args=[
                    keys.template(keys.appointment),
                    vaccinator,
                    now.date().isoformat(),
                    int(now.timestamp()) - WAITING_WINDOW,
                ],
            )
        )

    # -- reads ------------------------------------------------------------------------------

    def availability(
        self, pincode: str | None = None, days: int = 7, now: datetime | None = None
    ) -> list[Document]:
        """Centres (of a pincode, or all) with sessions in the next ``days`` and open slots;
        a slot whose end has come by ``now`` (the turn's time) has none open."""
        now = now or self.now()
        first = now.date()
        last = first + timedelta(days=days - 1)
        raw = self._scripts["availability"](
            keys=[keys.pincode(pincode) if pincode else keys.CENTRES],
            args=[
                keys.template(keys.centre),
                keys.template(keys.centre_sessions),
                keys.template(keys.session),
                first.strftime("%Y%m%d"),
                last.strftime("%Y%m%d"),
                first.isoformat(),
                f"{now:%H:%M}",
            ],
        )
        centres = replies.documents(raw)
        for centre in centres:
            sessions = centre["sessions"] if isinstance(centre["sessions"], list) else []
            for s in sessions:
                s["slots"] = s["slots"] if isinstance(s["slots"], list) else []
                s["open"] = sum(max(0, slot["open"]) for slot in s["slots"])
            sessions.sort(key=lambda s: s["date"])
            centre["sessions"] = sessions
            centre["open"] = sum(s["open"] for s in sessions)
        centres.sort(key=lambda c: c["id"])
        return centres

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
        raw = self._scripts["appointment"](
            keys=[keys.appointment(ref)], args=[keys.template(keys.session)]
        )
        return self._present(ref, replies.document(raw)) if raw else None

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
        """Write checked centres, sessions and vaccinators in one MULTI/EXEC, or nothing.

        Returns the sessions refused (``moved`` to another centre or date, or capacity
        ``below_booked``; then nothing was written) and the created/updated tally. Sessions that
        are new or lose capacity are WATCHed, so a booking landing on them meanwhile starts the
        check over; the others cannot fail, so bookings elsewhere never hold a load back.
        """
        for _ in range(LOAD_TRIES - 1):
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    return self._load_once(pipe, data)
                except redis.WatchError:
                    continue
        with self.r.pipeline(transaction=True) as pipe:
            return self._load_once(pipe, data)  # a WatchError now goes to the caller

    def _load_once(
        self, pipe: Pipeline, data: Mapping[str, list[Record]]
    ) -> tuple[dict[str, Outcome], dict[str, int]]:
        stored = self._stored_sessions(s["id"] for s in data["sessions"])
        touchy = [s["id"] for s in data["sessions"] if _could_refuse(stored[s["id"]], s)]
        watched = [keys.centre(c["id"]) for c in data["centres"]] + [
            keys.session(sid) for sid in touchy
        ]
        if watched:
            pipe.watch(*watched)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        stored.update(self._stored_sessions(touchy))  # as EXEC will find them, or it fails
        refusals = {
            s["id"]: why for s in data["sessions"] if (why := _session_refusal(stored[s["id"]], s))
        }
        if refusals:
            return refusals, {}
        old_pins = self._stored_pincodes(c["id"] for c in data["centres"])
        pipe.multi()
        for centre in data["centres"]:
            self._queue_centre(pipe, centre, old_pins[centre["id"]])
        for session in data["sessions"]:
            self._queue_session(pipe, session)
        for vaccinator in data["vaccinators"]:
            self._queue_vaccinator(pipe, vaccinator)
        done = [_as_outcome(r) for r in pipe.execute() if isinstance(r, list)]
        self._youngest = None  # this process reads the new youngest age at once
        return {}, {
            "created": sum(o.value == "created" for o in done),
            "updated": sum(o.value == "updated" for o in done),
        }

    def _stored_sessions(self, ids: Iterable[str]) -> dict[str, dict[str, str]]:
        ids = list(ids)
        with self.r.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(keys.session(sid))
            return {sid: replies.fields(raw) for sid, raw in zip(ids, pipe.execute(), strict=True)}

    def _stored_pincodes(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        with self.r.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hget(keys.centre(cid), "pincode")
            return {cid: replies.text(p or b"") for cid, p in zip(ids, pipe.execute(), strict=True)}

    @staticmethod
    def _queue_centre(pipe: Pipeline, centre: Record, old_pin: str) -> None:
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

    def _queue_session(self, pipe: Pipeline, session: Record) -> None:
        slots = session["slots"]
        self._scripts["upsert_session"](
            keys=[keys.session(session["id"]), keys.centre_sessions(session["centre_id"])],
            args=[
                session["id"],
                session["centre_id"],
                session["date"],
                session["date"].replace("-", ""),
                session["vaccine"],
                "" if session.get("min_age") is None else session["min_age"],
                "" if session.get("max_age") is None else session["max_age"],
                json.dumps([s["time"] for s in slots]),
                *[s["capacity"] for s in slots],
            ],
            client=pipe,
        )
        # Kept beside the session, in the same transaction: the youngest age any session takes.
        pipe.zadd(keys.MIN_AGES, {session["id"]: session.get("min_age") or 0})

    @staticmethod
    def _queue_vaccinator(pipe: Pipeline, vaccinator: Record) -> None:
        pipe.hset(
            keys.vaccinator(vaccinator["phone"]),
            mapping={"name": vaccinator.get("name") or "", "centre_id": vaccinator["centre_id"]},
        )
        pipe.sadd(keys.VACCINATORS, vaccinator["phone"])

    def remove_vaccinator(self, phone: str) -> bool:
        """Take a number's vaccinator rights away at once; False if it had none."""
        with self.r.pipeline(transaction=True) as pipe:
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
            pipe.set(keys.inbound_claim(message_id), "1", nx=True, ex=claim_ttl)
            for key in (
                keys.inbound(message_id),
                keys.conversation(SMS, mobile),
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

    def release_claim(self, message_id: str) -> None:
        """Give up applying an inbound SMS, so the provider's retry applies it."""
        self.r.delete(keys.inbound_claim(message_id))

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
            conversation=keys.conversation(SMS, mobile),
            state=conversations.change(conversation, conversations.sms_to_stored),
            ttl=ttl,
            guard=keys.inbound(message_id),
            guard_ttl=guard_ttl,
            lang=chosen_lang or "",
            messages=replies,
        )

    def load_ussd_turn(self, session_id: str, mobile: str) -> UssdTurnState:
        """A USSD hop's state in one round trip: the session, the dropped booking, the language."""
        with self.r.pipeline(transaction=False) as pipe:
            for key in (
                keys.conversation(USSD, session_id),
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

    def ussd_session(self, session_id: str) -> UssdSession | None:
        """A USSD session as its last hop saved it."""
        return _session(replies.optional_text(self.r.get(keys.conversation(USSD, session_id))))

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
            conversation=keys.conversation(USSD, session_id),
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
                guard or keys.inbound("-"),
                conversation,
                keys.resume(mobile),
                keys.language(mobile),
                keys.OUTBOX,
                keys.SMS_COUNTS,
            ],
            args=args,
        )
        return written == 1

    def slip(self, mobile: str) -> list[Document]:
        """The slip in one round trip: each beneficiary's latest appointment, with the centre
        name, the shown state and, while open, the code (derived here, never stored)."""
        rows = replies.documents(
            self._scripts["slip"](
                keys=[keys.beneficiaries(mobile)],
                args=[
                    keys.template(keys.appointment),
                    keys.template(keys.session),
                    keys.template(keys.centre),
                ],
            )
        )
        slip = [self._present(row["ref"], row) for row in rows]
        return sorted(slip, key=lambda a: (a["date"], a["name"]))

    def centre_today(self, centre_id: str, now: datetime | None = None) -> Document:
        """Today's counts at a centre (booked, verified, vaccinated, and open places in the
        slots still to come) and its name."""
        now = now or self.now()  # one reading: the day and the hour agree
        today = now.date().isoformat()
        raw = self._scripts["centre_today"](
            keys=[
                keys.centre(centre_id),
                keys.day(centre_id, today),
                keys.centre_sessions(centre_id),
            ],
            args=[
                keys.template(keys.session),
                today.replace("-", ""),
                today,
                now.strftime("%H:%M"),
            ],
        )
        return {"date": today, **replies.document(raw)}
