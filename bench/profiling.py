"""Where a request's time goes: pyinstrument over scripts played through Flask's test client.

The profile runs in this process (a sampling profiler attached from outside cannot read the
workers' memory on this machine), so it shows the gateway's own code — parsing, flows, store
calls, Redis waits — without gunicorn and sockets, which the bare baseline already prices.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from bench.common import ROOT
from bench.load import play


def profile(app, path: str, factory, scripts: int, text_out: Path | None = None) -> dict:
    """Play ``scripts`` scripts under pyinstrument; the hottest functions by own time and the
    gateway functions by total time, as shares of the whole."""
    from pyinstrument import Profiler

    client = app.test_client()
    profiler = Profiler(interval=0.0005)
    requests = 0
    profiler.start()
    for n in range(scripts):
        requests += play(client, path, factory(n))[0]
    session = profiler.stop()
    root = session.root_frame()
    total = root.time or 1e-9
    own: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    _walk(root, own, inclusive, set())
    if text_out:
        text_out.write_text(profiler.output_text(unicode=False, color=False))

    def top(table, n, only_ours=False):
        rows = [(k, v) for k, v in table.items() if not only_ours or _ours(k)]
        rows.sort(key=lambda kv: -kv[1])
        return [{"function": k, "share": round(v / total, 3)} for k, v in rows[:n]]

    waiting = sum(v for k, v in own.items() if _IO.search(k))
    return {
        "requests": requests,
        "ms_per_request": round(1000 * total / max(requests, 1), 3),
        "share_waiting_on_sockets": round(waiting / total, 3),
        "hottest_own_time": top(own, 15),
        "gateway_total_time": top(inclusive, 15, True),
    }


# Time in these is the wait for Redis (sendall, then recv until the reply is there), not CPU.
_IO = re.compile(r"^(socket\.(recv|recv_into|sendall|send)|readline|_read_from_socket) ")


def _label(frame) -> str:
    path = frame.file_path or ""
    try:
        path = str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        path = frame.file_path_short or path
    return f"{frame.function} ({path}:{frame.line_no})"


def _ours(label: str) -> bool:
    return any(f"({top}/" in label for top in ("gateway", "flows")) or "(app.py" in label


def _walk(frame, own, inclusive, stack: set, parent: str = "") -> None:
    if frame.is_synthetic:  # pyinstrument's "[self]" leaf: the parent's own time
        own[parent] += frame.time
        return
    label = _label(frame)
    if not frame.children:
        own[label] += frame.time
    if label not in stack:  # recursion: count a function's total once per call chain
        inclusive[label] += frame.time
    for child in frame.children:
        _walk(child, own, inclusive, stack | {label}, label)


def cpu_profile(app, path: str, factory, scripts: int) -> dict:
    """CPU milliseconds per request by function (cProfile on the process clock, so waits for
    Redis cost nothing here): the gateway's functions by cumulative time, everything by own
    time, with calls per request."""
    import cProfile
    import pstats
    import time

    client = app.test_client()
    play(client, path, factory(10**6 + 7))  # warm
    profiler = cProfile.Profile(time.process_time)
    requests = 0
    profiler.enable()
    for n in range(scripts):
        requests += play(client, path, factory(n))[0]
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = []
    for (filename, line, function), (_, ncalls, tottime, cumtime, _) in stats.items():
        label = f"{function} ({_short(filename)}:{line})"
        rows.append(
            (label, ncalls / requests, 1000 * tottime / requests, 1000 * cumtime / requests)
        )
    per_request = sum(r[2] for r in rows)  # every function's own time adds up to the whole
    gateway = sorted((r for r in rows if _ours(r[0])), key=lambda r: -r[3])[:15]
    libraries = sorted(
        (r for r in rows if not _ours(r[0]) and _LIBS.search(r[0])), key=lambda r: -r[3]
    )[:12]
    own = sorted(rows, key=lambda r: -r[2])[:12]

    def shape(selected, key):
        # Shares, not milliseconds: cProfile's own cost inflates every call, so only the
        # proportions carry over to the server.
        return [
            {
                "function": r[0],
                "calls_per_request": round(r[1], 2),
                "share": round(r[key] / per_request, 3),
            }
            for r in selected
        ]

    return {
        "requests": requests,
        "cpu_ms_per_request_under_cprofile": round(per_request, 3),
        "gateway_cumulative": shape(gateway, 3),
        "library_cumulative": shape(libraries, 3),
        "own_time": shape(own, 2),
    }


# Library entry points worth pricing on their own: form parsing, phone numbers, the state
# machines, the Redis client, JSON.
_LIBS = re.compile(
    r"^(parse|format_number|is_valid_number|add_model|_add_model_to_state|"
    r"trigger|execute|__call__|execute_command|loads|dumps|form|get_data|"
    r"_load_form_data|parse_form_data|full_dispatch_request|wsgi_app) \("
)


def _short(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(ROOT))
    except ValueError:
        parts = Path(filename).parts
        return "/".join(parts[-2:]) if len(parts) > 1 else filename
