"""Booking straight through the store: the contended race with its audit, and the bulk run
that measures memory, Redis CPU and round trips per appointment.

Clients run in separate processes (spawned, each with its own connection pool and threads),
because the promise is "never more bookings than capacity across any number of processes".
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
import time
from collections import Counter, defaultdict, deque
from datetime import date, datetime
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import redis

from bench.common import SECRET_KEY, RedisSnapshot, RoundTrips, log
from bench.data import BIRTH_YEAR
from flows import lifecycle
from gateway.config import Settings
from gateway.providers.result import SENT, SendResult
from gateway.store import Store, keys, name_key
from gateway.store.redisconn import from_url

FIRST = [
    "Asha",
    "Ravi",
    "Sunita",
    "Mohammed",
    "Priya",
    "Arjun",
    "Kavita",
    "Imran",
    "Lakshmi",
    "Vikram",
    "Meena",
    "Suresh",
    "Fatima",
    "Rahul",
    "Anita",
    "Deepak",
]
LAST = ["Devi", "Kumar", "Sharma", "Khan", "Verma", "Singh", "Yadav", "Gupta", "Iyer", "Das"]


def person(n: int) -> str:
    """A realistic beneficiary name, distinct for every n, in letters only (as a name field
    accepts)."""
    tag, rest = "", n
    while True:
        rest, digit = divmod(rest, 26)
        tag = "abcdefghijklmnopqrstuvwxyz"[digit] + tag
        if not rest:
            break
    return f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST)) % len(LAST)]} {tag.capitalize()}"


def mobile(n: int, series: int = 70) -> str:
    """A distinct E.164 Indian mobile for every n below 10^8."""
    return f"+91{series}{n:08d}"


def _morning() -> float:
    """08:00 today in Asia/Kolkata: before every slot, so the bench books today's slots
    whatever the hour it runs (a slot whose end has come is refused)."""
    tz = ZoneInfo("Asia/Kolkata")
    return datetime.combine(datetime.now(tz).date(), dt_time(8), tz).timestamp()


def _store(url: str) -> Store:
    settings = Settings(
        redis_url=url, secret_key=SECRET_KEY, timezone="Asia/Kolkata", clock=_morning
    )
    return Store(from_url(url, socket_timeout=30, max_connections=None), settings, lifecycle)


# -- the race -----------------------------------------------------------------------------------


def _race_worker(url, slots, clients, threads, tries, barrier, out) -> None:
    store = _store(url)
    store.r.ping()
    outcomes: Counter = Counter()
    booked_at: list[float] = []
    lock = threading.Lock()
    todo = deque(clients)

    def client_loop() -> None:
        while True:
            with lock:
                if not todo:
                    return
                n = todo.popleft()
            # A person tries a preferred slot, then the next ones, as a full screen invites.
            for k in range(tries):
                sid, slot = slots[(n + k) % len(slots)]
                result = store.book(
                    mobile=mobile(n),
                    name=person(n),
                    birth_year=BIRTH_YEAR,
                    session_id=sid,
                    slot=slot,
                )
                with lock:
                    outcomes[result.status] += 1
                    if result.ok:
                        booked_at.append(time.time())
                if result.status != "full":
                    break

    started = _run_threads(client_loop, threads, barrier)
    out.put(
        {
            "started": started,
            "ended": time.time(),
            "outcomes": dict(outcomes),
            "last_booking": max(booked_at, default=started),
        }
    )


def _run_threads(target, threads: int, barrier) -> float:
    """Run ``threads`` copies of ``target`` once every process is ready; when they started."""
    pool = [threading.Thread(target=target) for _ in range(threads)]
    barrier.wait()
    started = time.time()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return started


def _bare_worker(url, calls, threads, barrier, out) -> None:
    client = from_url(url, socket_timeout=30)
    script = client.register_script("return 1")
    script()
    per_thread = calls // threads

    def loop() -> None:
        for _ in range(per_thread):
            script()

    started = _run_threads(loop, threads, barrier)
    out.put({"started": started, "ended": time.time(), "calls": per_thread * threads})


def _spawn(target, per_process_args: list[tuple]) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(per_process_args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for args in per_process_args]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
        if p.exitcode != 0:
            raise RuntimeError(f"bench worker exited with {p.exitcode}")
    return results


def race(
    url: str,
    client: redis.Redis,
    race_data: dict,
    *,
    clients: int = 2000,
    processes: int = 4,
    threads: int = 25,
    tries: int = 3,
    double_tap: float = 0.1,
) -> dict:
    """``clients`` people race for the race centre's slots from ``processes`` processes, each
    trying up to ``tries`` slots; a ``double_tap`` share of them sends the same requests from
    two processes at once, as a telco or Africa's Talking retry would. Then audit what was
    written."""
    slots = [(s["id"], i) for s in race_data["sessions"] for i in range(len(s["slots"]))]
    capacity = sum(slot["capacity"] for s in race_data["sessions"] for slot in s["slots"])
    assignments: list[list[int]] = [[] for _ in range(processes)]
    taps = int(clients * double_tap)
    for n in range(taps):  # first in both queues, so the two copies really race
        assignments[n % processes].append(n)
        assignments[(n + 1) % processes].append(n)
    for n in range(taps, clients):
        assignments[n % processes].append(n)
    since = _outbox_tails(client)
    before = RedisSnapshot.take(client)
    runs = _spawn(_race_worker, [(url, slots, a, threads, tries) for a in assignments])
    after = RedisSnapshot.take(client)
    started = min(r["started"] for r in runs)
    seconds = max(r["ended"] for r in runs) - started
    fill = max(r["last_booking"] for r in runs) - started
    outcomes: Counter = Counter()
    for r in runs:
        outcomes.update(r["outcomes"])
    attempts = sum(outcomes.values())
    audit = audit_race(client, race_data, since)
    # Every "ok" the store answered must be an appointment the audit found, and back.
    audit["confirmed_but_missing"] = abs(outcomes.get("ok", 0) - audit["booked"])
    delta = after.since(before)
    bare_calls = attempts
    bare = _spawn(_bare_worker, [(url, bare_calls // processes, threads)] * processes)
    bare_seconds = max(r["ended"] for r in bare) - min(r["started"] for r in bare)
    bare_rate = sum(r["calls"] for r in bare) / bare_seconds
    return {
        "clients": clients,
        "double_taps": taps,
        "processes": processes,
        "threads_per_process": threads,
        "slots": len(slots),
        "capacity": capacity,
        "attempts": attempts,
        "outcomes": dict(outcomes),
        "seconds": round(seconds, 3),
        "bookings": audit["booked"],
        "seconds_to_fill": round(fill, 3),
        # Bookings happen until the slots are full; refusals after that are timed apart.
        "bookings_per_s": round(audit["booked"] / fill, 1) if fill > 0 else None,
        "attempts_per_s": round(attempts / seconds, 1),
        "bare_evalsha_per_s": round(bare_rate, 1),
        "ratio_attempts_to_bare": round(attempts / seconds / bare_rate, 3),
        "redis_commands_per_attempt": round(delta.commands / attempts, 2),
        "redis_cpu_s": round(delta.cpu, 3),
        "audit": audit,
    }


def _outbox_tails(client: redis.Redis) -> dict[int, str]:
    """The last entry id of each partition's outbox stream ("0-0" for an empty one)."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrevrange(keys.outbox(p), count=1)
        lasts = pipe.execute()
    return {p: last[0][0].decode() if last else "0-0" for p, last in enumerate(lasts)}


