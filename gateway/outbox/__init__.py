"""The outbox: every SMS a script promised is delivered at least once, and never twice when
avoidable.

The store's Lua scripts append each promised SMS to the ``keys.OUTBOX`` stream (fields ``k``
message key, ``to``, ``t`` template, ``l`` language, ``p`` JSON params). The worker reads it
through the consumer group ``keys.OUTBOX_GROUP``, renders the text at send time (codes are
derived, never stored) and hands it to the provider. Per message it keeps a small status hash
``keys.message(k)`` (see ``records``): queued → sent → delivered | failed, or dead.

- **Exactly-once where it can be known.** Before a send, a message whose status is already
  ``sent`` (or later) is acknowledged without sending. After a send, the provider's message id,
  the status and the acknowledgement are written by one script, so a crash either happens
  before the send was recorded (the entry is reclaimed and sent again: the only duplicate
  left, and it carries the same text) or after it (nothing is resent).
- **Few round trips.** Reading a batch and starting each entry (status check, attempt count)
  is one script, and the sends that finish while one record is being written are recorded
  together by the next one (``batch``: a group commit, with no timer).
- **Crashes.** Entries a dead worker left pending are taken over with ``XAUTOCLAIM`` once idle
  for ``claim_idle`` seconds, which must exceed the longest send (the client timeout).
- **Redis trouble** (away, out of memory, ``MISCONF``, read-only, ``NOGROUP``) never ends the
  worker: each round that fails is logged and tried again after a capped backoff, and the
  worker says it is stuck, and why, where ``flask sms stats`` and ``/healthz`` read it
  (``health``). A send the API took is recorded however long Redis takes to come back,
  unless the worker is stopped meanwhile: only that would leave it to be sent again.
- **Retries.** A failed attempt is acknowledged and parked in the ``keys.RETRY`` sorted set,
  scored by when it is due (exponential backoff with jitter), and put back on the stream when
  due. A sorted set rather than re-adding with a "not before" field: workers take only what is
  due with one range query, instead of reading, inspecting and re-adding early entries in a
  spin, and the stream holds only work that can be done now.
- **Dead letters.** A rejected message, or one that failed ``max_attempts`` times, goes to
  ``keys.DEAD`` with its last error; an operator lists and requeues it (``admin``).
- Acknowledged entries are deleted, so the stream does not grow.

Modules: ``worker`` (the loop), ``records`` (what is written per message), ``batch`` (group
commit), ``ratelimit`` (pacing), ``admin`` (operator views), ``health`` (is a worker stuck).
"""

from gateway.outbox.admin import STATUSES, dead_letters, requeue, requeue_all, stats
from gateway.outbox.ratelimit import RateLimiter
from gateway.outbox.records import KEEP_SECONDS, REPORT_SECONDS
from gateway.outbox.worker import BackgroundWorker, Worker, make_provider, start_background

__all__ = [
    "KEEP_SECONDS",
    "REPORT_SECONDS",
    "STATUSES",
    "BackgroundWorker",
    "RateLimiter",
    "Worker",
    "dead_letters",
    "make_provider",
    "requeue",
    "requeue_all",
    "start_background",
    "stats",
]
