"""The outbox worker: delivers every queued SMS at least once, and never twice when avoidable.

The store's Lua scripts append each promised SMS to the ``keys.OUTBOX`` stream (fields ``k``
message key, ``to``, ``t`` template, ``l`` language, ``p`` JSON params). This worker reads it
through the consumer group ``keys.OUTBOX_GROUP``, renders the text at send time (codes are
derived, never stored) and hands it to the provider. Per message it keeps a status hash
``keys.message(k)``: queued → sent → delivered | failed, or dead.

- **A small status hash.** It holds status, attempts, timestamps, provider id, last error and
  the delivery report, never the text's fields (phone, template, language, params): those
  stay on the stream entry, and are copied into the hash only while a retry or a dead letter
  needs them, then dropped once the message is sent. Every field and value stays within
  ``hash-max-listpack-value`` (64 bytes), so a sent message's hash is a compact listpack
  (about 260 B) kept for 30 days, not a hashtable of about 1,060 B.

- **Exactly-once where it can be known.** Before a send, a message whose status is already
  ``sent`` (or later) is acknowledged without sending. After a send, the provider's message id,
  the status and the acknowledgement are written by one script, so a crash either happens
  before the send was recorded (the entry is reclaimed and sent again: the only duplicate
  left, and it carries the same text) or after it (nothing is resent).
- **Few round trips.** Reading a batch and starting each entry (status check, attempt count)
  is one script, and the sends that finish while one record is being written are recorded
  together by the next one (a group commit, with no timer). Per SMS that is 2 round trips at
  concurrency 1 and 1 or fewer at 8 and more, down from 3 and 2.2-2.6: Redis calls were near
  half of a worker process's CPU once the HTTP client was lean.
- **Crashes.** Entries a dead worker left pending are taken over with ``XAUTOCLAIM`` once idle
  for ``claim_idle`` seconds, which must exceed the longest send (the client timeout).
- **Redis trouble** (away, out of memory, ``MISCONF``, read-only, ``NOGROUP``) never ends the
  worker: each round that fails is logged and tried again after a capped backoff, and the
  worker says it is stuck, and why, where ``flask sms stats`` and ``/healthz`` read it
  (``health.py`` here). A send the API took is recorded however long Redis takes to come back,
  unless the worker is stopped meanwhile: only that would leave it to be sent again.
- **Retries.** A failed attempt is acknowledged and parked in the ``keys.RETRY`` sorted set,
  scored by when it is due (exponential backoff with jitter), and put back on the stream when
  due. A sorted set rather than re-adding with a "not before" field: workers take only what is
  due with one range query, instead of reading, inspecting and re-adding early entries in a
  spin, and the stream holds only work that can be done now.
- **Dead letters.** A rejected message, or one that failed ``max_attempts`` times, goes to
  ``keys.DEAD`` with its last error; an operator lists and requeues it (``flask sms``).
- Acknowledged entries are deleted, so the stream does not grow.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import redis

from gateway.config import Settings
from gateway.logs import clean
from gateway.outbox.health import WorkerHealth
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult
from gateway.sms_text import render_entry
from gateway.store import keys
from gateway.store.scripts import scripts_for

log = logging.getLogger(__name__)

KEEP_SECONDS = 30 * 24 * 3600  # how long a sent message's status is kept
# Delivery reports come within a message's validity period (hours to a few days), so the
# provider id → message key lookup need not live as long as the status: a week is ample.
REPORT_SECONDS = 7 * 24 * 3600
SMALL = 64  # bytes: Redis's hash-max-listpack-value; longer values make a hash a hashtable
STATUSES = ("queued", "sent", "delivered", "failed", "dead")

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(fields: dict) -> dict:
    return {_text(k): _text(v) for k, v in fields.items()}


def _short(text: str) -> str:
    # A status-hash value longer than SMALL bytes would turn the hash into a hashtable.
    return text.encode()[:SMALL].decode("utf-8", "ignore")


def _pairs(flat: list) -> dict:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


class _GroupCommit:
    """Writes what several threads hand in with one call: whoever finds the writer free
    writes everything waiting, and the others return once their item is written.

    A thread arriving while a write is under way waits for that one and at most one more, so
    nothing waits for a timer and a lone item is written at once. ``write(item)`` returns only
    once the item is written, and raises what the write of its batch raised.
    """

    def __init__(self, write_many, most: int = 256):
        self._write_many = write_many
        self._most = most  # a script's arguments are unpacked on Lua's stack
        self._waiting: list[_Ticket] = []
        self._queue = threading.Lock()
        self._writer = threading.Lock()

    def write(self, item) -> None:
        """Write ``item``, together with whatever other threads are handing in."""
        ticket = _Ticket(item)
        with self._queue:
            self._waiting.append(ticket)
        while not ticket.done:
            with self._writer:
                if ticket.done:
                    break
                with self._queue:
                    batch = self._waiting[:self._most]
                    del self._waiting[:self._most]
                error = None
                try:
                    self._write_many([t.item for t in batch])
                except BaseException as exc:  # each waiter hears of it; none waits forever
                    error = exc
                for t in batch:
                    t.error, t.done = error, True
        if ticket.error is not None:
            raise ticket.error


class _Ticket:
    __slots__ = ("item", "done", "error")

    def __init__(self, item):
        self.item, self.done, self.error = item, False, None


def make_provider(settings: Settings, client: redis.Redis, timeout=None, **options):
    """Africa's Talking when AT_USERNAME is set, else the console provider (never a drop)."""
    if settings.at_username:
        from gateway.providers.africastalking import DEFAULT_TIMEOUT, SMSClient

        return SMSClient.from_settings(settings, timeout=timeout or DEFAULT_TIMEOUT, **options)
    from gateway.providers.console import ConsoleProvider

    log.warning("event=console_provider: AT_USERNAME unset, outbound SMS are logged and kept "
                "for the simulator")
    return ConsoleProvider(client)


