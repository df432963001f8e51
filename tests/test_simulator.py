"""Journey layer (real Redis): the simulator page and its inbox: what each phone shows, rendered at
read time."""

from __future__ import annotations

import pytest

from app import create_app
from gateway import codes
from gateway.providers.console import ConsoleProvider
from gateway.store import keys
from tests.outbox_helpers import queued_entries

CITIZEN = "+919811111111"


@pytest.fixture
def client(settings, store):
    return create_app({"SETTINGS": settings, "TESTING": True}).test_client()


def _deliver_outbox(r) -> None:
    """Hand every queued outbox entry to the console provider, as the worker does."""
    console = ConsoleProvider(r)
    for _, _, entry in queued_entries(r):
        console.send(entry["to"], "", entry)


def _book(store, sample, name="Asha Devi"):
    session = next(s for s in sample["sessions"] if s["centre_id"] == "C100")
    outcome = store.book(
        mobile=CITIZEN, name=name, birth_year=1990, session_id=session["id"], slot=0
    )
    assert outcome.ok, outcome
    return outcome.value


def test_inbox_shows_the_booking_sms_with_its_code_rendered_at_read_time(
    client, store, sample, r, settings
):
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

    texts = [
        m["text"]
        for m in client.get("/simulator/inbox?phone=%2B919811111111").get_json()["messages"]
    ]
    other = client.get("/simulator/inbox?phone=%2B919822222222").get_json()["messages"]

    assert ["Asha Devi" in texts[0], "Ravi Kumar" in texts[1]] == [True, True]
    assert other == []


def test_an_unrenderable_message_is_shown_as_such_without_hiding_the_others(
    client, store, sample, r
):
    _book(store, sample)
    _deliver_outbox(r)
    ConsoleProvider(r).send(CITIZEN, "", {"k": "x1", "t": "sms.no_such_template", "p": "{}"})

    texts = [
        m["text"]
        for m in client.get("/simulator/inbox?phone=%2B919811111111").get_json()["messages"]
    ]

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
    assert "data-token" not in page and 'data-send="/simulator/send/"' in page


TOKEN = "s3cret-token"
PASSWORD = "correct horse battery"


@pytest.fixture
def deployed(redis_url, tmp_path, r):
    """The simulator enabled in a deployment: a webhook token, SIMULATOR_PASSWORD."""
    from gateway.config import Settings

    settings = Settings.from_env(
        tmp_path,
        env={
            "REDIS_URL": redis_url,
            "SECRET_KEY": "k" * 32,
            "WEBHOOK_TOKEN": TOKEN,
            "SIMULATOR_ENABLED": "1",
            "SIMULATOR_PASSWORD": PASSWORD,
        },
    )
    return create_app({"SETTINGS": settings}).test_client()


def _ussd_form(session="ATUid_sim1") -> dict:
    return {
        "sessionId": session,
        "serviceCode": "*384*1#",
        "phoneNumber": CITIZEN,
        "networkCode": "99999",
        "text": "",
    }


def test_a_deployed_simulator_shows_nothing_before_its_login(deployed, store, sample, r):
    _book(store, sample)
    _deliver_outbox(r)

    page = deployed.get("/simulator/")
    inbox = deployed.get("/simulator/inbox", query_string={"phone": CITIZEN})
    sent = deployed.post("/simulator/send/ussd", data=_ussd_form())
    wrong = deployed.post("/simulator/login", data={"password": "guess"})

    assert page.status_code == 302 and page.location.endswith("/simulator/login")
    assert inbox.status_code == 401 and b"Code" not in inbox.data
    assert sent.status_code == 401 and not r.keys("*sess*ATUid_sim1*")
    assert wrong.status_code == 401 and b"Wrong password" in wrong.data
    assert "set-cookie" not in {k.lower() for k in wrong.headers.keys()}


def test_after_its_login_the_simulator_works_and_the_token_never_reaches_the_page(
    deployed, sample, r
):
    svc = deployed.application.extensions["tikaline"]
    ref = _book(svc.store, sample)
    _deliver_outbox(r)

    login = deployed.post("/simulator/login", data={"password": PASSWORD})
    page = deployed.get("/simulator/")
    script = deployed.get("/simulator/static/simulator.js")
    inbox = deployed.get("/simulator/inbox", query_string={"phone": CITIZEN})
    hop = deployed.post("/simulator/send/ussd", data=_ussd_form())

    assert login.status_code == 302
    assert page.status_code == 200 and TOKEN not in page.get_data(as_text=True)
    assert TOKEN not in script.get_data(as_text=True)
    assert "Log out" in page.get_data(as_text=True)
    code = codes.derive_code(svc.settings.secret_key, ref, 0)
    assert f"Code {code}" in inbox.get_json()["messages"][0]["text"]
    # The simulator's server added the token: the hop reached the menu.
    assert hop.status_code == 200 and hop.get_data(as_text=True).startswith("CON ")
    # The webhook itself still wants the token from anyone else.
    assert deployed.post("/ussd", data=_ussd_form("ATUid_direct")).status_code == 403


def test_logging_out_closes_the_simulator_again(deployed):
    deployed.post("/simulator/login", data={"password": PASSWORD})
    deployed.post("/simulator/logout")

    assert deployed.get("/simulator/inbox", query_string={"phone": CITIZEN}).status_code == 401


def test_the_send_route_only_reaches_the_webhooks_a_phone_uses(client):
    reply = client.post("/simulator/send/sms/delivery", data={"id": "x", "status": "Success"})
    assert reply.status_code == 404 and "ussd" in reply.get_json()["error"]


def test_without_a_token_the_simulator_needs_no_login(client, sample):
    hop = client.post("/simulator/send/ussd", data=_ussd_form())
    sms = client.post(
        "/simulator/send/sms/inbound",
        data={
            "from": CITIZEN,
            "to": "38401",
            "text": "HELP",
            "date": "2026-12-01 10:00:00",
            "id": "sim-1",
        },
    )

    assert hop.status_code == 200 and hop.get_data(as_text=True).startswith("CON ")
    assert sms.status_code == 200
    assert client.get("/simulator/login").status_code == 302


def test_enabling_the_simulator_with_a_token_needs_a_password(tmp_path):
    from gateway.config import ConfigError, Settings

    env = {"SECRET_KEY": "k" * 32, "WEBHOOK_TOKEN": TOKEN, "SIMULATOR_ENABLED": "1"}
    for password in (None, "short"):
        with pytest.raises(ConfigError, match="SIMULATOR_PASSWORD"):
            Settings.from_env(tmp_path, env={**env, "SIMULATOR_PASSWORD": password or ""})


def test_guessing_the_simulator_password_is_stopped(deployed, r):
    from gateway.web.simulator import LOGIN_FAILURES

    for _ in range(LOGIN_FAILURES):
        assert deployed.post("/simulator/login", data={"password": "guess"}).status_code == 401
    stopped = deployed.post("/simulator/login", data={"password": PASSWORD})

    assert stopped.status_code == 429 and b"Too many wrong passwords" in stopped.data
    assert deployed.get("/simulator/inbox", query_string={"phone": CITIZEN}).status_code == 401
    assert 0 < r.ttl(keys.SIMULATOR_LOGIN_FAILURES) <= 15 * 60
