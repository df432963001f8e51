"""Provider layer: the Africa's Talking client alone (no Redis, no worker): each answer of the fake
API reduced to sent, retry, rejected or a configuration error, as case tables."""

from __future__ import annotations

import pytest

from bench.outbound import SDKTransportClient
from gateway.providers.africastalking import SMSClient, reduce_answer
from gateway.providers.result import RETRY, SENT
from tests.fake_at import BLACKLISTED, DND, GARBLED, INVALID_PHONE, INVALID_SENDER, NO_BALANCE, http
from tests.servers import free_port

PHONE = "+919811111111"


def test_an_answer_with_a_charset_is_still_read():
    # The SDK leaves the JSON unparsed when the content type is not exactly application/json.
    answer = (
        '{"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [{"statusCode": 101,'
        ' "number": "+919811111111", "status": "Success", "messageId": "ATXid_1"}]}}'
    )
    assert reduce_answer(answer).outcome == SENT and reduce_answer(answer).message_id == "ATXid_1"
    assert reduce_answer("<html>bad gateway</html>").outcome == RETRY


def _client(keep_alive: bool) -> type[SMSClient]:
    """The gateway's client, or the bench's one over the SDK's own transport."""
    return SMSClient if keep_alive else SDKTransportClient


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
@pytest.mark.parametrize(
    "answer, outcome, says",
    [
        (None, "sent", "101 Success"),
        (http(500), "retry", "Internal Server Error"),
        (DND, "retry", "409 DoNotDisturbRejection"),
        (NO_BALANCE, "retry", "InsufficientBalance"),
        (GARBLED, "retry", "unreadable answer"),
        (INVALID_PHONE, "rejected", "403"),
        (BLACKLISTED, "rejected", "406 UserInBlacklist"),
        (INVALID_SENDER, "config", "InvalidSenderId"),
        ("bad key", "config", "authentication"),
    ],
)
def test_each_answer_is_reduced_the_same_over_either_transport(
    fake, keep_alive, answer, outcome, says
):
    if answer and answer != "bad key":
        fake.script(answer)
    key = "wrong" if answer == "bad key" else fake.api_key
    client = _client(keep_alive)(fake.username, key, base_url=fake.base_url)
    result = client.send(PHONE, "hello")
    assert result.outcome == outcome and says in result.detail
    assert result.message_id.startswith("ATXid_") == (outcome == "sent")


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
def test_a_garbled_answer_is_retried_not_rejected(fake, keep_alive):
    # The SDK's JSON error is also a ValueError, its own phone check's type: never confused.
    fake.script(GARBLED)
    client = _client(keep_alive)(fake.username, fake.api_key, base_url=fake.base_url)
    result = client.send(PHONE, "hello")
    assert result.outcome == "retry" and "unreadable answer" in result.detail


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "sdk-transport"])
def test_an_api_that_refuses_connections_is_retried(keep_alive):
    down = f"http://127.0.0.1:{free_port()}/version1"
    result = _client(keep_alive)("sandbox", "key", base_url=down).send(PHONE, "hi")
    assert result.outcome == "retry" and result.detail == "network (ConnectionError)"


def test_sends_go_through_the_proxy_the_environment_names(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", fake.base_url.removesuffix("/version1"))
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # A name that never resolves: only the proxy (the fake, playing both) can carry it.
    client = SMSClient(fake.username, fake.api_key, base_url="http://sms-api.invalid/version1")
    assert client.send(PHONE, "hello").outcome == "sent"
    [request] = fake.requests
    assert request["target"] == "http://sms-api.invalid/version1/messaging"
    assert request["message"] == "hello" and request["apiKey"] == fake.api_key


def test_a_number_the_sdk_refuses_is_rejected_without_a_request(fake):
    client = SMSClient(fake.username, fake.api_key, base_url=fake.base_url)
    assert client.send("9811111111", "hello").outcome == "rejected"
    assert fake.requests == []