class RateLimiter:
    """Spaces sends at most ``rate`` per second across this process's threads (0: no cap)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for this send's turn."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self.interval
        if turn > now:
            time.sleep(turn - now)  # pacing the provider, not waiting for a condition


class Worker:
    """One outbox consumer: ``run()`` until ``stop()``; in-flight sends always finish."""

    def __init__(self, client: redis.Redis, settings: Settings, provider=None, *,
                 concurrency: int | None = None, rate: float | None = None,
                 max_attempts: int | None = None, claim_idle: float = 60.0,
                 block_ms: int = 1000, backoff: tuple[float, float, float] = (2.0, 3.0, 1800.0),
                 redis_backoff: tuple[float, float] = (0.5, 30.0), name: str | None = None):
        self.r = client
        self.settings = settings
        self.concurrency = max(1, concurrency or settings.outbox_concurrency)
        self.provider = provider or make_provider(
            settings, client, **({"pool_size": self.concurrency} if settings.at_username else {}))
        self.max_attempts = max(1, max_attempts or settings.outbox_max_attempts)
        self.rate = settings.outbox_rate if rate is None else rate
        self.limiter = RateLimiter(self.rate)
        self.claim_idle_ms = int(claim_idle * 1000)
        self.block_ms = block_ms
        self.backoff = backoff  # first delay (s), factor, cap (s)
        self.redis_backoff = redis_backoff  # first delay and cap (s) while Redis errs
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self._stop = threading.Event()
        self._slots = threading.Semaphore(self.concurrency)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._claim_cursor = "0-0"
        self._scripts = scripts_for(client)
        self._recorder = _GroupCommit(self._record_sent)
        self._health = WorkerHealth(client, self.name, redis_backoff)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, handle_signals: bool = False) -> None:
        """Deliver until stopped; with ``handle_signals``, SIGTERM/SIGINT stop it cleanly."""
        previous = {}
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        log.info("event=outbox_worker_started worker=%s concurrency=%d rate_cap=%s provider=%s",
                 self.name, self.concurrency, self.rate or "none", type(self.provider).__name__)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sms-send")
        next_reclaim = next_promote = 0.0
        ready = False
        try:
            while not self._stop.is_set():
                try:
                    if not ready:  # inside the loop: a worker may start before its Redis
                        self._ensure_group()
                        ready = True
                    if time.monotonic() >= next_promote:  # a round trip saved per message
                        self._promote()
                        next_promote = time.monotonic() + 0.1
                    if time.monotonic() >= next_reclaim:
                        self._dispatch(pool, self._reclaim)
                        next_reclaim = time.monotonic() + min(self.claim_idle_ms / 2000, 30)
                    self._dispatch(pool, self._read)
                    self._health.fine()
                except Exception as exc:  # out of memory, read-only, away ...: never exit
                    ready = ready and "NOGROUP" not in str(exc)  # stream deleted: start afresh
                    self._stop.wait(self._health.failed(exc))
        finally:
            pool.shutdown(wait=True)  # finish what is in flight; unread entries stay queued
            self._health.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("event=outbox_worker_stopped worker=%s", self.name)

    def stop(self) -> None:
        """Ask the loop to stop after the sends in flight."""
        self._stop.set()

    def _on_signal(self, signum, frame) -> None:
        # No lock here: the interrupted main thread may hold it.
        log.info("event=outbox_worker_stopping signal=%s in_flight=%d: stopping after them",
                 signal.Signals(signum).name, len(self._in_flight))
        self.stop()

    def _ensure_group(self) -> None:
        try:
            # From the start of the stream: SMS queued before any worker ran are sent too.
            self.r.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _dispatch(self, pool: ThreadPoolExecutor, fetch) -> None:
        # Read only as many entries as there are free senders, so nothing waits in memory.
        if not self._slots.acquire(timeout=self.block_ms / 1000):
            return
        free = 1
        while free < self.concurrency and self._slots.acquire(blocking=False):
            free += 1
        try:
            # Asked to stop while waiting for a sender: read nothing more, so nothing new is
            # left pending for the idle timeout (what we read, we always send).
            entries = [] if self._stop.is_set() else fetch(free)
            for entry_id, entry, attempt in self._started(entries):
                with self._lock:
                    self._in_flight.add(entry_id)
                free -= 1
                pool.submit(self._send_one, entry_id, entry, attempt)
        finally:
            for _ in range(free):
                self._slots.release()

    def _read(self, count: int) -> list:
        # Under load one script reads and starts a batch; only an empty stream costs a
        # blocking read and then a second script for what it brought.
        taken = self._scripts["outbox_take"](
            keys=[keys.OUTBOX],
            args=[keys.OUTBOX_GROUP, self.name, count, _now(), keys.template(keys.message)])
        if taken:
            return [(_text(i), _pairs(fields), int(state)) for i, fields, state in taken]
        answer = self.r.xreadgroup(keys.OUTBOX_GROUP, self.name, {keys.OUTBOX: ">"},
                                   count=count, block=self.block_ms)
        return self._begin([(_text(i), _decode(f)) for i, f in answer[0][1]] if answer else [])

    def _reclaim(self, count: int) -> list:
        cursor, claimed, *_ = self.r.xautoclaim(
            keys.OUTBOX, keys.OUTBOX_GROUP, self.name, self.claim_idle_ms,
            start_id=self._claim_cursor, count=count)
        self._claim_cursor = _text(cursor)
        if claimed:
            log.warning("event=outbox_took_over worker=%s entries=%d: left pending by another",
                        self.name, len(claimed))
        with self._lock:  # a send of ours slower than claim_idle: never started twice
            ours = [(_text(i), _decode(f)) for i, f in claimed
                    if f and _text(i) not in self._in_flight]
        return self._begin(ours)

    def _begin(self, entries: list) -> list:
        if not entries:
            return []
        args = [keys.OUTBOX_GROUP, _now(), keys.template(keys.message)]
        for entry_id, entry in entries:
            args += [entry_id, entry.get("k") or f"entry:{entry_id}", entry.get("to", ""),
                     entry.get("t", ""), entry.get("l", "en"), entry.get("p", "{}")]
        states = self._scripts["outbox_begin"](keys=[keys.OUTBOX], args=args)
        return [(i, e, int(state)) for (i, e), state in zip(entries, states, strict=True)]

    def _started(self, entries: list) -> list:
        # Started entries to send; the others were acknowledged or become dead letters here.
        ready = []
        for entry_id, entry, state in entries:
            entry.setdefault("k", f"entry:{entry_id}")
            if state < 0:
                self._dead(entry_id, entry, "malformed outbox entry")
            elif state == 0:  # sent before a crash, or queued twice: never resent
                log.info("event=outbox_already_sent k=%s: acknowledged, not resent", entry["k"])
            else:
                ready.append((entry_id, entry, state))
        return ready

    def _promote(self) -> None:
        self._scripts["outbox_promote"](keys=[keys.RETRY, keys.OUTBOX],
                                 args=[int(time.time() * 1000), 100, keys.template(keys.message)])

    # -- one message --------------------------------------------------------------------------

    def _send_one(self, entry_id: str, entry: dict, attempt: int) -> None:
        try:
            self._deliver(entry_id, entry, attempt)
        except Exception:  # the entry stays pending and is reclaimed later
            log.exception("event=outbox_unhandled entry=%s: left for a retry", entry_id)
        finally:
            with self._lock:
                self._in_flight.discard(entry_id)
            self._slots.release()

    def _deliver(self, entry_id: str, entry: dict, attempt: int) -> None:
        k = entry["k"]
        try:
            text = render_entry(entry, self.settings.keyring)
        except Exception as exc:  # a template that cannot render never will
            self._dead(entry_id, entry, f"cannot render: {type(exc).__name__}: {exc}")
            return
        self.limiter.acquire()
        try:
            result = self.provider.send(entry["to"], text, entry)
        except Exception as exc:  # a provider bug must not lose the message
            log.exception("event=outbox_provider_raised k=%s", k)
            result = SendResult(RETRY, detail=f"provider error: {type(exc).__name__}")
        self._settle(entry_id, entry, attempt, result)

    def _settle(self, entry_id: str, entry: dict, attempt: int, result: SendResult) -> None:
        k = entry["k"]
        if result.outcome == SENT:
            self._persist((entry_id, k, result.message_id, _now(), _short(result.detail)))
            log.info("event=outbox_sent k=%s provider_id=%s", k, result.message_id or "-")
            return
        if result.outcome == REJECTED:
            self._dead(entry_id, entry, f"rejected: {result.detail}")
            return
        if result.outcome == CONFIG:
            log.error("event=outbox_configuration_error k=%s detail=%s: check AT_USERNAME, "
                      "AT_API_KEY, AT_SENDER_ID", k, result.detail)
        if attempt >= self.max_attempts:
            self._dead(entry_id, entry, f"{result.detail} (after {attempt} attempts)")
            return
        delay = self.delay(attempt)
        due = time.time() + delay
        self._scripts["outbox_retry"](
            keys=[keys.message(k), keys.RETRY, keys.OUTBOX],
            args=[keys.OUTBOX_GROUP, entry_id, k, _short(result.detail),
                  datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds"),
                  int(due * 1000), entry.get("to", ""), entry.get("t", ""),
                  entry.get("l", "en"), entry.get("p", "{}")])
        log.warning("event=outbox_attempt_failed k=%s attempt=%d detail=%s next_in=%.1fs", k,
                    attempt, result.detail, delay)

    def _record_sent(self, records: list) -> None:
        # One script for every send finished meanwhile: each record still carries its own
        # provider id and acknowledgement, written together or not at all.
        keys_ = [keys.OUTBOX, keys.SMS_COUNTS]
        args = [keys.OUTBOX_GROUP, KEEP_SECONDS, REPORT_SECONDS]
        for entry_id, k, message_id, sent_at, detail in records:
            keys_ += [keys.message(k), keys.provider_message(message_id or "-")]
            args += [entry_id, message_id, sent_at, k, detail]
        self._scripts["outbox_sent"](keys=keys_, args=args)

    def _persist(self, record: tuple) -> None:
        # Sent but not recorded is the one state that becomes a duplicate SMS (reclaimed and
        # sent again): keep trying, at most a second apart, until Redis takes the record or
        # the worker must stop.
        first, cap = self.redis_backoff
        for failures in itertools.count():
            try:
                return self._recorder.write(record)
            except redis.RedisError as exc:
                error = clean(f"{type(exc).__name__}: {exc}", 200)
                if self._stop.is_set():
                    log.error("event=outbox_unrecorded k=%s error=%s: sent, but not recorded "
                              "before stopping; the next worker sends it again", record[1], error)
                    raise
                delay = min(cap, 1.0, first * 2 ** failures)
                log.warning("event=outbox_record_retry k=%s failures=%d retry_in=%.1fs error=%s",
                            record[1], failures + 1, delay, error)
                self._stop.wait(delay)

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``: exponential, capped, with equal jitter."""
        first, factor, cap = self.backoff
        full = min(cap, first * factor ** (attempt - 1))
        # Half fixed, half random: retries after an outage spread out but never come early.
        return full / 2 + random.uniform(0, full / 2)

    def _dead(self, entry_id: str, entry: dict, error: str) -> None:
        k = entry["k"]
        self._scripts["outbox_dead"](
            keys=[keys.message(k), keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS],
            args=[keys.OUTBOX_GROUP, entry_id, k, entry.get("to", ""), entry.get("t", ""),
                  entry.get("l", "en"), entry.get("p", "{}"), error, _now(), _short(error)])
        log.error("event=outbox_dead_letter k=%s error=%s", k, error)


