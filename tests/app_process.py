"""``python app.py`` in a subprocess, as a newcomer runs it, for the first-run and browser tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Variables that would change what a first run does; each test sets the ones it wants.
_CLEARED = (
    "REDIS_URL",
    "AT_USERNAME",
    "AT_API_KEY",
    "AT_SENDER_ID",
    "AT_BASE_URL",
    "WEBHOOK_TOKEN",
    "SIMULATOR_ENABLED",
    "HOST",
    "PORT",
    "SECRET_KEY",
    "DEMO_DATA",
    "INSTANCE_PATH",
)
# Loopback only: a proxy from the environment must never see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AppProcess:
    """One run of ``python app.py``: start it, read its banner, talk to it, stop it."""

    def __init__(self, cwd: Path, **env: str):
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        self.env.update(PORT="0", PYTHONUNBUFFERED="1", **env)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._ready = threading.Event()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self, timeout: float = 60) -> AppProcess:
        """Run it and wait until it prints where to look (or dies, with its output)."""
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal gives a command
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"python app.py did not come up:\n{self.output}")
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("Press Ctrl+C"):
                self._ready.set()
        self._ready.set()  # it exited: let start() see it at once

    def banner(self, label: str) -> str:
        """The value printed after ``label`` in the banner."""
        match = re.search(rf"^\s+{re.escape(label)}\s+(.+)$", self.output, re.M)
        assert match, f"no '{label}' line in:\n{self.output}"
        return match.group(1).strip()

    @property
    def base_url(self) -> str:
        return self.banner("Health check").removesuffix("/healthz")

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def get(self, path: str) -> tuple[int, str]:
        """GET a path of the running app: (status, body)."""
        try:
            with _OPENER.open(self.base_url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, fields: dict) -> tuple[int, str]:
        """POST a form, as Africa's Talking does: (status, body)."""
        data = urllib.parse.urlencode(fields).encode()
        try:
            with _OPENER.open(self.base_url + path, data=data, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a supervisor would; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def listening(port: int) -> list[str]:
    """The local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found
