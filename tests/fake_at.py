"""A local stand-in for Africa's Talking's SMS API that the real SDK talks to over loopback.

Wire-accurate where the SDK and our wrapper can tell: ``POST /version1/messaging`` with form
fields ``username, to, message, from, bulkSMSMode``, header ``apiKey``, answered ``201`` with
``Content-Type: application/json`` exactly (the SDK parses JSON only then). A wrong key gets
``401`` "The supplied authentication is invalid", as the real API answers.

Each test scripts the answers: ``fake.script(("http", 500), OK)`` answers the next request
500 and the one after with success; once the script runs out, every request succeeds.
``delivered`` lists the SMS a handset would have received (every request answered with a
success status, whether or not the client was still listening); ``requests`` every request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OK = ("ok",)
SLOW_OK = ("slow", OK)  # answers only after release_slow(): the client times out first
INVALID_PHONE = ("status", 403, "InvalidPhoneNumber")
BLACKLISTED = ("status", 406, "UserInBlacklist")
NO_BALANCE = ("status", 405, "InsufficientBalance")
INVALID_SENDER = ("empty", "InvalidSenderId")
DND = ("http409",)
GARBLED = ("garbled",)  # a 201 whose JSON is cut short


def http(status: int) -> tuple:
    """An answer with this HTTP status and a plain-text body."""
    return ("http", status)


class FakeAT:
    """The SMS API on 127.0.0.1, scriptable per test; use as a context manager."""

    def __init__(self, username: str = "sandbox", api_key: str = "test-api-key"):
        self.username = username
        self.api_key = api_key
        self.requests: list[dict] = []
        self.delivered: list[dict] = []
        self.held = 0  # requests waiting at the gate right now
        self._script: deque = deque()
        self._lock = threading.Lock()
        self._hold_from: int | None = None
        self._gate = threading.Event()
        self._slow = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def base_url(self) -> str:
        """What AT_BASE_URL is set to."""
        return f"http://127.0.0.1:{self._server.server_port}/version1"

    def __enter__(self) -> FakeAT:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.release_slow()
        self._server.shutdown()
        self._server.server_close()

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *answers: tuple) -> None:
        """Answer the next requests with these, in order; then success again."""
        with self._lock:
            self._script.extend(answers)

    def hold_from(self, n: int) -> None:
        """Let the first ``n`` requests through; hold later ones until ``release()``."""
        self._gate.clear()
        self._hold_from = n

    def release(self) -> None:
        """Let held requests answer (success, unless scripted otherwise)."""
        self._hold_from = None
        self._gate.set()

    def release_slow(self) -> None:
        """Let SLOW answers go out."""
        self._slow.set()

    def received_by(self, phone: str) -> list[str]:
        """The texts a phone has received."""
        with self._lock:
            return [d["message"] for d in self.delivered if d["to"] == phone]

    # -- the API ------------------------------------------------------------------------------

    def _answer(self, form: dict, headers, target: str) -> tuple[int, str, str]:
        with self._lock:
            index = len(self.requests)
            self.requests.append(
                {
                    **form,
                    "apiKey": headers.get("apiKey", ""),
                    "target": target,
                    "at": time.monotonic(),
                }
            )
            answer = self._script.popleft() if self._script else OK
        if self._hold_from is not None and index >= self._hold_from:
            with self._lock:
                self.held += 1
            self._gate.wait(30)
            with self._lock:
                self.held -= 1
        if headers.get("apiKey") != self.api_key or form.get("username") != self.username:
            return 401, "text/plain", "The supplied authentication is invalid"
        if answer[0] == "slow":
            self._slow.wait(30)
            answer = answer[1]
        to = form.get("to", "")
        if answer[0] == "ok":
            message_id = "ATXid_" + uuid.uuid4().hex
            with self._lock:
                self.delivered.append(
                    {
                        "to": to,
                        "message": form.get("message", ""),
                        "id": message_id,
                        "from": form.get("from", ""),
                    }
                )
            return 201, "application/json", _recipients(to, 101, "Success", message_id)
        if answer[0] == "status":
            return 201, "application/json", _recipients(to, answer[1], answer[2], "None")
        if answer[0] == "empty":
            return (
                201,
                "application/json",
                json.dumps({"SMSMessageData": {"Message": answer[1], "Recipients": []}}),
            )
        if answer[0] == "garbled":
            return 201, "application/json", '{"SMSMessageData": {"Message": "Sent to 1/1'
        if answer[0] == "http409":
            return 409, "application/json", _recipients(to, 409, "DoNotDisturbRejection", "None")
        return answer[1], "text/plain", "Internal Server Error"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API offers
            disable_nagle_algorithm = True  # headers and body leave without a 40 ms stall

            def do_POST(self):  # noqa: N802 — the name http.server dispatches to
                # The absolute form is what a client sends through a proxy: played here too.
                if urlsplit(self.path).path != "/version1/messaging":
                    return self._reply(404, "text/plain", "Not Found")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                self._reply(*fake._answer(form, self.headers, self.path))

            def _reply(self, status: int, content_type: str, body: str):
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout, killed): the SMS went out regardless

            def log_message(self, *args):
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many senders connect at once
    daemon_threads = True


def _recipients(to: str, code: int, status: str, message_id: str) -> str:
    cost = "KES 0.8000" if code < 400 else "0"
    return json.dumps(
        {
            "SMSMessageData": {
                "Message": f"Sent to {int(code < 400)}/1 Total Cost: {cost}",
                "Recipients": [
                    {
                        "statusCode": code,
                        "number": to,
                        "status": status,
                        "cost": cost,
                        "messageId": message_id,
                    }
                ],
            }
        }
    )
