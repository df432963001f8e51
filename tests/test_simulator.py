"""The simulator page and its inbox: what each phone shows, rendered at read time."""

from __future__ import annotations

import pytest

from app import create_app
from gateway import codes, keys
from gateway.providers.console import ConsoleProvider

CITIZEN = "+919811111111"


@pytest.fixture
def client(settings, store):
    return create_app({"SETTINGS": settings, "TESTING": True}).test_client()


def _deliver_outbox(r) -> None:
    """Hand every queued outbox entry to the console provider, as the worker does."""
    console = ConsoleProvider(r)
    for _id, raw in r.xrange(keys.OUTBOX):
        entry = {k.decode(): v.decode() for k, v in raw.items()}
        console.send(entry["to"], "", entry)


def _book(store, sample, name="Asha Devi"):
    session = next(s for s in sample["sessions"] if s["centre_id"] == "C100")
    outcome = store.book(mobile=CITIZEN, name=name, birth_year=1990,
                         session_id=session["id"], slot=0)
    assert outcome.ok, outcome
    return outcome.value


def test_inbox_shows_the_booking_sms_with_its_code_rendered_at_read_time(
        client, store, sample, r, settings):
    ref = _book(store, sample)
    _deliver_outbox(r)

    reply = client.get("/simulator/inbox", query_string={"phone": "98111 11111"})

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["phone"] == CITIZEN
    [message] = body["messages"]
    code = codes.derive_code(settings.secret_key, ref, 0)
    assert f"Code {code}" in message["text"] and "Asha Devi" in message["text"]
    assert message["template"] == "sms.booked" and message["segments"] <= 2
    # What the phone keeps in Redis is the template and its parameters: no text, no code.
    kept = b"".join(r.lrange(keys.console_inbox(CITIZEN), 0, -1))
    assert b"Code" not in kept and b'"code"' not in kept


def test_inbox_lists_messages_oldest_first_and_keeps_one_phone_apart(client, store, sample, r):
    _book(store, sample, "Asha Devi")
    _book(store, sample, "Ravi Kumar")
    _deliver_outbox(r)

    texts = [m["text"] for m in client.get(
        "/simulator/inbox?phone=%2B919811111111").get_json()["messages"]]
    other = client.get("/simulator/inbox?phone=%2B919822222222").get_json()["messages"]

    assert ["Asha Devi" in texts[0], "Ravi Kumar" in texts[1]] == [True, True]
    assert other == []


def test_an_unrenderable_message_is_shown_as_such_without_hiding_the_others(
        client, store, sample, r):
    _book(store, sample)
    _deliver_outbox(r)
    ConsoleProvider(r).send(CITIZEN, "", {"k": "x1", "t": "sms.no_such_template", "p": "{}"})

    texts = [m["text"] for m in client.get(
        "/simulator/inbox?phone=%2B919811111111").get_json()["messages"]]

    assert len(texts) == 2 and "could not be rendered" in texts[1] and "Code" in texts[0]


@pytest.mark.parametrize("phone", ["", "hello", "12"])
def test_inbox_refuses_what_is_not_a_phone_number(client, phone):
    reply = client.get("/simulator/inbox", query_string={"phone": phone})
    assert reply.status_code == 400
    assert "phone" in reply.get_json()["error"]


def test_page_has_both_phones_and_only_talks_to_this_gateway(client, sample):
    reply = client.get("/simulator/")

    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert 'value="+919811111111"' in page and 'value="+919800000001"' in page
    assert "A. Kumar, PHC Saket (C100)" in page and "*384*1#" in page
    csp = reply.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert 'data-token=""' in page


def test_page_carries_the_webhook_token_when_enabled_in_production(redis_url, tmp_path, r):
    from gateway.config import Settings

    settings = Settings.from_env(tmp_path, env={
        "REDIS_URL": redis_url, "SECRET_KEY": "k" * 32, "WEBHOOK_TOKEN": "s3cret",
        "SIMULATOR_PASSWORD": "open sesame",
        "SIMULATOR_ENABLED": "1"})
    page = create_app({"SETTINGS": settings}).test_client().get("/simulator/")

    assert 'data-token="s3cret"' in page.get_data(as_text=True)
