"""Run every TikaLine benchmark against its baseline, in one run, on this machine.

    python bench/run.py            # the full run (about 9 minutes on 2 cores)
    python bench/run.py --quick    # a smoke run of every section in a few minutes

It starts a fresh redis-server on a free port, the gateway and the bare baseline app under
the same gunicorn settings, loads the sample data scaled up, then measures: USSD hops and
inbound SMS against the bare route, a contended booking race with its audit, Redis cost per
hop / turn / booking, memory per appointment over 100,000 bookings, outbound SMS/s when
``bench/outbound.py`` is present, and the partitioned keys on one Redis and on a 3-master
cluster (``bench/cluster.py``, its own servers). It prints tables and writes
``bench/results.json``.
Everything runs on 127.0.0.1 and stops by itself.
"""
# ruff: noqa: E402  (the path must be set before the project's modules are imported)

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from bench import booking, data, load, scripts
from bench.common import (
    ROOT,
    SECRET_KEY,
    WEBHOOK_TOKEN,
    Gunicorn,
    RedisDelta,
    RedisServer,
    RedisSnapshot,
    knee,
    log,
)
from bench.targets import evaluate, tables

RESULTS = ROOT / "bench" / "results.json"
ROUNDS = 2  # alternations of baseline and gateway per concurrency level


def options(argv=None) -> argparse.Namespace:
    """Command-line options; the defaults are the full run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small numbers, every section")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (2 on 2 cores)")
    p.add_argument("--worker-class", default="sync")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--levels", default="1,4,16,64", help="concurrent clients per level")
    p.add_argument("--seconds", type=float, default=6.0, help="per level and server")
    p.add_argument("--race-clients", type=int, default=2000)
    p.add_argument("--bookings", type=int, default=100_000, help="bulk run for memory")
    p.add_argument(
        "--only", default="", help="comma list of sections: http,cost,race,memory,outbound,cluster"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the tables, with date and machine, to this file",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.levels, args.seconds = "1,8", 1.5
        args.race_clients, args.bookings = 400, 10_000
    args.levels = [int(x) for x in args.levels.split(",")]
    args.only = set(filter(None, args.only.split(",")))
    return args


def machine() -> dict:
    """What this run ran on, so a figure is never read without its machine."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


# -- setup ----------------------------------------------------------------------------------------


def prebook_today(store, scaled: dict, count: int, series: int = 75) -> list[tuple[str, str]]:
    """``count`` bookings for today at vaccinators' centres: (vaccinator, ref) for VERIFY and
    DOSE over SMS."""
    today = store.today()
    sessions = {s["centre_id"]: s for s in scaled["sessions"] if s["date"] == today}
    pairs = []
    vaccinators = [v for v in scaled["vaccinators"] if v["centre_id"] in sessions]
    for n in range(count):
        v = vaccinators[n % len(vaccinators)]
        s = sessions[v["centre_id"]]
        by = data.BIRTH_YEAR if s["max_age"] is None or s["max_age"] >= 40 else 2000
        by = 1970 if (s["min_age"] or 0) >= 45 else by
        outcome = store.book(
            mobile=booking.mobile(n, series),
            name=booking.person(n),
            birth_year=by,
            session_id=s["id"],
            slot=n % len(s["slots"]),
        )
        if not outcome.ok:
            raise RuntimeError(f"prebooking refused: {outcome}")
        pairs.append((v["phone"], outcome.value))
    return pairs


def status_mobiles(store, scaled: dict, count: int = 200, series: int = 69) -> list[str]:
    """Mobiles with one or two upcoming bookings each, whose STATUS shows a real slip."""
    plan = booking.bulk_plan(scaled, store.now().date())
    phones = []
    for n in range(count):
        phone = booking.mobile(n, series)
        for k in range(1 + n % 2):
            sid, slot = plan[(n * 2 + k) % len(plan)]
            outcome = store.book(
                mobile=phone,
                name=booking.person(n * 2 + k),
                birth_year=data.BIRTH_YEAR,
                session_id=sid,
                slot=slot,
            )
            if not outcome.ok:
                raise RuntimeError(f"status booking refused: {outcome}")
        phones.append(phone)
    return phones


def gateway_env(redis_url: str, instance: str) -> dict:
    """The gateway's production-like environment: a token, a fixed key, no simulator."""
    return {
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "INSTANCE_PATH": instance,
        "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SIMULATOR_ENABLED": "0",
        "TIMEZONE": "Asia/Kolkata",
        # the bare route logs nothing per request: keep the pair comparable with earlier runs
        "LOG_LEVEL": "WARNING",
    }


