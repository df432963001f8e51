"""Edge layer (the webhooks, real Redis): the webhooks read Africa's Talking's real payloads,
refuse bad ones with a 4xx that says why (as text, never a 500), and change nothing when they
refuse."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app import create_app
from gateway.config import Settings
from gateway.store import keys
from gateway.store.redisconn import disconnect
from tests.conversation_helpers import Phone, outbox
from tests.outbox_helpers import wait_for
from tests.partitions import outbox_length
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]

CASES = json.loads((Path(__file__).parent / "data" / "at_inbound.json").read_text())["cases"]
FORM = "application/x-www-form-urlencoded"


def _snapshot(r) -> dict:
    """Everything but the ephemeral conversation keys and counters a refusal must not touch."""
    return {k: r.dump(k) for k in sorted(r.scan_iter())}


@pytest.mark.parametrize("case", CASES, ids=[c["label"] for c in CASES])
def test_real_payloads(client, sample, r, case):
    before = _snapshot(r) if case["status"] != 200 else None
    response = client.post(
        case["path"], data=case["body"].encode(), content_type=case.get("content_type", FORM)
    )
    body = response.get_data(as_text=True)
    assert response.status_code == case["status"], body
    assert response.mimetype == "text/plain"
    if "starts" in case:
        assert body.startswith(case["starts"])
    for word in case.get("contains", []):
        assert word in body
    if case.get("empty"):
        assert body == ""
    if before is not None:
        assert _snapshot(r) == before, "a refused request changed Redis"


def test_inbound_sms_is_answered_by_sms_not_in_the_response(client, sample, r, settings):
    phone = Phone(client, "+254791541111")
    phone.sms("HELP")
    [entry] = outbox(r)
    assert entry["to"] == "+254791541111" and entry["t"] == "sms.help"


@pytest.fixture
def guarded_client(settings, r, sample):
    guarded = Settings(**{**settings.__dict__, "webhook_token": "s3cret-token"})
    app = create_app({"SETTINGS": guarded, "TESTING": True})
    yield app.test_client()
    disconnect(app.extensions["tikaline"].redis)


@pytest.mark.parametrize("path", ["/ussd", "/ussd/events", "/sms/inbound"])
@pytest.mark.parametrize("query", ["", "?token=wrong", "?token=s3cret-toke", "?token="])
def test_wrong_or_missing_token_is_403_and_changes_nothing(guarded_client, r, path, query):
    before = _snapshot(r)
    body = {
        "/ussd": "sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=",
        "/ussd/events": "sessionId=A1&phoneNumber=%2B919811111111&status=Success",
        "/sms/inbound": "from=%2B919811111111&to=56767&text=BOOK&id=m1",
    }[path]
    response = guarded_client.post(path + query, data=body, content_type=FORM)
    assert response.status_code == 403
    assert "token" in response.get_data(as_text=True)
    assert _snapshot(r) == before


def test_right_token_is_served(guarded_client, r):
    response = guarded_client.post(
        "/ussd?token=s3cret-token",
        content_type=FORM,
        data="sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=",
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("CON TikaLine vaccination")


@pytest.mark.parametrize("path", ["/ussd", "/ussd/events", "/sms/inbound"])
def test_oversized_body_is_413_as_text(client, sample, r, path):
    before = _snapshot(r)
    response = client.post(
        path,
        content_type=FORM,
        data="sessionId=A1&phoneNumber=%2B919811111111&status=Success"
        "&from=%2B919811111111&to=1&id=m1&serviceCode=x&text=" + "1*" * 10_000,
    )
    assert response.status_code == 413
    assert response.mimetype == "text/plain"
    assert "too large" in response.get_data(as_text=True)
    assert _snapshot(r) == before


@pytest.mark.parametrize("path", ["/ussd", "/sms/inbound"])
def test_body_that_is_not_utf8_is_400(client, sample, r, path):
    before = _snapshot(r)
    raw = (
        b"sessionId=A1&serviceCode=x&phoneNumber=%2B919811111111&from=%2B919811111111"
        b"&to=1&id=m1&text=\xff\xfeBOOK"
    )
    response = client.post(path, data=raw, content_type=FORM)
    assert response.status_code == 400
    assert "UTF-8" in response.get_data(as_text=True)
    assert _snapshot(r) == before


def test_emoji_and_devanagari_digits_are_understood_not_refused(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("📅 BOOK ११००१७ 🙏")  # emoji around a keyword, pincode in Devanagari digits
    assert outbox(r)[-1]["t"] == "sms.book.name"
    assert json.loads(r.get(keys.sms_conversation(phone.number)))["d"]["pin"] == "110017"
    assert phone.dial().startswith("CON ")
    assert phone.press("😀").startswith("CON Choose a number from the list.\nTikaLine")


def test_wrong_method_is_not_a_500(client):
    assert client.get("/ussd").status_code == 405
    assert client.get("/sms/inbound").status_code == 405


def test_healthz_answers_200_with_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok"


@pytest.fixture
def redis_down_client(settings, tmp_path):
    """The app pointed at a port where no Redis listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Settings(**{**settings.__dict__, "redis_url": f"redis://127.0.0.1:{port}/0"})
    app = create_app({"SETTINGS": down, "TESTING": True})
    return app.test_client()


