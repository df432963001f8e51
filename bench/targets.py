"""The benchmark's targets checked against a run's results, and the tables the run prints."""

from __future__ import annotations

from bench.common import Table

NAN = float("nan")


def _get(results: dict, *path, default=None):
    node = results
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
            node = node[key]
        else:
            return default
    return node


def outbound_rates(results: dict) -> dict[int, float]:
    """SMS/s by concurrency from the outbound benchmark, whatever its exact shape."""
    out = results.get("outbound") or {}
    rows = out.get("levels") or out.get("results") or out.get("concurrency") or []
    if isinstance(rows, dict):
        rows = [
            {"concurrency": int(k), **(v if isinstance(v, dict) else {"sms_per_s": v})}
            for k, v in rows.items()
        ]
    rates = {}
    for row in rows if isinstance(rows, list) else []:
        conc = row.get("concurrency", row.get("clients"))
        rate = next(
            (row[k] for k in ("sms_per_s", "sms_per_second", "rate", "per_s") if k in row), None
        )
        if conc is not None and rate is not None:
            rates[int(conc)] = float(rate)
    return rates


def evaluate(results: dict) -> list[dict]:
    """Each target with its measured figure and whether it is met (None: not measured)."""
    rows = []

    def add(figure, target, measured, ok):
        rows.append(
            {
                "figure": figure,
                "target": target,
                "measured": measured,
                "met": None if measured is None else bool(ok(measured)),
            }
        )

    for name, label in (("ussd", "USSD hops/s"), ("sms", "inbound SMS/s")):
        add(
            f"{label}, ours / bare (peak)",
            ">= 0.5",
            _get(results, "http", name, "peak", "ratio"),
            lambda v: v >= 0.5,
        )
        add(
            f"{label}, ours / bare (server CPU per request)",
            ">= 0.5",
            _get(results, "http", name, "cpu_ratio"),
            lambda v: v >= 0.5,
        )
        add(
            f"{label}: p99 at the knee, ms",
            "<= 50",
            _get(results, "http", name, "knee", "p99_ms"),
            lambda v: v <= 50,
        )
    add(
        "Redis round trips per USSD hop (mean)",
        "<= 3",
        _get(results, "redis_cost", "ussd_hop", "round_trips_per_request"),
        lambda v: v <= 3,
    )
    add(
        "Redis round trips per USSD hop (worst hop)",
        "<= 3",
        _get(results, "redis_cost", "ussd_hop", "max_round_trips_in_one_request"),
        lambda v: v <= 3,
    )
    add(
        "Redis round trips per booking (store)",
        "<= 2",
        _get(results, "memory", "checkpoints", -1, "round_trips_per_booking"),
        lambda v: v <= 2,
    )
    add(
        "bytes of Redis memory per appointment",
        "<= 600",
        _get(results, "memory", "checkpoints", -1, "bytes_per_appointment"),
        lambda v: v <= 600,
    )
    rates = outbound_rates(results)
    add(
        "outbound SMS/s, one worker process (best concurrency)",
        ">= 500",
        max(rates.values()) if rates else None,
        lambda v: v >= 500,
    )
    audit = _get(results, "race", "audit") or {}
    add("race: overbooked", "0", audit.get("overbooked"), lambda v: v == 0)
    add("race: duplicate bookings", "0", audit.get("duplicate_bookings"), lambda v: v == 0)
    add(
        "race: bookings confirmed but not in Redis (or the reverse)",
        "0",
        audit.get("confirmed_but_missing"),
        lambda v: v == 0,
    )
    if audit:
        wrong_sms = (
            audit["bookings_without_one_code_sms"]
            + audit["code_sms_without_booking"]
            + audit["duplicate_message_keys"]
        )
    else:
        wrong_sms = None
    add("race: bookings without exactly one code SMS", "0", wrong_sms, lambda v: v == 0)
    return rows