def in_process_app(redis_url: str, instance: str):
    """The real app in this process, for counting Redis round trips and profiling."""
    sys.path.insert(0, str(ROOT))
    from app import create_app
    from gateway.config import Settings

    settings = Settings.from_env(instance, env=gateway_env(redis_url, instance))
    return create_app({"SETTINGS": settings, "TESTING": True})


# -- HTTP: USSD hops and inbound SMS, ours against bare -----------------------------------------


def endpoint_present(base: str, path: str) -> bool:
    """Whether the gateway serves ``path`` yet (404 means it has not landed)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{base}{path}?token={WEBHOOK_TOKEN}", data=b"", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except urllib.error.HTTPError as exc:
        return exc.code not in (404, 405)
    return True


def http_section(args, rs: RedisServer, mix_inputs: dict, instance: str) -> dict:
    """USSD hops and inbound SMS at each concurrency level, bare and ours alternating per
    level so both see the same machine load."""
    out = {}
    common = {"workers": args.workers, "worker_class": args.worker_class, "threads": args.threads}
    client = rs.client()
    with (
        Gunicorn("bench.bare_app:create_app()", **common) as bare,
        Gunicorn("app:create_app()", env=gateway_env(rs.url, instance), **common) as ours,
    ):
        for name, path, bare_factory, ours_factory in (
            (
                "ussd",
                "/ussd",
                scripts.bare_ussd(),
                lambda level: lambda n: scripts.ussd_booking(n, series=60 + level),
            ),
            (
                "sms",
                "/sms/inbound",
                scripts.bare_sms,
                lambda level: scripts.SmsMix(
                    SECRET_KEY,
                    mix_inputs["vaccinations"][level],
                    mix_inputs["status_mobiles"],
                    series=90 + level,
                ),
            ),
        ):
            if not endpoint_present(ours.base, path):
                log(f"{path}: not served by the gateway yet, skipped")
                out[name] = {"skipped": f"{path} is not served by the gateway yet"}
                continue
            section = {"gunicorn": common, "levels": []}
            url_bare = f"{bare.base}{path}"
            url_ours = f"{ours.base}{path}?token={WEBHOOK_TOKEN}"
            load.run(url_bare, 4, bare_factory, seconds=min(1.0, args.seconds))  # warm
            load.run(url_ours, 4, ours_factory(0), seconds=min(1.0, args.seconds))
            for i, clients in enumerate(args.levels):
                factory = ours_factory(i + 1)
                bare_parts, ours_parts, deltas = [], [], []
                for _ in range(ROUNDS):  # bare, ours, bare, ours: drift hits both alike
                    bare_parts.append(
                        load.run(
                            url_bare,
                            clients,
                            bare_factory,
                            seconds=args.seconds / ROUNDS,
                            server_cpu=bare.cpu_seconds,
                        )
                    )
                    before = RedisSnapshot.take(client)
                    ours_parts.append(
                        load.run(
                            url_ours,
                            clients,
                            factory,
                            seconds=args.seconds / ROUNDS,
                            server_cpu=ours.cpu_seconds,
                        )
                    )
                    deltas.append(RedisSnapshot.take(client).since(before))
                b, o = load.merge(bare_parts), load.merge(ours_parts)
                delta = RedisDelta.total(deltas)
                row = {
                    "clients": clients,
                    "bare": b.summary(),
                    "ours": o.summary(),
                    "ratio": round(o.rate / b.rate, 3) if b.rate else None,
                    "redis_commands_per_request": round(delta.commands / max(o.requests, 1), 2),
                    "redis_cpu_ms_per_request": round(1000 * delta.cpu / max(o.requests, 1), 4),
                }
                section["levels"].append(row)
                log(
                    f"{name} c={clients}: bare {b.rate:,.0f}/s, ours {o.rate:,.0f}/s "
                    f"(p99 {row['ours']['p99_ms']} ms, errors {o.errors}, goals {o.goals})"
                )
            levels = [
                {"clients": r["clients"], "rate": r["ours"]["rate"]} for r in section["levels"]
            ]
            best = knee(levels)
            at_knee = next(r for r in section["levels"] if r["clients"] == best["clients"])
            section["knee"] = {
                "clients": best["clients"],
                "rate": at_knee["ours"]["rate"],
                "p99_ms": at_knee["ours"]["p99_ms"],
                "ratio": at_knee["ratio"],
            }
            peak_b = max(r["bare"]["rate"] for r in section["levels"])
            peak_o = max(r["ours"]["rate"] for r in section["levels"])
            section["peak"] = {
                "bare": peak_b,
                "ours": peak_o,
                "ratio": round(peak_o / peak_b, 3) if peak_b else None,
            }
            section["cpu_ratio"] = cpu_ratio(section["levels"])
            out[name] = section
        if "sms" in out and "levels" in out["sms"]:
            out["sms"]["effects"] = sms_effects(client)
    return out


def cpu_ratio(levels: list[dict]) -> float | None:
    """Server CPU per request, bare / ours, over all levels: the throughput ratio the two
    would reach if the servers alone limited them (the load generator shares the cores)."""

    def per_request(side: str) -> float:
        cpu = sum((r[side]["server_cpu_ms"] or 0) * r[side]["requests"] for r in levels)
        return cpu / max(sum(r[side]["requests"] for r in levels), 1)

    ours = per_request("ours")
    return round(per_request("bare") / ours, 3) if ours else None


def sms_effects(client: redis.Redis) -> dict:
    """What the SMS load really changed: bookings made by SMS, doses recorded."""

    booked = sum(1 for _ in client.scan_iter(match="tk:{p*}:benef:+919*", count=5000))
    vaccinated = 0
    for key in client.scan_iter(match="tk:{p*}:days:*", count=5000):
        counts = client.hgetall(key)
        vaccinated += sum(int(v) for f, v in counts.items() if f.endswith(b":vaccinated"))
    return {"mobiles_that_booked_by_sms": booked, "doses_recorded": vaccinated}


# -- the other sections ---------------------------------------------------------------------------


def cost_section(args, rs: RedisServer, mix_inputs: dict, instance: str) -> dict:
    """Round trips and commands per USSD hop and SMS turn, counted in-process; and where
    the time goes (pyinstrument)."""
    from bench import profiling, redis_cost

    app = in_process_app(rs.url, instance)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    out = {}
    n_ussd, n_sms = (30, 60) if args.quick else (60, 120)
    client = rs.client()
    if "/ussd" in rules:
        out["ussd_hop"] = redis_cost.per_request(
            app,
            client,
            f"/ussd?token={WEBHOOK_TOKEN}",
            lambda n: scripts.ussd_booking(n, series=80),
            n_ussd,
        )
        out["ussd_profile"] = profiling.profile(
            app,
            f"/ussd?token={WEBHOOK_TOKEN}",
            lambda n: scripts.ussd_booking(n + 10**5, series=80),
            n_ussd // 2,
            Path(tempfile.gettempdir()) / "tikaline-bench-ussd-profile.txt",
        )
        out["ussd_cpu"] = profiling.cpu_profile(
            app,
            f"/ussd?token={WEBHOOK_TOKEN}",
            lambda n: scripts.ussd_booking(n + 2 * 10**5, series=80),
            n_ussd // 2,
        )
    if "/sms/inbound" in rules:
        mix = scripts.SmsMix(
            SECRET_KEY, mix_inputs["vaccinations"]["cost"], mix_inputs["status_mobiles"], series=88
        )
        out["sms_turn"] = redis_cost.per_request(
            app, client, f"/sms/inbound?token={WEBHOOK_TOKEN}", mix, n_sms
        )
        mix = scripts.SmsMix(
            SECRET_KEY,
            mix_inputs["vaccinations"]["profile"],
            mix_inputs["status_mobiles"],
            series=89,
        )
        out["sms_profile"] = profiling.profile(
            app,
            f"/sms/inbound?token={WEBHOOK_TOKEN}",
            mix,
            n_sms // 2,
            Path(tempfile.gettempdir()) / "tikaline-bench-sms-profile.txt",
        )
        mix = scripts.SmsMix(
            SECRET_KEY, mix_inputs["vaccinations"]["cpu"], mix_inputs["status_mobiles"], series=87
        )
        out["sms_cpu"] = profiling.cpu_profile(
            app, f"/sms/inbound?token={WEBHOOK_TOKEN}", mix, n_sms // 2
        )
    return out


def outbound_section(args) -> dict:
    """The outbound worker's SMS/s through the real SDK to a local fake API, when its
    benchmark exists."""
    if importlib.util.find_spec("bench.outbound") is None:
        return {"skipped": "bench/outbound.py is not there yet"}
    from bench import outbound

    runner = getattr(outbound, "measure", None) or getattr(outbound, "run", None)
    if runner is None:
        return {"skipped": "bench/outbound.py has no measure() or run()"}
    with contextlib.redirect_stdout(sys.stderr):  # its own table: progress, not the report
        return runner(quick=args.quick)


def cluster_section(args) -> dict:
    """Partitioned keys on one Redis and on a 3-master cluster (its own servers)."""
    from bench import cluster

    return cluster.run(cluster.SCALES["quick" if args.quick else "full"])


def markdown(results: dict) -> str:
    """The run as Markdown: when, on what, then every table."""
    m = results["machine"]
    head = (
        f"Measured {results['date']} on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_mb']:,} MB, Linux {m['kernel']}, Python {m['python']}, "
        f"Redis {m.get('redis', '?')}; load average {' '.join(m['loadavg_at_start'])} at "
        f"start; the run took {results['duration_s']:.0f} s.\n\n"
    )
    return head + "\n\n".join(t.render() for t in tables(results)) + "\n"


def run_sections(args, wanted: set, results: dict, instance: str) -> None:
    """Set up Redis and the data, then run each wanted section into ``results``."""
    with RedisServer() as rs:
        results["machine"]["redis"] = rs.client().info("server")["redis_version"]
        store = booking._store(rs.url)
        today = store.now().date()
        scaled, race = data.scaled(today), data.race(today, sessions=2 if args.quick else 10)
        data.load_all(store, scaled, race)
        per_level = 400 if args.quick else 2500
        mix_inputs = {
            "vaccinations": {
                key: prebook_today(
                    store, scaled, per_level if isinstance(key, int) else 400, series=71 + i
                )
                for i, key in enumerate([*range(len(args.levels) + 1), "cost", "profile", "cpu"])
            },
            "status_mobiles": status_mobiles(store, scaled),
        }
        log(
            f"data loaded: {len(scaled['sessions'])} sessions, "
            f"{sum(len(v) for v in mix_inputs['vaccinations'].values()):,} bookings for today"
        )
        if "http" in wanted:
            results["http"] = http_section(args, rs, mix_inputs, instance)
        if "cost" in wanted:
            log("redis cost per hop and turn, and profiles")
            results["redis_cost"] = cost_section(args, rs, mix_inputs, instance)
        if "race" in wanted:
            log(
                f"race: {args.race_clients:,} clients for "
                f"{sum(len(s['slots']) for s in race['sessions'])} slots"
            )
            results["race"] = booking.race(rs.url, rs.client(), race, clients=args.race_clients)
        if "memory" in wanted:
            rs.flush()
            data.load_all(store, scaled)
            log(f"memory: {args.bookings:,} bookings")
            checkpoints = sorted({min(10_000, args.bookings), args.bookings})
            memory = booking.bulk(
                rs.url, rs.client(), booking.bulk_plan(scaled, today), checkpoints=checkpoints
            )
            log("memory: the outbox worker delivers 10,000 code SMS")
            delivered = booking.deliver(rs.url, rs.client(), min(10_000, args.bookings))
            delivered["bytes_per_appointment_after_delivery"] = round(
                memory["checkpoints"][-1]["bytes_per_appointment"]
                + delivered["bytes_per_delivered_sms"],
                1,
            )
            results["memory"] = memory | {"after_delivery": delivered}
    if "outbound" in wanted:
        log("outbound")
        results["outbound"] = outbound_section(args)
    if "cluster" in wanted:
        log("cluster: one Redis, then a cluster of 3 masters")
        results["cluster"] = cluster_section(args)


def main(argv=None) -> int:
    """Run the sections asked for (all by default), print the tables, write the results."""
    args = options(argv)
    wanted = args.only or {"http", "cost", "race", "memory", "outbound", "cluster"}
    started = time.monotonic()
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "levels": args.levels,
            "seconds_per_level": args.seconds,
            "workers": args.workers,
            "worker_class": args.worker_class,
            "threads": args.threads,
            "quick": args.quick,
        },
    }
    instance = tempfile.mkdtemp(prefix="tikaline-bench-instance-")
    try:
        run_sections(args, wanted, results, instance)
    finally:
        shutil.rmtree(instance, ignore_errors=True)
    results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["targets"] = evaluate(results)
    results["duration_s"] = round(time.monotonic() - started, 1)
    for table in tables(results):
        print(table.render(), end="\n\n")
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results))
    log(f"done in {results['duration_s']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