def _outbox_after(client: redis.Redis, since: dict[int, str]) -> list[dict[str, str]]:
    """The fields of every outbox entry queued after ``since`` (per partition), all streams."""
    with client.pipeline(transaction=False) as pipe:
        for p in range(keys.PARTITIONS):
            pipe.xrange(keys.outbox(p), min=f"({since.get(p, '0-0')}")
        streams = pipe.execute()
    return [{k.decode(): v.decode() for k, v in f.items()} for s in streams for _, f in s]


def audit_race(client: redis.Redis, race_data: dict, since: dict[int, str] | None = None) -> dict:
    """Overbooked slots, duplicate bookings and the code SMS of each booking, from what Redis
    holds: appointments, session counters and the outbox streams (entries after ``since``,
    each partition's last id before the race)."""
    caps, counters = {}, {}
    for s in race_data["sessions"]:
        raw = client.hgetall(keys.session(s["centre_id"], s["id"]))
        for i, slot in enumerate(s["slots"]):
            caps[(s["id"], str(i))] = slot["capacity"]
            counters[(s["id"], str(i))] = int(raw.get(f"booked:{i}".encode(), 0))
    per_slot: Counter = Counter()
    per_person: defaultdict = defaultdict(list)
    refs = set()
    for key in client.scan_iter(match="tk:{p*}:appt:*", count=2000):
        appt = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        # By session, the field an appointment cannot do without (others may be derived).
        if (appt.get("sid"), appt.get("slot")) not in caps:
            continue
        if appt.get("state", "booked") != "booked":
            continue
        ref = key.decode().rsplit(":", 1)[1]
        refs.add(ref)
        per_slot[(appt["sid"], appt["slot"])] += 1
        per_person[(appt["mobile"], name_key(appt["name"]))].append(ref)
    code_sms: Counter = Counter()
    message_keys: Counter = Counter()
    for fields in _outbox_after(client, since or {}):
        if fields["t"] == "sms.booked":
            code_sms[json.loads(fields["p"])["ref"]] += 1
            message_keys[fields["k"]] += 1
    return {
        "booked": len(refs),
        "overbooked_slots": sum(1 for k, n in per_slot.items() if n > caps[k]),
        "overbooked": sum(max(0, n - caps[k]) for k, n in per_slot.items()),
        "counter_mismatches": sum(1 for k in caps if counters[k] != per_slot.get(k, 0)),
        "duplicate_bookings": sum(len(v) - 1 for v in per_person.values() if len(v) > 1),
        "bookings_without_one_code_sms": sum(1 for ref in refs if code_sms.get(ref) != 1),
        "code_sms_without_booking": sum(1 for ref in code_sms if ref not in refs),
        "duplicate_message_keys": sum(1 for n in message_keys.values() if n > 1),
        "full_slots": sum(1 for k, n in per_slot.items() if n == caps[k]),
    }