# -- in the web process, for a first run ----------------------------------------------------------

class BackgroundWorker:
    """A worker running in a daemon thread of this process; ``stop()`` ends it cleanly."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, name="outbox-worker", daemon=True)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the sends in flight and wait for the thread."""
        self.worker.stop()
        self.thread.join(timeout)


def start_background(app, **options) -> BackgroundWorker:
    """Start delivering the outbox from a thread of ``app``'s process (``python app.py``)."""
    services = app.extensions["tikaline"]
    handle = BackgroundWorker(Worker(services.redis, services.settings, **options))
    handle.thread.start()
    return handle


# -- operator views -------------------------------------------------------------------------------

def stats(client: redis.Redis) -> dict:
    """Counters (queued, sent, delivered, failed, dead) and what waits right now."""
    counts = _decode(client.hgetall(keys.SMS_COUNTS))
    result = {name: int(counts.get(name, 0)) for name in STATUSES}
    result["in_outbox"] = client.xlen(keys.OUTBOX)
    result["waiting_retry"] = client.zcard(keys.RETRY)
    return result


def message_status(client: redis.Redis, message_key: str) -> dict:
    """The status hash of one message (empty when unknown)."""
    return _decode(client.hgetall(keys.message(message_key)))


def dead_letters(client: redis.Redis, count: int = 100) -> list[dict]:
    """The oldest ``count`` dead letters, each with its stream ``id``."""
    return [{"id": _text(i), **_decode(f)}
            for i, f in client.xrange(keys.DEAD, count=count)]


