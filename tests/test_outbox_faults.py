"""Worker layer, faults: the outbox worker when things break: Redis refusing writes, stopping,
starting late or losing a reply; a worker process killed or told to stop; a send slower than the
claim timeout."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from app import create_app
from gateway import redisurl
from gateway.config import Settings
from gateway.outbox import stats
from gateway.store import keys
from gateway.store.redisconn import cluster_from_url
from tests.fake_at import FakeAT
from tests.outbox_helpers import (
    RedisServer,
    in_outbox,
    pending,
    queue_sms,
    running,
    status,
    wait_for,
)
from tests.servers import free_port, redis_server

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+919811111111"


class _LosesOneReply:
    """A Redis client whose next answer to one script is lost after Redis ran it, whether
    the script went alone or in a pipeline."""

    lose: str | None = None

    def execute_command(self, *args, **options):
        answer = super().execute_command(*args, **options)
        self._lost([args])
        return answer

    def _lost(self, commands: list) -> None:
        if any(args[0] == "EVALSHA" and args[1] == self.lose for args in commands):
            self.lose = None
            raise redis.ConnectionError("the reply was lost")


class _ServerLosesOneReply(_LosesOneReply, redis.Redis):
    def pipeline(self, transaction=True, shard_hint=None) -> redis.client.Pipeline:
        lost = self._lost

        class Losing(redis.client.Pipeline):
            def execute(self, raise_on_error=True):
                sent = [args for args, _ in self.command_stack]
                answers = super().execute(raise_on_error)
                lost(sent)
                return answers

        return Losing(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _ClusterLosesOneReply(_LosesOneReply, RedisCluster):
    def get_redis_connection(self, node) -> redis.Redis:
        # Scripts of several partitions go in a pipeline on each master's own connection.
        losing = _ServerLosesOneReply(
            connection_pool=super().get_redis_connection(node).connection_pool
        )
        losing._lost = self._lost
        return losing


def _losing_client(url: str) -> _LosesOneReply:
    """A client of the test Redis, either topology, that can lose one reply."""
    if redisurl.is_cluster(url):
        return cluster_from_url(url, cls=_ClusterLosesOneReply)
    return _ServerLosesOneReply.from_url(url)


def test_a_lost_reply_while_recording_a_send_neither_resends_nor_double_counts(
    redis_url, r, at_settings, fake
):
    client = _losing_client(redis_url)
    with running(client, at_settings) as worker:
        client.lose = worker._scripts["outbox_sent"].sha
        queue_sms(r, "lock:lost", PHONE)
        wait_for(lambda: client.lose is None, "the lost reply")
        wait_for(lambda: in_outbox(r) == 0, "the send recorded")
    assert status(r, "lock:lost")["status"] == "sent"
    assert len(fake.requests) == 1 and stats(r)["sent"] == 1


def test_a_send_slower_than_the_claim_timeout_is_not_started_twice(r, at_settings, fake):
    fake.hold_from(0)
    p = queue_sms(r, "lock:slow", PHONE)

    def deliveries() -> int:
        pending = r.xpending_range(keys.outbox(p), keys.OUTBOX_GROUP, "-", "+", 1)
        return pending[0]["times_delivered"] if pending else 0

    with running(r, at_settings, concurrency=2, claim_idle=0.2):
        wait_for(lambda: fake.held == 1, "the send in flight")
        # The worker's own reclaim takes the idle entry back while it is still being sent.
        wait_for(lambda: deliveries() >= 2, "the entry taken over")
        fake.release()
        wait_for(lambda: status(r, "lock:slow").get("status") == "sent", "the SMS")
    assert len(fake.requests) == 1 and status(r, "lock:slow")["attempts"] == "1"


def test_a_worker_started_before_its_redis_waits_for_it(settings, tmp_path, caplog):
    port = free_port()
    # No client-side retries: the worker's own loop is what is under test.
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    server = None
    try:
        with caplog.at_level(logging.ERROR), running(client, settings):
            wait_for(lambda: "event=outbox_stuck" in caplog.text, "the worker to notice")
            server = redis_server(port, tmp_path)
            wait_for(lambda: _answers(client), "redis-server to start")
            queue_sms(client, "lock:late", PHONE)
            wait_for(
                lambda: status(client, "lock:late").get("status") == "sent",
                "the SMS once Redis is up",
            )
    finally:
        if server:
            server.terminate()
            server.wait(10)


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


# -- a real worker process ------------------------------------------------------------------------


def _worker_env(redis_url: str, fake: FakeAT, tmp_path: Path) -> dict:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "AT_USERNAME": fake.username,
        "AT_API_KEY": fake.api_key,
        "AT_BASE_URL": fake.base_url,
        "SECRET_KEY": "test-secret",
        "INSTANCE_PATH": str(tmp_path),
        "OUTBOX_RATE": "0",
        "PYTHONUNBUFFERED": "1",
    }


class WorkerProcess:
    """``flask --app app outbox-worker`` as a real subprocess, its log collected."""

    def __init__(self, env: dict, *args: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "outbox-worker", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def test_sigterm_finishes_sends_in_flight_and_leaves_the_rest_queued(r, redis_url, fake, tmp_path):
    fake.hold_from(0)
    for i in range(4):
        queue_sms(r, f"lock:t{i}", f"+91981111140{i}")
    worker = WorkerProcess(_worker_env(redis_url, fake, tmp_path), "--concurrency", "2")
    try:
        wait_for(lambda: fake.held == 2, "two sends in flight")
        worker.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: worker.logged("event=outbox_worker_stopping"), "the signal taken")
        fake.release()
        assert worker.proc.wait(20) == 0
    finally:
        worker.stop()
    assert stats(r)["sent"] == 2 and len(fake.requests) == 2
    assert in_outbox(r) == 2  # not read, not lost: the next worker sends them
    assert pending(r) == 0


def test_a_killed_worker_loses_nothing(r, redis_url, fake, tmp_path):
    phones = [f"+9198111150{i:02d}" for i in range(30)]
    for i, phone in enumerate(phones):
        queue_sms(r, f"lock:x{i}", phone)
    env = _worker_env(redis_url, fake, tmp_path)
    fake.hold_from(10)  # ten go through, then four hang in flight
    first = WorkerProcess(env, "--concurrency", "4", "--claim-idle", "1")
    try:
        wait_for(lambda: stats(r)["sent"] == 10 and fake.held == 4, "10 sent, 4 in flight")
        sent_before = {
            f"lock:x{i}" for i in range(30) if status(r, f"lock:x{i}").get("status") == "sent"
        }
        first.proc.kill()  # SIGKILL: no cleanup at all
        first.proc.wait(10)
    finally:
        first.stop()
    # The API had taken the four in flight; their answers never reached the dead worker.
    fake.release()
    wait_for(lambda: fake.held == 0 and len(fake.delivered) == 14, "the four answers")
    second = WorkerProcess(env, "--concurrency", "4", "--claim-idle", "1")
    try:
        wait_for(lambda: stats(r)["sent"] == 30, "every message sent", timeout=30)
        taken = [
            re.search(r"event=outbox_took_over worker=\S+ entries=(\d+)", line)
            for line in second.lines
        ]
        assert sum(int(m.group(1)) for m in taken if m) == 4
    finally:
        assert second.stop() == 0
    received = {phone: len(fake.received_by(phone)) for phone in phones}
    assert all(n >= 1 for n in received.values())  # none lost
    # The only duplicates: the four sent but not yet recorded when the worker died.
    doubled = {f"lock:x{phones.index(p)}" for p, n in received.items() if n > 1}
    assert len(doubled) == 4 and not doubled & sent_before
    assert sum(received.values()) == 34 and len(sent_before) == 10
    assert in_outbox(r) == 0 and pending(r) == 0


def test_the_worker_logs_at_log_level_one_line_per_event(r, redis_url, fake, tmp_path):
    queue_sms(r, "lock:quiet", PHONE)
    quiet = WorkerProcess({**_worker_env(redis_url, fake, tmp_path), "LOG_LEVEL": "warning"})
    try:
        wait_for(lambda: status(r, "lock:quiet").get("status") == "sent", "the quiet send")
    finally:
        assert quiet.stop() == 0
    assert not [line for line in quiet.lines if " INFO " in line], quiet.lines
    queue_sms(r, "lock:told", PHONE)
    told = WorkerProcess({**_worker_env(redis_url, fake, tmp_path), "LOG_LEVEL": "INFO"})
    try:
        wait_for(lambda: told.logged("lock:told"), "the send's log line")
    finally:
        assert told.stop() == 0
    assert all(re.match(r"\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ [\w.]+: ", line) for line in told.lines), (
        told.lines
    )


class DiskFails:
    """A snapshot that cannot be written (its directory gone, as a full or failed disk fails
    it): with ``stop-writes-on-bgsave-error yes`` Redis answers every write with MISCONF until
    a snapshot is written again."""

    def __init__(self):
        self.dir = ""

    def breaks(self, client) -> None:
        self.dir = client.config_get("dir")["dir"]
        gone = os.path.join(self.dir, "gone")
        os.mkdir(gone)
        client.config_set("dir", gone)
        os.rmdir(gone)
        client.config_set("save", "3600 1")
        client.config_set("stop-writes-on-bgsave-error", "yes")
        self._snapshot(client, "err")

    def mends(self, client) -> None:
        client.config_set("dir", self.dir)  # the disk has room again
        self._snapshot(client, "ok")

    @staticmethod
    def _snapshot(client, outcome: str) -> None:
        client.bgsave(schedule=True)
        wait_for(
            lambda: (
                lambda p: (
                    p["rdb_bgsave_in_progress"] == 0 and p["rdb_last_bgsave_status"] == outcome
                )
            )(client.info("persistence")),
            f"a snapshot to end {outcome}",
        )


_DISK = DiskFails()
# Ways to make Redis refuse every write, and to mend it.
FAULTS = {
    "failed disk": (_DISK.breaks, _DISK.mends, "MISCONF"),
    "out of memory": (
        lambda c: c.config_set("maxmemory", 1),
        lambda c: c.config_set("maxmemory", 0),
        "OutOfMemoryError",
    ),
    "read-only replica": (
        lambda c: c.replicaof("127.0.0.1", free_port()),
        lambda c: c.replicaof("NO", "ONE"),
        "ReadOnlyError",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_worker_rides_out_redis_refusing_writes_and_says_so(
    tmp_path, at_settings, fake, caplog, fault
):
    breaks, mends, word = FAULTS[fault]
    server = RedisServer(tmp_path).start()
    client = server.client()
    phones = [f"+91981111170{i}" for i in range(3)]
    app = create_app(
        {"SETTINGS": Settings(**{**at_settings.__dict__, "redis_url": server.url}), "TESTING": True}
    )
    try:
        queued = {queue_sms(client, f"lock:f{i}", phone) for i, phone in enumerate(phones)}
        for p in queued:  # queued while a worker was away, who had read those streams before
            client.xgroup_create(keys.outbox(p), keys.OUTBOX_GROUP, id="0")
        client.config_set("maxmemory-policy", "noeviction")
        breaks(client)
        with caplog.at_level(logging.INFO), running(client, at_settings, claim_idle=0.5):
            wait_for(lambda: caplog.text.count("event=outbox_stuck") >= 3, "retries, logged")
            assert word in caplog.text and not fake.requests
            # Where an operator looks, though Redis takes no write to say it:
            health = app.test_client().get("/healthz")
            assert health.status_code == 200 and "stuck" in health.get_data(as_text=True)
            assert word in health.get_data(as_text=True)
            shown = app.test_cli_runner().invoke(args=["sms", "stats"]).output
            assert "stuck" in shown and word in shown
            mends(client)
            wait_for(lambda: stats(client)["sent"] == 3, "the queued SMS once Redis mends")
            wait_for(lambda: "event=outbox_recovered" in caplog.text, "the recovery, logged")
            wait_for(lambda: app.test_client().get("/healthz").get_data() == b"ok", "health")
        assert sorted(d["to"] for d in fake.delivered) == phones  # each once
    finally:
        app.extensions["tikaline"].redis.close()
        client.close()
        server.stop()


def test_a_worker_rides_out_redis_stopping_and_starting_again(tmp_path, at_settings, fake, caplog):
    server = RedisServer(tmp_path).start()
    client = server.client()
    try:
        with caplog.at_level(logging.INFO), running(client, at_settings):
            queue_sms(client, "lock:before", PHONE)
            wait_for(lambda: status(client, "lock:before").get("status") == "sent", "one SMS")
            server.stop()
            wait_for(lambda: caplog.text.count("event=outbox_stuck") >= 3, "retries, logged")
            server.start()
            queue_sms(client, "lock:after", PHONE)
            wait_for(lambda: status(client, "lock:after").get("status") == "sent", "the next")
        assert len(fake.requests) == 2 and stats(client)["sent"] == 2
    finally:
        client.close()
        server.stop()


def _stop(server):
    return lambda client: server.stop()


def _start(server):
    return lambda client: server.start()


# Out of memory is no such outage: a script that has written once (the record drops a field
# first) may go on writing, so Redis takes the record.
@pytest.mark.parametrize("outage", ["read-only replica", "stopped"])
def test_a_send_taken_by_the_api_during_an_outage_is_recorded_not_sent_again(
    tmp_path, at_settings, fake, caplog, outage
):
    server = RedisServer(tmp_path).start()
    client = server.client()
    fake.hold_from(0)
    try:
        queue_sms(client, "lock:once", PHONE)
        with caplog.at_level(logging.INFO), running(client, at_settings, claim_idle=0.2):
            wait_for(lambda: fake.held == 1, "the send in flight")
            breaks, mends, _ = FAULTS.get(outage, (_stop(server), _start(server), ""))
            breaks(client)
            fake.release()  # the API takes the SMS; Redis will not record it
            # Many more tries than the old 0.1 + 0.2 + ... + 1.6 s allowed, at test speed.
            wait_for(lambda: caplog.text.count("event=outbox_record_retry") >= 8, "retries")
            mends(client)
            wait_for(lambda: status(client, "lock:once").get("status") == "sent", "the record")
            # Nothing pending, nothing on the stream: no reclaim can ever send it again.
            wait_for(
                lambda: not pending(client) and not in_outbox(client), "nothing left to reclaim"
            )
        assert len(fake.requests) == 1 and stats(client)["sent"] == 1
        assert fake.received_by(PHONE) and len(fake.received_by(PHONE)) == 1
    finally:
        client.close()
        server.stop()