# -- the bulk run: memory and Redis cost per appointment ------------------------------------------


def bulk_plan(data: dict, today: date) -> list[tuple[str, int]]:
    """Every (session, slot) a beneficiary born in BIRTH_YEAR may book, round-robin order."""
    plan = []
    for s in data["sessions"]:
        age = int(s["date"][:4]) - BIRTH_YEAR
        if s["min_age"] is not None and age < s["min_age"]:
            continue
        if s["max_age"] is not None and age > s["max_age"]:
            continue
        plan.extend((s["id"], i) for i in range(len(s["slots"])))
    return plan


def _bulk_worker(url, plan, numbers, barrier, out) -> None:
    store = _store(url)
    store.r.ping()
    refused: Counter = Counter()
    barrier.wait()
    started = time.time()
    with RoundTrips() as trips:
        for n in numbers:
            # 1, 2, 3 or 4 beneficiaries per mobile (2.5 on average), as families book.
            group, member = divmod(n, 10)
            member_mobile = mobile(
                group * 4 + (0 if member < 1 else 1 if member < 3 else 2 if member < 6 else 3),
                series=80,
            )
            sid, slot = plan[n % len(plan)]
            result = store.book(
                mobile=member_mobile,
                name=person(n),
                birth_year=BIRTH_YEAR,
                session_id=sid,
                slot=slot,
            )
            if not result.ok:
                refused[result.status] += 1
    out.put(
        {
            "started": started,
            "ended": time.time(),
            "round_trips": trips.count,
            "refused": dict(refused),
            "count": len(numbers),
        }
    )


def bulk(
    url: str, client: redis.Redis, plan: list, *, checkpoints=(10_000, 100_000), processes: int = 2
) -> dict:
    """Book up to each checkpoint in turn and record used_memory, commands, CPU and round
    trips per booking at each."""
    base = RedisSnapshot.take(client)
    done, figures = 0, []
    trips = bookings = 0
    seconds = 0.0
    for target in checkpoints:
        numbers = list(range(done, target))
        chunks = [numbers[i::processes] for i in range(processes)]
        runs = _spawn(_bulk_worker, [(url, plan, chunk) for chunk in chunks])
        refused = Counter()
        for r in runs:
            refused.update(r["refused"])
            trips += r["round_trips"]
        if refused:
            raise RuntimeError(f"bulk bookings refused: {dict(refused)}")
        seconds += max(r["ended"] for r in runs) - min(r["started"] for r in runs)
        done = bookings = target
        delta = RedisSnapshot.take(client).since(base)
        figures.append(
            {
                "bookings": bookings,
                "bytes_per_appointment": round(delta.memory / bookings, 1),
                "used_memory_delta": delta.memory,
                "redis_commands_per_booking": round(delta.commands / bookings, 2),
                "round_trips_per_booking": round(trips / bookings, 3),
                "redis_cpu_s_per_1000": round(delta.cpu / bookings * 1000, 4),
                "bookings_per_s": round(bookings / seconds, 1),
                "top_commands": {k: round(v / bookings, 2) for k, v in delta.top(8).items()},
            }
        )
        log(f"bulk: {bookings:,} bookings, {figures[-1]['bytes_per_appointment']} B each")
    return {"checkpoints": figures, "breakdown": memory_breakdown(client, bookings)}


