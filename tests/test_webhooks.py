"""The webhooks read Africa's Talking's real payloads, refuse bad ones with a 4xx that says
why (as text, never a 500), and change nothing when they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from gateway import keys
from gateway.config import Settings
from tests.conversation_helpers import Phone, outbox

CASES = json.loads((Path(__file__).parent / "data" / "at_inbound.json").read_text())["cases"]
FORM = "application/x-www-form-urlencoded"


def _snapshot(r) -> dict:
    """Everything but the ephemeral conversation keys and counters a refusal must not touch."""
    return {k: r.dump(k) for k in sorted(r.scan_iter())}


@pytest.mark.parametrize("case", CASES, ids=[c["label"] for c in CASES])
def test_real_payloads(client, sample, r, case):
    before = _snapshot(r) if case["status"] != 200 else None
    response = client.post(case["path"], data=case["body"].encode(),
                           content_type=case.get("content_type", FORM))
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
    app.extensions["tikaline"].redis.connection_pool.disconnect()


@pytest.mark.parametrize("path", ["/ussd", "/ussd/events", "/sms/inbound"])
@pytest.mark.parametrize("query", ["", "?token=wrong", "?token=s3cret-toke", "?token="])
def test_wrong_or_missing_token_is_403_and_changes_nothing(guarded_client, r, path, query):
    before = _snapshot(r)
    body = {"/ussd": "sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=",
            "/ussd/events": "sessionId=A1&phoneNumber=%2B919811111111&status=Success",
            "/sms/inbound": "from=%2B919811111111&to=56767&text=BOOK&id=m1"}[path]
    response = guarded_client.post(path + query, data=body, content_type=FORM)
    assert response.status_code == 403
    assert "token" in response.get_data(as_text=True)
    assert _snapshot(r) == before


def test_right_token_is_served(guarded_client, r):
    response = guarded_client.post(
        "/ussd?token=s3cret-token", content_type=FORM,
        data="sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("CON TikaLine vaccination")


@pytest.mark.parametrize("path", ["/ussd", "/ussd/events", "/sms/inbound"])
def test_oversized_body_is_413_as_text(client, sample, r, path):
    before = _snapshot(r)
    response = client.post(path, content_type=FORM,
                           data="sessionId=A1&phoneNumber=%2B919811111111&status=Success"
                                "&from=%2B919811111111&to=1&id=m1&serviceCode=x&text="
                                + "1*" * 10_000)
    assert response.status_code == 413
    assert response.mimetype == "text/plain"
    assert "too large" in response.get_data(as_text=True)
    assert _snapshot(r) == before


@pytest.mark.parametrize("path", ["/ussd", "/sms/inbound"])
def test_body_that_is_not_utf8_is_400(client, sample, r, path):
    before = _snapshot(r)
    raw = (b"sessionId=A1&serviceCode=x&phoneNumber=%2B919811111111&from=%2B919811111111"
           b"&to=1&id=m1&text=\xff\xfeBOOK")
    response = client.post(path, data=raw, content_type=FORM)
    assert response.status_code == 400
    assert "UTF-8" in response.get_data(as_text=True)
    assert _snapshot(r) == before


def test_emoji_and_devanagari_digits_are_understood_not_refused(client, sample, r, settings):
    phone = Phone(client)
    phone.sms("📅 BOOK ११००१७ 🙏")  # emoji around a keyword, pincode in Devanagari digits
    assert outbox(r)[-1]["t"] == "sms.book.name"
    assert json.loads(r.get(keys.conversation("sms", phone.number)))["d"]["pin"] == "110017"
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


def test_without_redis_health_is_503_ussd_ends_politely_and_sms_asks_for_a_retry(
        redis_down_client):
    assert redis_down_client.get("/healthz").status_code == 503
    response = redis_down_client.post(
        "/ussd", content_type=FORM,
        data="sessionId=A1&serviceCode=%2A384%23&phoneNumber=%2B919811111111&text=")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("END Sorry, TikaLine is busy")
    response = redis_down_client.post(
        "/sms/inbound", content_type=FORM,
        data="from=%2B919811111111&to=56767&text=BOOK&id=m1")
    assert response.status_code == 503  # the provider retries; nothing was applied
    response = redis_down_client.post(
        "/ussd/events", content_type=FORM,
        data="sessionId=A1&phoneNumber=%2B919811111111&status=Incomplete")
    assert response.status_code == 503


@pytest.mark.parametrize("path", ["/ussd", "/sms/inbound", "/sms/delivery"])
def test_a_percent_escaped_invalid_byte_is_refused_not_taken_as_text(client, r, path):
    body = "sessionId=ATUid_1&serviceCode=*384*1%23&phoneNumber=%2B919811111111&networkCode=1" \
           "&text=%ff&from=%2B919811111111&to=384&date=x&id=%ff&status=Success"
    answer = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400 and b"UTF-8" in answer.data
    assert r.xlen(keys.OUTBOX) == 0


def test_an_end_of_session_notice_with_an_unknown_status_is_refused(client, r):
    answer = client.post("/ussd/events", data={
        "sessionId": "ATUid_1", "phoneNumber": "+919811111111", "status": "Weird"})
    assert answer.status_code == 400 and b"Success, Incomplete, Failed" in answer.data
    assert r.dbsize() == 0
