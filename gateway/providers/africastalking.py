"""Africa's Talking: everything about its wire format, in one module.

Every callback is ``POST application/x-www-form-urlencoded`` (UTF-8). Required fields are
declared once below; a missing one is a ``400`` naming it, an undecodable body or field a
``400``, a body over 16 KiB a ``413``; with ``WEBHOOK_TOKEN`` set, ``?token=`` must match.

**USSD callback** (``/ussd``), one per hop, as captured from the sandbox::

    POST /ussd HTTP/1.1
    User-Agent: at-ussd-api/1.0
    Content-Type: application/x-www-form-urlencoded; charset=UTF-8

    phoneNumber=%2B254739495441&serviceCode=%2A384%2A44135%23&text=
    &sessionId=ATUid_7c898d72eb11f723ed8ea05ef232f279&networkCode=99999

``text`` is empty on the first hop, then every input of the session joined by ``*``
(``1*Asha Devi*1990``). A caller typing ``*`` inside an answer breaks that split, so it is
passed on whole and the flow keeps its own state per ``sessionId``. The answer is
``200 text/plain``: ``CON <screen>`` waits for input, ``END <screen>`` closes the session;
anything else, a non-200 or a slow answer, ends the session as ``Failed``. Screens are held
to 160 characters including the prefix.

**End-of-session notice** (``/ussd/events``), sent once the session is over::

    date=2026-12-01+10%3A21%3A05&sessionId=ATUid_7c898d72eb11f723ed8ea05ef232f279
    &serviceCode=%2A384%2A44135%23&networkCode=99999&phoneNumber=%2B254739495441
    &status=Incomplete&cost=KES+0.0000&durationInMillis=31402&hopsCount=3
    &input=1%2AAsha+Devi&lastAppResponse=CON+Year+of+birth&errorMessage=

``status`` is ``Success`` (an ``END`` was reached), ``Incomplete`` (the caller dropped while a
screen waited) or ``Failed`` (our answer was refused, with ``errorMessage``). Answer ``200``.

**Inbound SMS** (``/sms/inbound``), as received on a short code::

    linkId=03090445075804249226&text=Msg&to=21512&id=ec9adc86-51d5-4bc8-8eb0-d8ab0bb53dc3
    &date=2017-05-03T06%3A04%3A45Z&from=%2B254791541111

``id`` is unique per message and comes again when the callback is retried (unanswered ones
are retried for minutes): it is the replay guard. Answer ``200`` at once; the body is ignored
and replies go out through the SMS API. ``linkId`` is for premium (subscription) replies.

Phone numbers arrive in E.164; anything else is read in ``DEFAULT_REGION`` and refused when
it is not a possible number.
"""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import urlencode

import requests
import urllib3
from africastalking.Service import DEFAULT_TIMEOUT_S as SDK_TIMEOUT
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService

from gateway.errors import BadRequest, ConfigurationError
from gateway.inbound import CLOSE, NEW, RESUME, SMS, USSD, InboundMessage, Reply
from gateway.phones import normalise
from gateway.providers.forms import form_fields
from gateway.providers.result import CONFIG, REJECTED, RETRY, SENT, SendResult

# ---- Inbound: USSD callback, end-of-session notice, inbound SMS -----------------------------

USSD_FIELDS = ("sessionId", "serviceCode", "phoneNumber", "text")
USSD_OPTIONAL = ("networkCode",)
SESSION_END_FIELDS = ("sessionId", "phoneNumber", "status")
SESSION_END_OPTIONAL = (
    "date",
    "serviceCode",
    "networkCode",
    "input",
    "errorMessage",
    "durationInMillis",
    "hopsCount",
    "cost",
    "lastAppResponse",
)
SMS_FIELDS = ("from", "to", "text", "id")
SMS_OPTIONAL = ("date", "linkId", "networkCode", "cost")
SESSION_END_STATUSES = ("Success", "Incomplete", "Failed")
MAX_ID = 128  # ids become Redis keys: anything longer is junk, not an id
USSD_LIMIT = 160  # characters per screen, "CON "/"END " included
log = logging.getLogger("tikaline.africastalking")


def parse_ussd(req, region: str) -> InboundMessage:
    """One USSD hop as a neutral message (``text`` is the whole ``*``-joined input path)."""
    form = form_fields(req, USSD_FIELDS, USSD_OPTIONAL)
    return InboundMessage(
        channel=USSD,
        sender=_phone(form, "phoneNumber", region),
        text=form["text"],
        session_id=_id(form, "sessionId"),
        event=RESUME if form["text"] else NEW,
        meta={"service_code": form["serviceCode"], "network": form["networkCode"]},
    )