def requeue(client: redis.Redis, ident: str) -> list[str]:
    """Put dead letters back on the outbox: ``ident`` is a dead-letter id or a message key."""
    ids = [ident] if _is_stream_id(ident) else [
        d["id"] for d in _all_dead(client) if d.get("k") == ident]
    return _requeue_ids(client, ids)


def requeue_all(client: redis.Redis) -> list[str]:
    """Put every dead letter back on the outbox; returns their message keys."""
    return _requeue_ids(client, [d["id"] for d in _all_dead(client)])


def _all_dead(client: redis.Redis):
    start = "-"
    while True:
        batch = client.xrange(keys.DEAD, min=start, count=500)
        for i, fields in batch:
            yield {"id": _text(i), **_decode(fields)}
        if len(batch) < 500:
            return
        start = "(" + _text(batch[-1][0])


def _requeue_ids(client: redis.Redis, ids: list[str]) -> list[str]:
    script = scripts_for(client)["outbox_requeue"]
    done = []
    for dead_id in ids:
        k = _text(script(keys=[keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS, keys.RETRY],
                         args=[dead_id, keys.template(keys.message), _now()]))
        if k:
            done.append(k)
    return done


def _is_stream_id(text: str) -> bool:
    left, _, right = text.partition("-")
    return left.isdigit() and right.isdigit()

