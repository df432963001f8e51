"""The outbox worker: delivers every queued SMS at least once, and never twice when avoidable.

The store's Lua scripts append each promised SMS to the ``keys.OUTBOX`` stream (fields ``k``
message key, ``to``, ``t`` template, ``l`` language, ``p`` JSON params). This worker reads it
through the consumer group ``keys.OUTBOX_GROUP``, renders the text at send time (codes are
derived, never stored) and hands it to the provider. Per message it keeps a status hash
``keys.message(k)``: queued → sent → delivered | failed, or dead.

- **Exactly-once where it can be known.** Before a send, a message whose status is already
  ``sent`` (or later) is acknowledged without sending. After a send, the provider's message id,
  the status and the acknowledgement are written by one script, so a crash either happens
  before the send was recorded (the entry is reclaimed and sent again: the only duplicate
  left, and it carries the same text) or after it (nothing is resent).
- **Crashes.** Entries a dead worker left pending are taken over with ``XAUTOCLAIM`` once idle
  for ``claim_idle`` seconds, which must exceed the longest send (the client timeout).
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

from gateway import keys
from gateway.config import Settings
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult
from gateway.sms_text import render_entry

log = logging.getLogger(__name__)

KEEP_SECONDS = 30 * 24 * 3600  # how long a sent message's status and provider id are kept
STATUSES = ("queued", "sent", "delivered", "failed", "dead")

# Each script below is one atomic step. Scripts that build a message key from a stored
# message key use keys.PREFIX + "msg:", which is how keys.message() spells it.
_BEGIN = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'delivered' or status == 'failed' or status == 'dead' then
  return {'done', 0}
end
if not status then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'to', ARGV[1], 'template', ARGV[2],
             'lang', ARGV[3], 'params', ARGV[4], 'queued_at', ARGV[5])
end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'attempt_at', ARGV[5])
return {'go', n}
"""
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
_SENT = """
redis.call('HSET', KEYS[1], 'status', 'sent', 'provider_id', ARGV[3], 'sent_at', ARGV[4],
           'detail', ARGV[7])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6]) end
redis.call('HINCRBY', KEYS[4], 'sent', 1)
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
"""
_RETRY = """
redis.call('HSET', KEYS[1], 'status', 'queued', 'last_error', ARGV[4],
           'next_attempt_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[3])
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
"""
_DEAD = """
local m = redis.call('HMGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'to', ARGV[4], 't', ARGV[5], 'l', ARGV[6],
           'p', ARGV[7], 'error', ARGV[8], 'attempts', m[1] or '0', 'at', ARGV[9])
redis.call('HSET', KEYS[1], 'status', 'dead', 'last_error', ARGV[8], 'dead_at', ARGV[9],
           'to', ARGV[4], 'template', ARGV[5], 'lang', ARGV[6], 'params', ARGV[7])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('PERSIST', KEYS[1])
redis.call('HINCRBY', KEYS[4], 'dead', 1)
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
end
return 1
"""
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, k in ipairs(due) do
  local m = redis.call('HMGET', ARGV[3] .. 'msg:' .. k, 'to', 'template', 'lang', 'params',
                       'status')
  if m[1] and m[5] == 'queued' then
    redis.call('XADD', KEYS[2], '*', 'k', k, 'to', m[1], 't', m[2], 'l', m[3], 'p', m[4])
  end
  redis.call('ZREM', KEYS[1], k)
