"""Open bookings whose day is over become missed, in Redis, without anyone looking.

Each bucket keeps its open bookings in a sorted set scored by their day (``keys.open_by_day``:
``book`` adds a booking, ``cancel``, ``dose``, a session's cancel and this sweep take it out),
so the sweep reads only the bookings of past days: one pipelined range per bucket, then one
``miss`` script per centre with bookings to close. The script marks them missed, counts them
in the centre's day (``<date>:missed``) and queues the one "book again" SMS in the same step;
then each person's record on their mobile follows (``person``, the mobile's bucket). A crash
between the two is healed as any stale record is: the next booking on that mobile settles it.

Several workers may sweep at once: a booking already missed is left as it is and queues
nothing, so each citizen is told once. After a long downtime the bookings of every past day
are marked, but only those of the last ``NOTIFY_DAYS`` days are told (an offer to book again
for a day a week gone reads as noise).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.store import keys, replies
from gateway.store.people import name_key
from gateway.store.redisconn import Client
from gateway.store.scripts import scripts_for

NOTIFY_DAYS = 2  # bookings of yesterday and the day before are told; older ones only marked
BATCH = 200  # bookings per bucket per sweep, and per script call


@dataclass(frozen=True)
class Closed:
    """One booking the ``miss`` script looked at: its state now and whether it was told."""

    ref: str
    state: str
    mobile: str
    name: str
    told: bool


def sweep(client: Client, open_states: Sequence[str], now: datetime) -> tuple[int, int]:
    """Mark missed every open booking of a day before ``now``'s (local) day, a batch per
    bucket; (missed, told) by this call."""
    score = int(f"{now:%Y%m%d}")
    with client.pipeline(transaction=False) as pipe:
        for partition in range(keys.PARTITIONS):
            pipe.zrangebyscore(keys.open_by_day(partition), "-inf", f"({score}", 0, BATCH)
        due = pipe.execute()
    closed: list[Closed] = []
    for partition, members in enumerate(due):
        refs = replies.members(members)
        if refs:
            closed += close_partition(client, partition, refs, open_states, now)
    missed = [c for c in closed if c.state == "missed"]
    return len(missed), sum(c.told for c in missed)


def close_one(client: Client, ref: str, open_states: Sequence[str], now: datetime) -> str:
    """Run ``miss`` on one booking a person's record meets (an open booking whose day is
    over, as the record says): its state now; ``missed`` when no appointment is behind it."""
    closed = close_partition(client, keys.ref_partition(ref), [ref], open_states, now)
    return closed[0].state if closed else "missed"


def close_partition(
    client: Client, partition: int, refs: list[str], open_states: Sequence[str], now: datetime
) -> list[Closed]:
    """Run ``miss`` on ``refs`` of one bucket, a call per centre, and settle their people."""
    with client.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.hget(keys.appointment(ref), "centre")
        centres = [replies.optional_text(c) for c in pipe.execute()]
    by_centre: dict[str, list[str]] = defaultdict(list)
    for ref, centre in zip(refs, centres, strict=True):
        if centre is None:  # no appointment behind it: only the listing was left
            client.zrem(keys.open_by_day(partition), ref)
        else:
            by_centre[centre].append(ref)
    closed = [
        c for cid, group in by_centre.items() for c in _miss(client, cid, group, open_states, now)
    ]
    settle_people(client, [c for c in closed if c.state == "missed"], "missed")
    return closed


def _miss(
    client: Client, centre_id: str, refs: list[str], open_states: Sequence[str], now: datetime
) -> list[Closed]:
    partition = keys.partition_of(centre_id)
    notify_from = (now.date() - timedelta(days=NOTIFY_DAYS)).isoformat()
    reply = scripts_for(client)["miss"](
        keys=[
            keys.open_by_day(partition),
            keys.days(centre_id),
            keys.centre(centre_id),
            keys.outbox(partition),
            keys.sms_counts(partition),
            *[keys.appointment(ref) for ref in refs],
        ],
        args=[
            ",".join(open_states),
            now.date().isoformat(),
            notify_from,
            centre_id,
            int(now.timestamp()),
            *refs,
        ],
    )
    flat = [replies.text(x) for x in reply]
    return [
        Closed(ref, state, mobile, name, told == "1")
        for ref, state, mobile, name, told in zip(*[iter(flat)] * 5, strict=True)
    ]


def settle_people(client: Client, closed: list[Closed], state: str) -> None:
    """Each person's record on their mobile follows their appointment (``person``, in the
    mobile's bucket: a call each)."""
    person = scripts_for(client)["person"]
    for c in closed:
        person(keys=[keys.beneficiaries(c.mobile)], args=[name_key(c.name), c.ref, state])
