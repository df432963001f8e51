"""The outbox: every SMS a script promised is delivered at least once, and never twice when
avoidable.

The data is cut into ``keys.PARTITIONS`` partitions, and each has its own outbox: the store's
Lua scripts append each promised SMS to the stream ``keys.outbox(p)`` of the partition their
change lives in (fields ``k`` message key, ``to``, ``t`` template, ``l`` language, ``p``
JSON params), in the same script as the change. Every worker reads every partition's stream
through that stream's consumer group ``keys.OUTBOX_GROUP`` (``partitions``: a sweep finds the
streams holding entries, pipelined non-blocking reads share the free senders among them),
renders the text at send time (codes are derived, never stored) and hands it to the provider.
Per message it keeps a small status hash ``keys.message(p, k)`` in the same partition (see
``records``): queued → sent → delivered | failed, or dead.

- **Every key declared.** Each script touches one partition and gets every key in KEYS. What
  names a key (an entry's message key, a due retry, a dead letter's message, a provider id's
  message) is read first, and the script checks it still holds: an entry is started only
  while still pending for this worker, a retry promoted only while still due, a dead letter
  requeued only if it is still there.
- **Exactly-once where it can be known.** Before a send, a message whose status is already
  ``sent`` (or later) is acknowledged without sending. After a send, the provider's message id,
  the status and the acknowledgement are written by one script, so a crash either happens
  before the send was recorded (the entry is reclaimed and sent again: the only duplicate
  left, and it carries the same text) or after it (nothing is resent). The provider id →
  message lookup (``keys.provider_message``, "<partition> <message key>") lives in the
  provider id's partition and is written in the same round trip, after the script: losing it
  loses only that message's delivery reports.
- **Few round trips.** A read is one pipeline over the partitions with work, starting what it
  read is one more (a script per partition), and the sends that finish while one record is
  being written are recorded together by the next (``batch``: a group commit, with no timer).
- **Crashes.** Entries a dead worker left pending are taken over with ``XAUTOCLAIM``, stream by
  stream, once idle for ``claim_idle`` seconds, which must exceed the longest send (the client
  timeout).
- **The fleet's rate.** ``OUTBOX_RATE`` caps the sends of all workers together: a token bucket
  in Redis (``keys.SEND_RATE``), taken from in small batches (``ratelimit``).
- **Redis trouble** (away, out of memory, ``MISCONF``, read-only, ``NOGROUP``) never ends the
  worker: each round that fails is logged and tried again after a capped backoff, and the
  worker says it is stuck, and why, where ``flask sms stats`` and ``/healthz`` read it
  (``health``). A send the API took is recorded however long Redis takes to come back,
  unless the worker is stopped meanwhile: only that would leave it to be sent again.
- **Retries.** A failed attempt is acknowledged and parked in its partition's ``keys.retry(p)``
  sorted set, scored by when it is due (exponential backoff with jitter), and put back on the
  stream when due. A sorted set rather than re-adding with a "not before" field: workers take
  only what is due with one range query, instead of reading, inspecting and re-adding early
  entries in a spin, and the stream holds only work that can be done now.
- **Dead letters.** A rejected message, or one that failed ``max_attempts`` times, goes to its
  partition's ``keys.dead(p)`` with its last error; an operator lists and requeues it by its
  id ``<partition>:<stream id>`` or its message key (``admin``).
- **Counters** are per partition (``keys.sms_counts(p)``), so no one hash is hot; the
  operator's views add them up.
- Acknowledged entries are deleted, so the streams do not grow.

Modules: ``worker`` (the loop), ``partitions`` (which streams to read, how much), ``records``
(what is written per message), ``batch`` (group commit), ``ratelimit`` (the fleet's rate),
``admin`` (operator views), ``health`` (is a worker stuck).
"""

from gateway.outbox.admin import STATUSES, counters, dead_letters, requeue, requeue_all, stats
from gateway.outbox.ratelimit import FleetRate
from gateway.outbox.records import KEEP_SECONDS, REPORT_SECONDS
from gateway.outbox.worker import BackgroundWorker, Worker, make_provider, start_background

__all__ = [
    "KEEP_SECONDS",
    "REPORT_SECONDS",
    "STATUSES",
    "BackgroundWorker",
    "FleetRate",
    "Worker",
    "counters",
    "dead_letters",
    "make_provider",
    "requeue",
    "requeue_all",
    "start_background",
    "stats",
]
