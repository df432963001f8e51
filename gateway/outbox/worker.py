"""The outbox worker's loop: read entries as senders come free, send each, settle it."""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import redis

from flows.messages.sms import render_entry
from gateway.config import Settings
from gateway.logs import clean
from gateway.outbox import records
from gateway.outbox.batch import GroupCommit
from gateway.outbox.health import WorkerHealth
from gateway.outbox.partitions import Partitions
from gateway.outbox.ratelimit import FleetRate
from gateway.outbox.records import Taken
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult
from gateway.store import Lifecycle, booking, missed
from gateway.store.scripts import scripts_for

log = logging.getLogger(__name__)
SETTLE_EVERY = 5.0  # seconds between sweeps: bookings a crash left half-done, days over


def make_provider(settings: Settings, client: redis.Redis, timeout=None, **options):
    """Africa's Talking when AT_USERNAME is set, else the console provider (never a drop)."""
    if settings.at_username:
        from gateway.providers.africastalking import DEFAULT_TIMEOUT, SMSClient

        return SMSClient.from_settings(settings, timeout=timeout or DEFAULT_TIMEOUT, **options)
    from gateway.providers.console import ConsoleProvider

    log.warning(
        "event=console_provider: AT_USERNAME unset, outbound SMS are logged and kept "
        "for the simulator"
    )
    return ConsoleProvider(client)