def tables(results: dict) -> list[Table]:
    """The printed (and README) tables of a run."""
    out = []
    for name, title, unit in (
        ("ussd", "USSD booking journeys over /ussd", "hops/s"),
        ("sms", "Inbound SMS over /sms/inbound (STATUS, BOOK, VERIFY, DOSE)", "msgs/s"),
    ):
        section = _get(results, "http", name) or {}
        if "levels" not in section:
            if section:
                out.append(Table(title, ["note"], [[section.get("skipped", "not run")]]))
            continue
        t = Table(
            f"{title}: gateway vs bare Flask route, same gunicorn "
            f"({section['gunicorn']['workers']} {section['gunicorn']['worker_class']} "
            f"workers)",
            [
                "clients",
                f"bare {unit}",
                f"ours {unit}",
                "ratio",
                "ours p50 ms",
                "ours p95 ms",
                "ours p99 ms",
                "bare p99 ms",
                "CPU ms/req ours",
                "CPU ms/req bare",
                "errors",
                "goals",
            ],
        )
        for r in section["levels"]:
            t.add(
                r["clients"],
                r["bare"]["rate"],
                r["ours"]["rate"],
                r["ratio"],
                r["ours"]["p50_ms"],
                r["ours"]["p95_ms"],
                r["ours"]["p99_ms"],
                r["bare"]["p99_ms"],
                r["ours"]["server_cpu_ms"] or NAN,
                r["bare"]["server_cpu_ms"] or NAN,
                r["ours"]["errors"],
                r["ours"]["goals"],
            )
        out.append(t)
    race = results.get("race")
    if race:
        a = race["audit"]
        t = Table(
            "Contended booking (store, separate processes)",
            [
                "clients",
                "slots x cap",
                "booked",
                "s to fill",
                "bookings/s",
                "attempts/s",
                "bare EVALSHA/s",
                "ratio",
                "overbooked",
                "duplicates",
                "code SMS != 1",
            ],
        )
        t.add(
            race["clients"],
            f"{race['slots']} x {race['capacity'] // race['slots']}",
            a["booked"],
            race["seconds_to_fill"],
            race["bookings_per_s"] or NAN,
            race["attempts_per_s"],
            race["bare_evalsha_per_s"],
            race["ratio_attempts_to_bare"],
            a["overbooked"],
            a["duplicate_bookings"],
            a["bookings_without_one_code_sms"] + a["code_sms_without_booking"],
        )
        out.append(t)
    cost = results.get("redis_cost") or {}
    mem = _get(results, "memory", "checkpoints", -1)
    if cost or mem:
        t = Table(
            "Redis cost",
            ["per", "round trips (mean)", "round trips (worst)", "commands", "Redis CPU ms"],
        )
        for key, label in (("ussd_hop", "USSD hop"), ("sms_turn", "SMS turn")):
            c = cost.get(key)
            if c:
                t.add(
                    label,
                    c["round_trips_per_request"],
                    c["max_round_trips_in_one_request"],
                    c["commands_per_request"],
                    c["redis_cpu_ms_per_request"],
                )
        if mem:
            t.add(
                "booking (store.book)",
                mem["round_trips_per_booking"],
                "-",
                mem["redis_commands_per_booking"],
                mem["redis_cpu_s_per_1000"],
            )
        out.append(t)
    for key, label in (("ussd_cpu", "a USSD hop"), ("sms_cpu", "an SMS turn")):
        prof = cost.get(key)
        if not prof:
            continue
        t = Table(
            f"Where the CPU of {label} goes (cProfile, share of the request's CPU)",
            ["function", "calls/request", "share"],
        )
        rows = sorted(
            prof["gateway_cumulative"] + prof["library_cumulative"], key=lambda r: -r["share"]
        )
        for row in rows[:16]:
            t.add(row["function"], row["calls_per_request"], f"{row['share']:.0%}")
        out.append(t)
    if results.get("memory"):
        t = Table(
            "Memory and Redis CPU per appointment (bulk booking, 1-4 beneficiaries per mobile)",
            ["bookings", "bytes/appointment", "Redis CPU s per 1,000", "bookings/s (2 processes)"],
        )
        for c in results["memory"]["checkpoints"]:
            t.add(
                c["bookings"],
                c["bytes_per_appointment"],
                c["redis_cpu_s_per_1000"],
                c["bookings_per_s"],
            )
        after = results["memory"].get("after_delivery")
        if after:
            t.add(
                f"... once {after['sent']:,} code SMS are delivered",
                after["bytes_per_appointment_after_delivery"],
                "-",
                f"{after['sms_per_s_instant_provider']:,.0f} SMS/s delivered (instant provider)",
            )
        out.append(t)
        by_kind = results["memory"]["breakdown"]["by_kind"]
        t = Table(
            "Where the bytes go (MEMORY USAGE, per appointment)",
            ["key kind", "keys", "bytes/appointment"],
        )
        for kind, v in list(by_kind.items())[:6]:
            t.add(kind, v["keys"], v["bytes_per_appointment"])
        out.append(t)
    rates = outbound_rates(results)
    if rates and "default" in results["outbound"]:
        from bench.outbound import table  # its own table knows its transports and caps

        out.append(table(results["outbound"]))
    elif rates:
        t = Table(
            "Outbound SMS through the real SDK to a local fake API (one worker process)",
            ["concurrency", "SMS/s"],
        )
        for conc, rate in sorted(rates.items()):
            t.add(conc, rate)
        out.append(t)
    elif results.get("outbound"):
        out.append(Table("Outbound", ["note"], [[results["outbound"].get("skipped", "-")]]))
    if results.get("cluster"):
        from bench import cluster  # its own tables know both topologies

        out.extend(cluster.tables(results["cluster"]))
    t = Table("Targets", ["figure", "target", "measured", "met"])
    for row in results.get("targets", []):
        measured = NAN if row["measured"] is None else row["measured"]
        t.add(
            row["figure"],
            row["target"],
            measured,
            {True: "yes", False: "NO", None: "not measured"}[row["met"]],
        )
    out.append(t)
    return out
