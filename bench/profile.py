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
    return {"requests": requests, "ms_per_request": round(1000 * total / max(requests, 1), 3),
            "share_waiting_on_sockets": round(waiting / total, 3),
            "hottest_own_time": top(own, 15), "gateway_total_time": top(inclusive, 15, True)}


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