def memory_breakdown(client: redis.Redis, appointments: int, sample: int = 200) -> dict:
    """Bytes per appointment by kind of key (``appt``, ``benef``, ``outbox``…), from MEMORY
    USAGE of a sample of each kind, to show where the bytes per appointment go."""
    kinds: defaultdict = defaultdict(lambda: {"keys": 0, "sampled": []})
    for key in client.scan_iter(match="tk:*", count=5000):
        kind = key.decode().split("}:", 1)[1].split(":", 1)[0]
        entry = kinds[kind]
        entry["keys"] += 1
        if len(entry["sampled"]) < sample:
            entry["sampled"].append(client.memory_usage(key, samples=0) or 0)
    per_kind = {}
    for kind, entry in kinds.items():
        total = sum(entry["sampled"]) / len(entry["sampled"]) * entry["keys"]
        per_kind[kind] = {
            "keys": entry["keys"],
            "bytes_per_appointment": round(total / appointments, 1),
        }
    per_kind = dict(sorted(per_kind.items(), key=lambda kv: -kv[1]["bytes_per_appointment"]))
    return {
        "by_kind": per_kind,
        "sum_of_keys": round(sum(k["bytes_per_appointment"] for k in per_kind.values()), 1),
    }


# -- after delivery: what the code SMS leaves behind --------------------------------------------


class InstantProvider:
    """A provider that accepts every SMS at once with an Africa's Talking-shaped message id,
    so only the worker's own Redis bookkeeping is measured."""

    def __init__(self):
        self._ids = itertools.count()

    def send(self, to: str, text: str, entry: dict) -> SendResult:
        return SendResult(SENT, message_id=f"ATXid_{next(self._ids):032x}", detail="101 Success")


def deliver(
    url: str, client: redis.Redis, count: int, *, concurrency: int = 8, timeout: float = 120.0
) -> dict:
    """Let the real outbox worker deliver ``count`` queued SMS through ``InstantProvider`` and
    measure the memory each delivered message adds (status hash, provider id) or frees (its
    outbox entry)."""
    from gateway.outbox import Worker, counters

    settings = Settings(redis_url=url, secret_key=SECRET_KEY, timezone="Asia/Kolkata")
    worker_client = from_url(url, socket_timeout=30)
    worker = Worker(
        worker_client, settings, InstantProvider(), concurrency=concurrency, rate=0, idle=0.2
    )
    sent0 = counters(client)["sent"]
    before = RedisSnapshot.take(client)
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.monotonic()
    thread.start()
    stop = threading.Event()
    while time.monotonic() - started < timeout:
        if counters(client)["sent"] - sent0 >= count:
            break
        stop.wait(0.2)  # polling a counter another thread moves: there is no event to await
    worker.stop()
    thread.join(30)
    seconds = time.monotonic() - started
    sent = counters(client)["sent"] - sent0
    delta = RedisSnapshot.take(client).since(before)
    worker_client.close()
    kinds = memory_breakdown(client, max(sent, 1))["by_kind"]
    return {
        "sent": sent,
        "seconds": round(seconds, 2),
        "sms_per_s_instant_provider": round(sent / seconds, 1) if seconds else None,
        "bytes_per_delivered_sms": round(delta.memory / max(sent, 1), 1),
        # Less this loop's polling of the counters (an HGETALL per partition).
        "redis_commands_per_sms": round(
            (delta.commands - delta.calls.get("hgetall", 0)) / max(sent, 1), 2
        ),
        "left_per_sms": {
            k: v["bytes_per_appointment"] for k, v in kinds.items() if k in ("msg", "pmid")
        },
    }
