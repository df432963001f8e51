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
from concurrent.futures import ThreadPoolExecutor

import redis

from flows.messages.sms import render_entry
from gateway.config import Settings
from gateway.logs import clean
from gateway.outbox import records
from gateway.outbox.batch import GroupCommit
from gateway.outbox.health import WorkerHealth
from gateway.outbox.ratelimit import RateLimiter
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult
from gateway.store import keys, replies
from gateway.store.scripts import scripts_for

log = logging.getLogger(__name__)


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
    """One outbox consumer: ``run()`` until ``stop()``; in-flight sends always finish."""

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
        block_ms: int = 1000,
        backoff: tuple[float, float, float] = (2.0, 3.0, 1800.0),
        redis_backoff: tuple[float, float] = (0.5, 30.0),
        name: str | None = None,
    ):
        self.r = client
        self.settings = settings
        self.concurrency = max(1, concurrency or settings.outbox_concurrency)
        self.provider = provider or make_provider(
            settings, client, **({"pool_size": self.concurrency} if settings.at_username else {})
        )
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
        self._recorder = GroupCommit(lambda batch: records.sent(self._scripts, batch))
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
        log.info(
            "event=outbox_worker_stopping signal=%s in_flight=%d: stopping after them",
            signal.Signals(signum).name,
            len(self._in_flight),
        )
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
        taken = records.take(self._scripts, self.name, count)
        if taken:
            return taken
        answer = self.r.xreadgroup(
            keys.OUTBOX_GROUP, self.name, {keys.OUTBOX: ">"}, count=count, block=self.block_ms
        )
        return records.begin(self._scripts, replies.group_read(answer))

    def _reclaim(self, count: int) -> list:
        cursor, claimed, *_ = self.r.xautoclaim(
            keys.OUTBOX,
            keys.OUTBOX_GROUP,
            self.name,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = replies.text(cursor)
        if claimed:
            log.warning(
                "event=outbox_took_over worker=%s entries=%d: left pending by another",
                self.name,
                len(claimed),
            )
        with self._lock:  # a send of ours slower than claim_idle: never started twice
            ours = [(i, f) for i, f in replies.entries(claimed) if i not in self._in_flight]
        return records.begin(self._scripts, ours)

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
        records.promote(self._scripts, int(time.time() * 1000))

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
            self._persist(
                (entry_id, k, result.message_id, records.now(), records.short(result.detail))
            )
            log.info("event=outbox_sent k=%s provider_id=%s", k, result.message_id or "-")
            return
        if result.outcome == REJECTED:
            self._dead(entry_id, entry, f"rejected: {result.detail}")
            return
        if result.outcome == CONFIG:
            log.error(
                "event=outbox_configuration_error k=%s detail=%s: check AT_USERNAME, "
                "AT_API_KEY, AT_SENDER_ID",
                k,
                result.detail,
            )
        if attempt >= self.max_attempts:
            self._dead(entry_id, entry, f"{result.detail} (after {attempt} attempts)")
            return
        delay = self.delay(attempt)
        due = time.time() + delay
        records.retry(self._scripts, entry_id, entry, result.detail, due)
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
                        record[1],
                        error,
                    )
                    raise
                delay = min(cap, 1.0, first * 2**failures)
                log.warning(
                    "event=outbox_record_retry k=%s failures=%d retry_in=%.1fs error=%s",
                    record[1],
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

    def _dead(self, entry_id: str, entry: dict, error: str) -> None:
        records.dead(self._scripts, entry_id, entry, error)
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
    handle = BackgroundWorker(Worker(services.redis, services.settings, **options))
    handle.thread.start()
    return handle