def parse_session_end(req, region: str) -> InboundMessage:
    """The end-of-session notice as a neutral ``close`` message (status kept in ``meta``)."""
    form = form_fields(req, SESSION_END_FIELDS, SESSION_END_OPTIONAL)
    if form["status"] not in SESSION_END_STATUSES:
        raise BadRequest("status must be one of " + ", ".join(SESSION_END_STATUSES))
    return InboundMessage(
        channel=USSD,
        sender=_phone(form, "phoneNumber", region),
        text=form["input"],
        session_id=_id(form, "sessionId"),
        event=CLOSE,
        meta={
            "status": form["status"],
            "error": form["errorMessage"][:200],
            "duration_ms": form["durationInMillis"],
            "hops": form["hopsCount"],
        },
    )


def parse_sms(req, region: str) -> InboundMessage:
    """One inbound SMS as a neutral message; its ``id`` guards against replays."""
    form = form_fields(req, SMS_FIELDS, SMS_OPTIONAL)
    return InboundMessage(
        channel=SMS,
        sender=_phone(form, "from", region),
        text=form["text"],
        message_id=_id(form, "id"),
        meta={"to": form["to"][:32], "network": form["networkCode"], "link_id": form["linkId"]},
    )


def ussd_body(reply: Reply) -> str:
    """The ``CON ``/``END `` answer to a USSD hop, never longer than a screen."""
    body = ("END " if reply.end else "CON ") + reply.text
    if len(body) > USSD_LIMIT:  # the flows' budget tests keep this from happening
        log.warning("ussd screen over %d characters cut: %r", USSD_LIMIT, body[:40])
        body = body[:USSD_LIMIT]
    return body


def _phone(form: dict, name: str, region: str) -> str:
    number = normalise(form[name], region)
    if not number:
        raise BadRequest(f"{name} is not a phone number")
    return number


def _id(form: dict, name: str) -> str:
    value = form[name].strip()
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise BadRequest(f"{name} must be 1-{MAX_ID} printable characters")
    return value


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
# and parses JSON only when the content type is exactly ``application/json``; we send through
# its ``SMSService`` over our own connection pool, which keeps the status (_PooledSMSService).
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

DEFAULT_TIMEOUT = SDK_TIMEOUT  # (3.05, 9.05) connect, read: the SDK's own, made explicit

# Delivery statuses → our message statuses; Sent/Submitted/Buffered are still in flight.
DELIVERY_STATUSES = {
    "sent": "sent",
    "submitted": "sent",
    "buffered": "sent",
    "success": "delivered",
    "rejected": "failed",
    "failed": "failed",
    "absentsubscriber": "failed",
    "expired": "failed",
}


def delivery_status(status: str) -> str | None:
    """Our status (sent, delivered, failed) for a delivery-report status; None if unknown."""
    return DELIVERY_STATUSES.get(status.strip().casefold())


class _HTTPError(AfricasTalkingException):
    """A non-2xx answer, keeping the status code the SDK's own transport drops."""

    def __init__(self, status: int, body: str):
        super().__init__(body)
        self.status = status


class _PooledSMSService(SMSService):
    """The SDK's SMS service (its checks, form, URL and headers) over one keep-alive pool.

    The SDK posts with a bare ``requests.post``: a new TCP and TLS connection per SMS, proxy
    settings re-read from the environment each time, and the HTTP status dropped from errors.
    Here requests' own adapter picks the urllib3 pool, proxy and CA bundle once per URL, and
    each SMS goes straight to that pool. A requests session redoes the merging of settings,
    cookies, hooks and redirects per SMS, CPU that bounded a worker process's sends a second
    (bench/outbound.py compares the SDK's own transport).
    """

    def __init__(self, username: str, api_key: str, pool_size: int):
        super().__init__(username, api_key)
        self._adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._proxies: dict = {}
        self._verify: bool | str = True
        self._routes: dict[str, tuple] = {}  # URL -> (urllib3 pool, request target)

    def use_environment(self) -> None:
        """Read proxy and CA settings once, for the base URL now set."""
        self._proxies = requests.utils.get_environ_proxies(self._baseUrl)
        self._verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._routes = {}

    def _route(self, url: str) -> tuple:
        route = self._routes.get(url)
        if route is None:  # the first SMS only: the SDK always posts to the same URL
            prepared = requests.Request("POST", url).prepare()
            adapter = self._adapter
            pool = adapter.get_connection_with_tls_context(
                prepared, self._verify, proxies=self._proxies
            )
            adapter.cert_verify(pool, url, self._verify, None)
            route = self._routes[url] = (pool, adapter.request_url(prepared, self._proxies))
        return route

    def _make_request(
        self, url, method, headers, data, params, callback=None, timeout=DEFAULT_TIMEOUT
    ):
        pool, target = self._route(url)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        body = urlencode(data or {}, doseq=True)
        answer = _urlopen(
            pool,
            method,
            target,
            body.encode(),
            {**_SESSION_HEADERS, **headers, "Content-Type": _FORM},
            timeout,
        )
        content_type = answer.headers.get("content-type", "")
        text = _decode(answer.data, content_type)
        if not 200 <= answer.status < 300:
            raise _HTTPError(answer.status, text)
        if content_type.startswith("application/json"):
            try:
                return json.loads(text)
            except ValueError:
                return text  # read as an unreadable answer, so retried; never a rejection
        return text