end
return #due
"""
_REQUEUE = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return '' end
local f = {}
local flat = found[1][2]
for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
redis.call('XADD', KEYS[2], '*', 'k', f.k, 'to', f.to, 't', f.t, 'l', f.l, 'p', f.p)
local msg = ARGV[2] .. 'msg:' .. f.k
redis.call('HSET', msg, 'status', 'queued', 'attempts', 0, 'requeued_at', ARGV[3])
redis.call('ZREM', KEYS[4], f.k)
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'dead', -1)
return f.k
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(fields: dict) -> dict:
    return {_text(k): _text(v) for k, v in fields.items()}


def make_provider(settings: Settings, client: redis.Redis, timeout=None, **options):
    """Africa's Talking when AT_USERNAME is set, else the console provider (never a drop)."""
    if settings.at_username:
        from gateway.providers.africastalking import DEFAULT_TIMEOUT, SMSClient

        return SMSClient.from_settings(settings, timeout=timeout or DEFAULT_TIMEOUT, **options)
    from gateway.providers.console import ConsoleProvider

    log.warning("AT_USERNAME unset: outbound SMS are logged and kept for the simulator")
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
                 name: str | None = None):
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
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self._stop = threading.Event()
        self._slots = threading.Semaphore(self.concurrency)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._claim_cursor = "0-0"
        self._scripts = {name: client.register_script(src) for name, src in (
            ("begin", _BEGIN), ("ack", _ACK), ("sent", _SENT), ("retry", _RETRY),
            ("dead", _DEAD), ("promote", _PROMOTE))}

    # -- the loop -----------------------------------------------------------------------------

    def run(self, handle_signals: bool = False) -> None:
        """Deliver until stopped; with ``handle_signals``, SIGTERM/SIGINT stop it cleanly."""
        previous = {}
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        log.info("outbox worker %s: concurrency %d, rate cap %s/s, provider %s", self.name,
                 self.concurrency, self.rate or "no", type(self.provider).__name__)
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
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    ready = False  # the stream was deleted under us: start afresh
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.error("outbox worker: Redis unreachable (%s); retrying", exc)
                    self._stop.wait(1.0)
        finally:
            pool.shutdown(wait=True)  # finish what is in flight; unread entries stay queued
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("outbox worker %s stopped", self.name)

    def stop(self) -> None:
        """Ask the loop to stop after the sends in flight."""
        self._stop.set()

    def _on_signal(self, signum, frame) -> None:
        # No lock here: the interrupted main thread may hold it.
        log.info("%s: stopping after the %d sends in flight", signal.Signals(signum).name,
                 len(self._in_flight))
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
            for entry_id, fields in entries:
                with self._lock:
                    if entry_id in self._in_flight:
                        continue  # a send of ours slower than claim_idle: never twice at once
                    self._in_flight.add(entry_id)
                free -= 1
                pool.submit(self._send_one, entry_id, fields)
        finally:
            for _ in range(free):
                self._slots.release()

    def _read(self, count: int) -> list:
        answer = self.r.xreadgroup(keys.OUTBOX_GROUP, self.name, {keys.OUTBOX: ">"},
                                   count=count, block=self.block_ms)
        return [(_text(i), f) for i, f in answer[0][1]] if answer else []

    def _reclaim(self, count: int) -> list:
        cursor, claimed, *_ = self.r.xautoclaim(
            keys.OUTBOX, keys.OUTBOX_GROUP, self.name, self.claim_idle_ms,
            start_id=self._claim_cursor, count=count)
        self._claim_cursor = _text(cursor)
        if claimed:
            log.warning("outbox worker %s: took over %d entries left pending", self.name,
                        len(claimed))
        return [(_text(i), f) for i, f in claimed if f]

    def _promote(self) -> None:
        self._scripts["promote"](keys=[keys.RETRY, keys.OUTBOX],
                                 args=[int(time.time() * 1000), 100, keys.PREFIX])

    # -- one message --------------------------------------------------------------------------

    def _send_one(self, entry_id: str, raw: dict) -> None:
        try:
            self._deliver(entry_id, _decode(raw))
        except Exception:  # the entry stays pending and is reclaimed later
            log.exception("outbox entry %s: not handled, left for a retry", entry_id)
        finally:
            with self._lock:
                self._in_flight.discard(entry_id)
            self._slots.release()

    def _deliver(self, entry_id: str, entry: dict) -> None:
        k = entry.get("k") or f"entry:{entry_id}"
        entry.setdefault("k", k)
        if not entry.get("to") or not entry.get("t"):
            self._dead(entry_id, entry, "malformed outbox entry")
            return
        state, attempt = self._scripts["begin"](
            keys=[keys.message(k)],
            args=[entry["to"], entry["t"], entry.get("l", "en"), entry.get("p", "{}"), _now()])
        if _text(state) == "done":  # sent before a crash: acknowledge, never resend
            self._scripts["ack"](keys=[keys.OUTBOX], args=[keys.OUTBOX_GROUP, entry_id])
            log.info("outbox %s: already sent, acknowledged without resending", k)
            return
        try:
            text = render_entry(entry, self.settings.secret_key)
        except Exception as exc:  # a template that cannot render never will
            self._dead(entry_id, entry, f"cannot render: {type(exc).__name__}: {exc}")
            return
        self.limiter.acquire()
        try:
            result = self.provider.send(entry["to"], text, entry)
        except Exception as exc:  # a provider bug must not lose the message
            log.exception("outbox %s: provider raised", k)
            result = SendResult(RETRY, detail=f"provider error: {type(exc).__name__}")
        self._settle(entry_id, entry, int(attempt), result)

    def _settle(self, entry_id: str, entry: dict, attempt: int, result: SendResult) -> None:
        k = entry["k"]
        if result.outcome == SENT:
            # Sent but not yet recorded is the one state that can become a duplicate SMS:
            # ride out a short Redis hiccup rather than leave the entry for a resend.
            self._persist(lambda: self._scripts["sent"](
                keys=[keys.message(k), keys.provider_message(result.message_id or "-"),
                      keys.OUTBOX, keys.SMS_COUNTS],
                args=[keys.OUTBOX_GROUP, entry_id, result.message_id, _now(), k,
                      KEEP_SECONDS, result.detail]))
            log.info("outbox %s: sent (%s)", k, result.message_id or "no id")
            return
        if result.outcome == REJECTED:
            self._dead(entry_id, entry, f"rejected: {result.detail}")
            return
        if result.outcome == CONFIG:
            log.error("outbox %s: provider configuration error: %s (check AT_USERNAME, "
                      "AT_API_KEY, AT_SENDER_ID)", k, result.detail)
        if attempt >= self.max_attempts:
            self._dead(entry_id, entry, f"{result.detail} (after {attempt} attempts)")
            return
        delay = self.delay(attempt)
        due = time.time() + delay
        self._scripts["retry"](
            keys=[keys.message(k), keys.RETRY, keys.OUTBOX],
            args=[keys.OUTBOX_GROUP, entry_id, k, result.detail,
                  datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds"),
                  int(due * 1000)])
        log.warning("outbox %s: attempt %d failed (%s); next in %.1f s", k, attempt,
                    result.detail, delay)

    @staticmethod
    def _persist(call, tries: int = 6):
        for n in range(tries):
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError):
                if n == tries - 1:
                    raise
                time.sleep(0.1 * 2 ** n)  # Redis coming back, not a condition to wait on

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``: exponential, capped, with equal jitter."""
        first, factor, cap = self.backoff
        full = min(cap, first * factor ** (attempt - 1))
        # Half fixed, half random: retries after an outage spread out but never come early.
        return full / 2 + random.uniform(0, full / 2)

    def _dead(self, entry_id: str, entry: dict, error: str) -> None:
        k = entry["k"]
        self._scripts["dead"](
            keys=[keys.message(k), keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS],
            args=[keys.OUTBOX_GROUP, entry_id, k, entry.get("to", ""), entry.get("t", ""),
                  entry.get("l", "en"), entry.get("p", "{}"), error, _now()])
        log.error("outbox %s: dead letter: %s", k, error)


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
    script = client.register_script(_REQUEUE)
    done = []
    for dead_id in ids:
        k = _text(script(keys=[keys.DEAD, keys.OUTBOX, keys.SMS_COUNTS, keys.RETRY],
                         args=[dead_id, keys.PREFIX, _now()]))
        if k:
            done.append(k)
    return done


def _is_stream_id(text: str) -> bool:
    left, _, right = text.partition("-")
    return left.isdigit() and right.isdigit()