def test_without_redis_health_is_503_ussd_ends_politely_and_sms_asks_for_a_retry(redis_down_client):
    assert redis_down_client.get("/healthz").status_code == 503
    response = redis_down_client.post(
        "/ussd",
        content_type=FORM,
        data="sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=",
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("END Sorry, TikaLine is busy")
    response = redis_down_client.post(
        "/sms/inbound", content_type=FORM, data="from=%2B919811111111&to=56767&text=BOOK&id=m1"
    )
    assert response.status_code == 503  # the provider retries; nothing was applied
    response = redis_down_client.post(
        "/ussd/events",
        content_type=FORM,
        data="sessionId=A1&phoneNumber=%2B919811111111&status=Incomplete",
    )
    assert response.status_code == 503


@pytest.mark.parametrize("path", ["/ussd", "/sms/inbound", "/sms/delivery"])
def test_a_percent_escaped_invalid_byte_is_refused_not_taken_as_text(client, r, path):
    body = (
        "sessionId=ATUid_1&serviceCode=*384*1%23&phoneNumber=%2B919811111111&networkCode=1"
        "&text=%ff&from=%2B919811111111&to=384&date=x&id=%ff&status=Success"
    )
    answer = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400 and b"UTF-8" in answer.data
    assert outbox_length(r) == 0


def test_an_end_of_session_notice_with_an_unknown_status_is_refused(client, r):
    answer = client.post(
        "/ussd/events",
        data={"sessionId": "ATUid_1", "phoneNumber": "+919811111111", "status": "Weird"},
    )
    assert answer.status_code == 400 and b"Success, Incomplete, Failed" in answer.data
    assert r.dbsize() == 0


class Gunicorn:
    """``gunicorn "app:create_app()"`` as the Procfile runs it, on loopback, its log kept."""

    def __init__(self, redis_url: str, instance: Path, **env: str):
        self.port = free_port()
        self.lines: list[str] = []
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "WEBHOOK_TOKEN": "s3cret-token",
            "SECRET_KEY": "k" * 40,
            "INSTANCE_PATH": str(instance),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--no-control-socket",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        wait_for(
            lambda: (
                self.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
                or self.proc.poll() is not None
            ),
            "gunicorn to answer",
            timeout=60,
        )
        assert self.proc.poll() is None, "".join(self.lines)

    def _collect(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def request(self, raw: bytes) -> tuple[int, str]:
        """Send ``raw`` as it is and read the whole answer: (status, body); 0 if refused."""
        pieces = []
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
                while piece := s.recv(65536):
                    pieces.append(piece)
        except ConnectionResetError:
            pass  # closed with part of a refused body unread: its answer came first
        except OSError:
            return 0, ""
        if not pieces:
            return 0, ""
        head, _, body = b"".join(pieces).partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture(scope="module")
def gunicorn(redis_url, tmp_path_factory):
    server = Gunicorn(redis_url, tmp_path_factory.mktemp("instance"))
    yield server
    server.stop()


def _post(path: str, body: bytes, chunked: bool = False) -> bytes:
    head = (
        f"POST {path}?token=s3cret-token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: {FORM}\r\n"
    ).encode()
    if not chunked:
        return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    return (
        head
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        + b"0\r\n\r\n"
    )


@pytest.mark.parametrize("path", ["/sms/inbound", "/ussd", "/sms/delivery"])
def test_a_chunked_body_over_the_limit_is_413_not_cut_short(gunicorn, r, path):
    body = (
        b"from=%2B919811111111&to=384&id=m1&date=x&sessionId=S1&serviceCode=x"
        b"&phoneNumber=%2B919811111111&status=Success&text=HELP" + b"x" * 20_000
    )
    status_, answer = gunicorn.request(_post(path, body, chunked=True))
    assert status_ == 413 and "too large" in answer
    assert r.dbsize() == 0  # nothing applied from the part that was read
    small = b"from=%2B919811111111&to=384&id=m2&date=x&text=HELP"
    assert gunicorn.request(_post("/sms/inbound", small, chunked=True))[0] == 200
    assert outbox(r)[-1]["t"] == "sms.help"  # a chunked body within the limit is read whole


def test_gunicorn_logs_info_events_one_line_each_with_numbers_masked(gunicorn, r):
    body = b"sessionId=ATUid_log1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text="
    status_, answer = gunicorn.request(_post("/ussd", body))
    assert status_ == 200 and answer.startswith("CON ")
    wait_for(
        lambda: any("event=ussd_hop session=ATUid_log1" in line for line in gunicorn.lines),
        "the hop's log line",
    )
    [line] = [line for line in gunicorn.lines if "ATUid_log1" in line]
    assert " INFO " in line and "from=+9198******11" in line
    assert "+919811111111" not in "".join(gunicorn.lines)


def test_healthz_is_not_thrown_by_a_connection_name_it_cannot_read(client, r):
    r.client_setname("tikaline-outbox|half|a-name")  # another program, an older version
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok"
