"""Journey layer (the delivery webhook, real Redis): delivery reports at ``/sms/delivery``: each
status onto the message, idempotently."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app import create_app
from tests.outbox_helpers import (
    assert_compact,
    counts,
    message_hash,
    queue_sms,
    running,
    status,
    wait_for,
)

REPORTS = json.loads((Path(__file__).parent / "data" / "at_delivery_reports.json").read_text())
PHONE = "+919811111111"
TOKEN = "s3cret-token"


@pytest.fixture
def app(at_settings):
    at_settings.webhook_token = TOKEN
    return create_app({"SETTINGS": at_settings, "TESTING": True})


@pytest.fixture
def sent(r, settings, app):
    """A message really sent through the SDK: (message key, provider message id)."""
    queue_sms(r, "lock:d1", PHONE)
    with running(r, settings):
        wait_for(lambda: status(r, "lock:d1").get("status") == "sent", "the SMS")
    return "lock:d1", status(r, "lock:d1")["provider_id"]


def report(client, provider_id: str, status_: str, token: str = TOKEN, **extra):
    form = {
        "id": provider_id,
        "status": status_,
        "phoneNumber": PHONE,
        "networkCode": "40410",
        **extra,
    }
    return client.post(f"/sms/delivery?token={token}", data=form)


@pytest.mark.parametrize("case", REPORTS["reports"], ids=lambda c: c["form"]["status"])
def test_each_status_lands_on_the_message(r, app, sent, case):
    key, provider_id = sent
    form = {**case["form"], "id": provider_id}
    answer = app.test_client().post(f"/sms/delivery?token={TOKEN}", data=form)
    assert answer.status_code == 200
    message = status(r, key)
    assert message["status"] == case["expect"] and message["report"] == form["status"]
    assert message.get("failure_reason", "") == form.get("failureReason", "")
    tally = counts(r)
    assert tally.get("delivered", 0) == (case["expect"] == "delivered")
    assert tally.get("failed", 0) == (case["expect"] == "failed")


def test_in_flight_reports_then_success(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    for step in ("Sent", "Submitted", "Buffered"):
        assert report(client, provider_id, step).status_code == 200
        assert status(r, key)["status"] == "sent"
    report(client, provider_id, "Success")
    assert status(r, key)["status"] == "delivered" and counts(r)["delivered"] == 1


def test_a_delivered_message_keeps_a_small_compact_status(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    reason = "Deliver" + "y" * 80  # cut to 60: with the status it makes a long "seen" marker
    for step, extra in (
        ("Sent", {}),
        ("Failed", {"failureReason": reason, "retryCount": "0"}),
        ("Success", {"retryCount": "1"}),
    ):
        assert report(client, provider_id, step, **extra).status_code == 200
    message = status(r, key)
    assert message["status"] == "delivered" and message["provider_id"] == provider_id
    assert message["failure_reason"] == reason[:59] + "…" and message["network"] == "40410"
    assert_compact(r, key)
    assert (
        report(client, provider_id, "Failed", failureReason=reason, retryCount="0").get_data(
            as_text=True
        )
        == "replay"
    )
    assert status(r, key) == message and counts(r)["delivered"] == 1


def test_a_replayed_report_changes_nothing(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    report(client, provider_id, "Sent")
    report(client, provider_id, "Success")
    before = (status(r, key), counts(r), r.ttl(message_hash(r, key)) > 0)
    for step in ("Success", "Sent", "Success"):  # Africa's Talking retrying its callbacks
        assert report(client, provider_id, step).status_code == 200
    assert (status(r, key), counts(r), r.ttl(message_hash(r, key)) > 0) == before
    assert counts(r)["delivered"] == 1


def test_a_late_failure_never_undoes_a_delivery(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    report(client, provider_id, "Success")
    report(client, provider_id, "Failed", failureReason="DeliveryFailure")
    assert status(r, key)["status"] == "delivered"
    assert counts(r)["delivered"] == 1 and counts(r).get("failed", 0) == 0


def test_success_after_a_failure_counts_as_delivered(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    report(client, provider_id, "Failed", failureReason="UserIsInactive", retryCount="0")
    assert counts(r)["failed"] == 1
    report(client, provider_id, "Success", retryCount="1")  # the network's own retry worked
    assert status(r, key)["status"] == "delivered"
    assert counts(r)["failed"] == 0 and counts(r)["delivered"] == 1


def test_an_unknown_status_is_kept_and_logged(r, app, sent, caplog):
    key, provider_id = sent
    with caplog.at_level(logging.WARNING, "gateway.web.delivery"):
        answer = report(app.test_client(), provider_id, "Throttled")
    assert answer.status_code == 200
    message = status(r, key)
    assert message["status"] == "sent" and message["report"] == "Throttled"
    assert "unknown_status status='Throttled'" in caplog.text


def test_a_report_for_an_unknown_message_is_logged_and_acknowledged(r, app, sent, caplog):
    before = sorted(r.keys("*"))
    with caplog.at_level(logging.WARNING, "gateway.web.delivery"):
        answer = report(app.test_client(), "ATXid_never_sent", "Success")
    assert answer.status_code == 200
    assert sorted(r.keys("*")) == before
    assert "report_unknown_id id=ATXid_never_sent" in caplog.text


@pytest.mark.parametrize(
    "post, code, says",
    [
        (
            lambda c, pid: c.post("/sms/delivery", data={"id": pid, "status": "Success"}),
            403,
            "token",
        ),
        (
            lambda c, pid: c.post(f"/sms/delivery?token={TOKEN}", data={"id": pid}),
            400,
            "missing field(s): status",
        ),
        (
            lambda c, pid: c.post(
                f"/sms/delivery?token={TOKEN}", json={"id": pid, "status": "Success"}
            ),
            415,
            "x-www-form-urlencoded",
        ),
        (
            lambda c, pid: c.post(
                f"/sms/delivery?token={TOKEN}", data={"id": " ", "status": "Success"}
            ),
            400,
            "non-empty",
        ),
        (
            lambda c, pid: c.post(
                f"/sms/delivery?token={TOKEN}",
                data=b"id=\xff&status=Success",
                content_type="application/x-www-form-urlencoded",
            ),
            400,
            "UTF-8",
        ),
    ],
)
def test_bad_reports_get_a_clear_4xx_and_change_nothing(r, app, sent, post, code, says):
    key, provider_id = sent
    before = status(r, key)
    answer = post(app.test_client(), provider_id)
    assert answer.status_code == code and says in answer.get_data(as_text=True)
    assert status(r, key) == before


def test_hundreds_of_distinct_reports_leave_a_bounded_status(r, app, sent):
    key, provider_id = sent
    client = app.test_client()
    for i in range(300):  # a flapping network: a new retry count on every report
        report(client, provider_id, "Buffered", retryCount=str(i))
    report(client, provider_id, "Failed", failureReason="DeliveryFailure", retryCount="300")
    message = status(r, key)
    assert message["status"] == "failed" and message["report"] == "Failed"
    assert message["failure_reason"] == "DeliveryFailure" and message["reports"] == "301"
    assert len(message) <= 16, sorted(message)
    assert_compact(r, key)
    # The latest reports are still recognised when Africa's Talking repeats them.
    assert report(client, provider_id, "Buffered", retryCount="299").get_data() == b"replay"
    assert status(r, key) == message


@pytest.mark.parametrize("field", ["status", "id", "failureReason"])
def test_report_values_reach_the_log_on_one_clean_line(r, app, sent, caplog, field):
    key, provider_id = sent
    form = {"status": "Throttled", "id": provider_id, "failureReason": "x"}
    form[field] += "\nINFO forged\x1b[2J\r\x00"  # within the length limits: not a 400
    with caplog.at_level(logging.INFO, "gateway.web.delivery"):
        answer = report(app.test_client(), form.pop("id"), form.pop("status"), **form)
    assert answer.status_code == 200 and caplog.records
    for record in caplog.records:
        line = record.getMessage()
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in line), repr(line)
        assert len(line) < 300
    stored = status(r, key)
    assert not any(ord(ch) < 32 for value in stored.values() for ch in value), stored
