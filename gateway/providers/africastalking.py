"""Africa's Talking: everything about its wire format, in one module.

(Module docstring to be completed: the USSD callback, the end-of-session notice, the inbound
SMS form, the delivery report, and the SMS API, each with a real example payload.)
"""

from __future__ import annotations

import json

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService

from gateway.errors import ConfigurationError
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult

# ---- Inbound: USSD callback, end-of-session notice, inbound SMS -----------------------------


# ---- Outbound: the SMS API through the official SDK, and delivery reports --------------------
#
# Sending: ``POST {base}/messaging`` (base ``https://api.africastalking.com/version1``, or
# ``AT_BASE_URL``), header ``apiKey: …``, form
#     username=sandbox&to=%2B919812345678&message=TikaLine%3A+…&bulkSMSMode=1&from=TIKALINE
# answered ``201`` with ``Content-Type: application/json``:
#     {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
#       "Recipients": [{"statusCode": 101, "number": "+919812345678", "status": "Success",
#                       "cost": "KES 0.8000", "messageId": "ATXid_0f3c5e2b9a…"}]}}
# A refused number comes back on the same 201, per recipient:
#     {"statusCode": 403, "number": "+9198", "status": "InvalidPhoneNumber", "cost": "0",
#      "messageId": "None"}
# a bad sender ID as ``{"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}``,
# a do-not-disturb window as HTTP 409 with the same JSON and statusCode 409. The SDK raises
# ``AfricasTalkingException(body)`` on any non-2xx (the status code is lost, the body is kept)
# and parses JSON only when the content type is exactly ``application/json``.
#
# Delivery report, ``POST /sms/delivery`` (form):
#     id=ATXid_0f3c5e2b9a…&status=Failed&phoneNumber=%2B919812345678&networkCode=40410
#     &failureReason=UserInBlackList&retryCount=0
# ``id`` is the ``messageId`` above; ``failureReason`` comes only with Rejected/Failed.

SENT_CODES = frozenset({100, 101, 102})  # Processed, Sent, Queued
CONFIG_CODES = frozenset({402})  # InvalidSenderId: every message would fail the same way
# RiskHold, InvalidPhoneNumber, UnsupportedNumberType, UserInBlacklist, CouldNotRoute: the
# same text to the same number fails again, so retrying only spends money and time.
REJECTED_CODES = frozenset({401, 403, 404, 406, 407})
# Anything else is retried: 405 InsufficientBalance (until topped up), 409 DoNotDisturb
# (a time window), 500/501/502 and codes we do not know yet.

DEFAULT_TIMEOUT = (3.05, 9.05)  # connect, read: the SDK's own, made explicit

# Delivery statuses → our message statuses; Sent/Submitted/Buffered are still in flight.
DELIVERY_STATUSES = {
    "sent": "sent", "submitted": "sent", "buffered": "sent",
    "success": "delivered",
    "rejected": "failed", "failed": "failed", "absentsubscriber": "failed", "expired": "failed",
}


def delivery_status(status: str) -> str | None:
    """Our status (sent, delivered, failed) for a delivery-report status; None if unknown."""
    return DELIVERY_STATUSES.get(status.strip().casefold())


class SMSClient:
    """The SDK's SMS service, built and kept here (``initialize()`` rebinds module globals)."""

    def __init__(self, username: str, api_key: str, *, sender_id: str | None = None,
                 base_url: str | None = None, timeout=DEFAULT_TIMEOUT):
        self._service = SMSService(username, api_key)
        if base_url:
            self._service._baseUrl = base_url.rstrip("/")
        self.sender_id = sender_id
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings, timeout=DEFAULT_TIMEOUT) -> SMSClient:
        """A client for AT_USERNAME / AT_API_KEY / AT_SENDER_ID / AT_BASE_URL."""
        if not settings.at_api_key:
            raise ConfigurationError("AT_USERNAME is set but AT_API_KEY is not")
        return cls(settings.at_username, settings.at_api_key, sender_id=settings.at_sender_id,
                   base_url=settings.at_base_url, timeout=timeout)

    def send(self, to: str, text: str, entry: dict | None = None) -> SendResult:
        """Send one SMS and reduce whatever happens to sent / retry / rejected / config."""
        try:
            answer = self._service.send(text, [to], sender_id=self.sender_id,
                                        timeout=self.timeout)
        except ValueError as exc:  # the SDK's own check: not a +digits number
            return SendResult(REJECTED, detail=str(exc))
        except requests.Timeout as exc:
            # A read timeout may mean the API took it. We retry anyway: at least once beats
            # at most once for a code, and a repeat carries the very same text.
            return SendResult(RETRY, detail=f"timeout ({type(exc).__name__})")
        except requests.RequestException as exc:
            return SendResult(RETRY, detail=f"network ({type(exc).__name__})")
        except AfricasTalkingException as exc:
            return _http_error(str(exc))
        return reduce_answer(answer)


def reduce_answer(answer) -> SendResult:
    """The outcome for our single recipient: an HTTP 2xx alone proves nothing."""
    if isinstance(answer, str):  # a content type with "; charset=…" leaves the JSON unparsed
        try:
            answer = json.loads(answer)
        except ValueError:
            return SendResult(RETRY, detail="unreadable answer: " + answer[:120])
    data = answer.get("SMSMessageData") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        return SendResult(RETRY, detail="unexpected answer: " + str(answer)[:120])
    recipients = data.get("Recipients") or []
    if not recipients:
        return SendResult(CONFIG, detail=str(data.get("Message") or "no recipients"))
    first = recipients[0] if isinstance(recipients[0], dict) else {}
    try:
        code = int(first.get("statusCode", 0))
    except (TypeError, ValueError):
        code = 0
    detail = f"{code} {first.get('status') or ''}".strip()
    message_id = str(first.get("messageId") or "")
    if code in SENT_CODES:
        return SendResult(SENT, message_id="" if message_id == "None" else message_id,
                          detail=detail)
    if code in CONFIG_CODES:
        return SendResult(CONFIG, detail=detail)
    if code in REJECTED_CODES:
        return SendResult(REJECTED, detail=detail)
    return SendResult(RETRY, detail=detail)


def _http_error(body: str) -> SendResult:
    # The SDK keeps only the body of a non-2xx: a JSON body (HTTP 409 DND) is read like a 201.
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "SMSMessageData" in answer:
        return reduce_answer(answer)
    if "authentication" in body.casefold():  # HTTP 401: wrong username or API key
        return SendResult(CONFIG, detail="authentication refused: check AT_USERNAME/AT_API_KEY")
    return SendResult(RETRY, detail="HTTP error: " + body.strip()[:120])