_FORM = "application/x-www-form-urlencoded"
_SESSION_HEADERS = dict(requests.utils.default_headers())  # what a requests session would add
_NO_RETRY = urllib3.Retry(0, read=False)  # requests' own default: one attempt, we retry later


def _urlopen(pool, method: str, target: str, body: bytes, headers: dict, timeout):
    """urllib3's answer; its failures raised as the requests exceptions a session raises."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    errors = urllib3.exceptions
    try:
        return pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            retries=_NO_RETRY,
            timeout=urllib3.Timeout(connect=connect, read=read),
        )
    except errors.MaxRetryError as exc:  # what a failed connect comes wrapped in
        reason = exc.reason
        if isinstance(reason, errors.ConnectTimeoutError) and not isinstance(
            reason, errors.NewConnectionError
        ):
            raise requests.ConnectTimeout(exc) from exc
        if isinstance(reason, errors.ProxyError):
            raise requests.exceptions.ProxyError(exc) from exc
        if isinstance(reason, errors.SSLError):
            raise requests.exceptions.SSLError(exc) from exc
        raise requests.ConnectionError(exc) from exc
    except errors.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc) from exc
    except (errors.HTTPError, OSError) as exc:
        raise requests.ConnectionError(exc) from exc


def _decode(data: bytes, content_type: str) -> str:
    charset = content_type.partition("charset=")[2].split(";")[0].strip(" \"'") or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


class SMSClient:
    """The SDK's SMS service, built and kept here (``initialize()`` rebinds module globals)."""

    def __init__(
        self,
        username: str,
        api_key: str,
        *,
        sender_id: str | None = None,
        base_url: str | None = None,
        timeout=DEFAULT_TIMEOUT,
        pool_size: int = 8,
    ):
        self._service = _PooledSMSService(username, api_key, pool_size)
        if base_url:
            self._service._baseUrl = base_url.rstrip("/")
        self._service.use_environment()
        self.sender_id = sender_id
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings, timeout=DEFAULT_TIMEOUT, **options) -> SMSClient:
        """A client for AT_USERNAME / AT_API_KEY / AT_SENDER_ID / AT_BASE_URL."""
        if not settings.at_api_key:
            raise ConfigurationError("AT_USERNAME is set but AT_API_KEY is not")
        return cls(
            settings.at_username,
            settings.at_api_key,
            sender_id=settings.at_sender_id,
            base_url=settings.at_base_url,
            timeout=timeout,
            **options,
        )

    def send(self, to: str, text: str, entry: dict | None = None) -> SendResult:
        """Send one SMS and reduce whatever happens to sent / retry / rejected / config."""
        try:
            answer = self._service.send(text, [to], sender_id=self.sender_id, timeout=self.timeout)
        except requests.Timeout as exc:
            # A read timeout may mean the API took it. We retry anyway: at least once beats
            # at most once for a code, and a repeat carries the very same text.
            return SendResult(RETRY, detail=f"timeout ({type(exc).__name__})")
        except requests.exceptions.InvalidJSONError:  # a ValueError too: not a rejection
            return SendResult(RETRY, detail="unreadable answer: garbled JSON")
        except requests.RequestException as exc:
            return SendResult(RETRY, detail=f"network ({type(exc).__name__})")
        except ValueError as exc:  # the SDK's own check: not a +digits number
            return SendResult(REJECTED, detail=str(exc))
        except AfricasTalkingException as exc:
            return _http_error(str(exc), getattr(exc, "status", None))
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
        return SendResult(
            SENT, message_id="" if message_id == "None" else message_id, detail=detail
        )
    if code in CONFIG_CODES:
        return SendResult(CONFIG, detail=detail)
    if code in REJECTED_CODES:
        return SendResult(REJECTED, detail=detail)
    return SendResult(RETRY, detail=detail)


def _http_error(body: str, status: int | None) -> SendResult:
    # A JSON body (HTTP 409 DoNotDisturb) is read like a 201; the SDK's own transport keeps
    # only the body, hence the text match for a refused key.
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "SMSMessageData" in answer:
        return reduce_answer(answer)
    if status == 401 or "authentication" in body.casefold():
        return SendResult(CONFIG, detail="authentication refused: check AT_USERNAME/AT_API_KEY")
    shown = f"HTTP {status}" if status else "HTTP error"
    return SendResult(RETRY, detail=f"{shown}: " + body.strip()[:120])