class Worker:
    """One outbox consumer of every partition's stream: ``run()`` until ``stop()``; in-flight
    sends always finish."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        provider=None,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        max_attempts: int | None = None,
        claim_idle: float = 60.0,
        idle: float = 0.25,
        promote_every: float = 1.0,
        backoff: tuple[float, float, float] = (2.0, 3.0, 1800.0),
        redis_backoff: tuple[float, float] = (0.5, 30.0),
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        lifecycle: Lifecycle | None = None,
    ):
        self.r = client
        self.settings = settings
        self.concurrency = max(1, concurrency or settings.outbox_concurrency)
        self.provider = provider or make_provider(
            settings, client, **({"pool_size": self.concurrency} if settings.at_username else {})
        )
        self.max_attempts = max(1, max_attempts or settings.outbox_max_attempts)
        self.rate = settings.outbox_rate if rate is None else rate
        self.claim_idle_ms = int(claim_idle * 1000)
        self.idle = idle  # seconds between sweeps of the partitions while all is quiet
        self.promote_every = promote_every  # seconds between looks for retries now due
        self.backoff = backoff  # first delay (s), factor, cap (s)
        self.redis_backoff = redis_backoff  # first delay and cap (s) while Redis errs
        self.clock = clock  # epoch seconds: retries' due times, the fleet's rate
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self.lifecycle = lifecycle  # with it, the worker marks missed bookings (days over)
        self._stop = threading.Event()
        self.limiter = FleetRate(
            client, self.rate, most=self.concurrency, clock=clock, stopping=self._stop.is_set
        )
        self._slots = threading.Semaphore(self.concurrency)
        self._in_flight: set[tuple[int, str]] = set()
        self._unstarted: list[Taken] = []  # read, but not started: Redis refused the start
        self._lock = threading.Lock()
        self._partitions = Partitions(client, self.name, idle)
        self._scripts = scripts_for(client)
        self._recorder = GroupCommit(lambda batch: records.sent(self.r, self._scripts, batch))
        self._health = WorkerHealth(client, self.name, redis_backoff)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, handle_signals: bool = False) -> None:
        """Deliver until stopped; with ``handle_signals``, SIGTERM/SIGINT stop it cleanly."""
        previous = {}
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        log.info(
            "event=outbox_worker_started worker=%s concurrency=%d rate_cap=%s provider=%s",
            self.name,
            self.concurrency,
            self.rate or "none",
            type(self.provider).__name__,
        )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sms-send")
        try:
            self._loop(pool)
        finally:
            pool.shutdown(wait=True)  # finish what is in flight; unread entries stay queued
            self._health.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("event=outbox_worker_stopped worker=%s", self.name)

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        next_reclaim = next_promote = next_settle = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_promote:
                    self._promote()
                    next_promote = time.monotonic() + self.promote_every
                if time.monotonic() >= next_settle:
                    self._settle_bookings()
                    next_settle = time.monotonic() + SETTLE_EVERY
                if time.monotonic() >= next_reclaim:
                    through = self._dispatch(pool, self._reclaim)
                    # A search cut short by busy senders goes on at once, else in a while.
                    pause = min(self.claim_idle_ms / 2000, 30) if through else 0
                    next_reclaim = time.monotonic() + pause
                if not self._dispatch(pool, self._read):
                    self._stop.wait(self._partitions.pause())
                self._health.fine()
            except Exception as exc:  # out of memory, read-only, away ...: never exit
                self._stop.wait(self._health.failed(exc))

    def stop(self) -> None:
        """Ask the loop to stop after the sends in flight."""
        self._stop.set()

    def _on_signal(self, signum, frame) -> None:
        # No lock here: the interrupted main thread may hold it.
        log.info(
            "event=outbox_worker_stopping signal=%s in_flight=%d: stopping after them",
            signal.Signals(signum).name,
            len(self._in_flight),
        )
        self.stop()

    def _dispatch(
        self, pool: ThreadPoolExecutor, fetch: Callable[[int], tuple[list, bool]]
    ) -> bool:
        """Fetch entries for the free senders and start sending them; what ``fetch`` said
        besides (whether it found any, whether its search is through)."""
        # Read only as many entries as there are free senders, so nothing waits in memory.
        if not self._slots.acquire(timeout=self.idle):
            return True
        free = 1
        while free < self.concurrency and self._slots.acquire(blocking=False):
            free += 1
        try:
            # Asked to stop while waiting for a sender: read nothing more, so nothing new is
            # left pending for the idle timeout (what we read, we always send).
            entries, said = ([], True) if self._stop.is_set() else fetch(free)
            for p, entry_id, entry, attempt in self._started(entries):
                with self._lock:
                    self._in_flight.add((p, entry_id))
                free -= 1
                pool.submit(self._send_one, p, entry_id, entry, attempt)
            return said
        finally:
            for _ in range(free):
                self._slots.release()

    def _read(self, count: int) -> tuple[list, bool]:
        # Entries read earlier whose start Redis refused come first; then the streams.
        carried, self._unstarted = self._unstarted[:count], self._unstarted[count:]
        taken = carried + (self._partitions.read(count - len(carried)) if not carried else [])
        return self._begin(taken), bool(taken)

    def _reclaim(self, count: int) -> tuple[list, bool]:
        claimed, through = self._partitions.reclaim(count, self.claim_idle_ms)
        if claimed:
            log.warning(
                "event=outbox_took_over worker=%s entries=%d: left pending by another",
                self.name,
                len(claimed),
            )
        with self._lock:  # a send of ours slower than claim_idle: never started twice
            held = self._in_flight | {(p, i) for p, i, _ in self._unstarted}
            ours = [t for t in claimed if (t[0], t[1]) not in held]
        return self._begin(ours), through

    def _begin(self, taken: list[Taken]) -> list:
        try:
            return records.begin(self.r, self._scripts, self.name, taken)
        except Exception:
            # They are pending for this worker: start them as soon as Redis takes it, rather
            # than leave them for a reclaim after claim_idle.
            self._unstarted = taken + self._unstarted
            raise

    def _started(self, entries: list) -> list:
        # Started entries to send; the others were acknowledged or become dead letters here.
        ready = []
        for p, entry_id, entry, state in entries:
            entry.setdefault("k", records.message_key(entry_id, entry))
            if state == -2:  # another worker took it over while this one waited to start it
                log.info("event=outbox_taken_over k=%s: left to the other worker", entry["k"])
            elif state < 0:
                self._dead(p, entry_id, entry, "malformed outbox entry")
            elif state == 0:  # sent before a crash, or queued twice: never resent
                log.info("event=outbox_already_sent k=%s: acknowledged, not resent", entry["k"])
            else:
                ready.append((p, entry_id, entry, state))
        return ready

    def _settle_bookings(self) -> None:
        """The bookings' sweeper: settle those a crashed web process left half-done."""
        settled = booking.settle_due(self.r, int(self.settings.clock()))
        if settled:
            log.warning("event=bookings_settled count=%d: left in flight by a crash", settled)
        if self.lifecycle is not None:
            self._sweep_missed(self.lifecycle)

    def _sweep_missed(self, lifecycle: Lifecycle) -> None:
        """Open bookings whose day is over (in TIMEZONE) become missed; their people told."""
        now = datetime.fromtimestamp(self.settings.clock(), self.settings.tz)
        count, told = missed.sweep(self.r, lifecycle.OPEN_STATES, now)
        if count:
            log.info("event=bookings_missed count=%d told=%d", count, told)

    def _promote(self) -> None:
        now_ms = int(self.clock() * 1000)
        due = records.due_retries(self.r, now_ms)
        records.promote(self.r, self._scripts, due, now_ms)

    # -- one message --------------------------------------------------------------------------

    def _send_one(self, p: int, entry_id: str, entry: dict, attempt: int) -> None:
        try:
            self._deliver(p, entry_id, entry, attempt)
        except Exception:  # the entry stays pending and is reclaimed later
            log.exception("event=outbox_unhandled entry=%s-%s: left for a retry", p, entry_id)
        finally:
            with self._lock:
                self._in_flight.discard((p, entry_id))
            self._slots.release()

    def _deliver(self, p: int, entry_id: str, entry: dict, attempt: int) -> None:
        k = entry["k"]
        try:
            text = render_entry(entry, self.settings.keyring)
        except Exception as exc:  # a template that cannot render never will
            self._dead(p, entry_id, entry, f"cannot render: {type(exc).__name__}: {exc}")
            return
        self.limiter.acquire()
        try:
            result = self.provider.send(entry["to"], text, entry)
        except Exception as exc:  # a provider bug must not lose the message
            log.exception("event=outbox_provider_raised k=%s", k)
            result = SendResult(RETRY, detail=f"provider error: {type(exc).__name__}")
        self._settle(p, entry_id, entry, attempt, result)

    def _settle(self, p: int, entry_id: str, entry: dict, attempt: int, result: SendResult) -> None:
        k = entry["k"]
        if result.outcome == SENT:
            sent_at, detail = records.now(), records.short(result.detail)
            self._persist((p, entry_id, k, result.message_id, sent_at, detail))
            log.info("event=outbox_sent k=%s provider_id=%s", k, result.message_id or "-")
            return
        if result.outcome == REJECTED:
            self._dead(p, entry_id, entry, f"rejected: {result.detail}")
            return
        if result.outcome == CONFIG:
            log.error(
                "event=outbox_configuration_error k=%s detail=%s: check AT_USERNAME, "
                "AT_API_KEY, AT_SENDER_ID",
                k,
                result.detail,
            )
        if attempt >= self.max_attempts:
            self._dead(p, entry_id, entry, f"{result.detail} (after {attempt} attempts)")
            return
        delay = self.delay(attempt)
        records.retry(self._scripts, p, entry_id, entry, result.detail, self.clock() + delay)
        log.warning(
            "event=outbox_attempt_failed k=%s attempt=%d detail=%s next_in=%.1fs",
            k,
            attempt,
            result.detail,
            delay,
        )

    def _persist(self, record: records.Sent) -> None:
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
                    log.error(
                        "event=outbox_unrecorded k=%s error=%s: sent, but not recorded "
                        "before stopping; the next worker sends it again",
                        record[2],
                        error,
                    )
                    raise
                delay = min(cap, 1.0, first * 2**failures)
                log.warning(
                    "event=outbox_record_retry k=%s failures=%d retry_in=%.1fs error=%s",
                    record[2],
                    failures + 1,
                    delay,
                    error,
                )
                self._stop.wait(delay)

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``: exponential, capped, with equal jitter."""
        first, factor, cap = self.backoff
        full = min(cap, first * factor ** (attempt - 1))
        # Half fixed, half random: retries after an outage spread out but never come early.
        return full / 2 + random.uniform(0, full / 2)

    def _dead(self, p: int, entry_id: str, entry: dict, error: str) -> None:
        records.dead(self._scripts, p, entry_id, entry, error)
        log.error("event=outbox_dead_letter k=%s error=%s", entry["k"], error)


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
    options.setdefault("lifecycle", services.store.lifecycle)
    handle = BackgroundWorker(Worker(services.redis, services.settings, **options))
    handle.thread.start()
    return handle
