"""What the conversation tests share: a phone that dials USSD and texts SMS through the real
webhooks, the outbox read back as the texts a handset would get, and reference data."""

from __future__ import annotations

import itertools
import json
import re
from contextlib import contextmanager

import redis
from redis.cluster import RedisCluster

from flows.messages.sms import render_entry
from gateway import codes
from gateway.store import Store
from gateway.store.reference import load
from tests.partitions import matching, outbox_entries

_ids = itertools.count(1)
VACCINATOR = "+919800000001"  # A. Kumar, PHC Saket (C100) in the sample data
OTHER_VACCINATOR = "+919800000002"  # S. Verma, UPHC Aminabad (C200)


class Phone:
    """One handset: ``dial()`` starts a USSD session, ``press()`` answers, ``sms()`` texts."""

    def __init__(self, client, number: str = "+919811111111"):
        self.client = client
        self.number = number
        self.session = ""
        self.inputs: list[str] = []
        self.last = None

    def dial(self, session: str | None = None) -> str:
        self.session = session or f"ATUid_{next(_ids):08x}"
        self.inputs = []
        return self._hop()

    def press(self, *answers: str) -> str:
        body = ""
        for answer in answers:
            self.inputs.append(answer)
            body = self._hop()
        return body

    def again(self) -> str:
        """The very same hop once more (a network retry)."""
        return self._hop()

    def _hop(self) -> str:
        self.last = self.client.post(
            "/ussd",
            data={
                "sessionId": self.session,
                "serviceCode": "*384*1#",
                "phoneNumber": self.number,
                "networkCode": "40410",
                "text": "*".join(self.inputs),
            },
        )
        assert self.last.status_code == 200, self.last.get_data(as_text=True)
        body = self.last.get_data(as_text=True)
        assert body.startswith(("CON ", "END ")) and len(body) <= 160, body
        return body

    def hang_up(self, status: str = "Incomplete"):
        return self.client.post(
            "/ussd/events",
            data={
                "date": "2026-12-01 10:21:05",
                "sessionId": self.session,
                "serviceCode": "*384*1#",
                "networkCode": "40410",
                "phoneNumber": self.number,
                "status": status,
                "input": "*".join(self.inputs),
                "durationInMillis": "31402",
                "hopsCount": str(len(self.inputs) + 1),
                "cost": "INR 0.00",
                "lastAppResponse": "",
                "errorMessage": "",
            },
        )

    def sms(self, text: str, message_id: str | None = None, expect: int = 200):
        """Text the gateway; ``expect`` is the HTTP status it must answer (503: retry later)."""
        message_id = message_id or f"ec9adc86-{next(_ids):012d}"
        response = self.client.post(
            "/sms/inbound",
            data={
                "from": self.number,
                "to": "56767",
                "text": text,
                "id": message_id,
                "date": "2026-12-01T06:04:45Z",
                "linkId": "03090445075804249226",
                "networkCode": "40410",
            },
        )
        assert response.status_code == expect, response.get_data(as_text=True)
        if expect == 200:
            assert response.get_data() == b""
        return message_id


def outbox(r) -> list[dict]:
    """Every queued outbox entry, decoded."""
    return outbox_entries(r)


def texts(r, settings, to: str | None = None, start: int = 0) -> list[str]:
    """The SMS texts queued (optionally to one number), rendered as the sender would."""
    return [
        render_entry(e, settings.secret_key)
        for e in outbox(r)[start:]
        if to is None or e["to"] == to
    ]


def last_template(r, to: str) -> str:
    """The template id of the last SMS queued to ``to``: which reply came, whatever its wording."""
    sent = [e for e in outbox(r) if e["to"] == to]
    assert sent, f"no SMS queued to {to}"
    return sent[-1]["t"]


def last_hinted(r, to: str) -> tuple[str, str]:
    """(hint id, question id) of the last SMS to ``to``, a refused answer's hint above the
    question asked again."""
    assert last_template(r, to) == "sms.hinted", last_template(r, to)
    params = json.loads([e for e in outbox(r) if e["to"] == to][-1]["p"])
    return params["hint"]["t"], params["body"]["t"]


def last_text(r, settings, to: str) -> str:
    sent = texts(r, settings, to)
    assert sent, f"no SMS queued to {to}"
    return sent[-1]


def ref_and_code(text: str) -> tuple[str, str]:
    """The booking ref and code an English confirmation or slip line carries."""
    found = re.search(r"Ref (\d{5} \d{5}) Code (\d{4})", text)
    assert found, text
    return found.group(1).replace(" ", ""), found.group(2)


def appointments(r) -> dict[str, dict]:
    """Every appointment in Redis by ref."""
    out = {}
    for key in matching(r, "appt"):
        ref = key.decode().rsplit(":", 1)[1]
        out[ref] = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
    return out


def booked_counts(r) -> dict[tuple[str, int], tuple[int, int]]:
    """(session id, slot) → (booked, capacity) for every session."""
    out = {}
    for key in matching(r, "session"):
        s = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
        i = 0
        while f"cap:{i}" in s:
            out[(s["id"], i)] = (int(s.get(f"booked:{i}", 0)), int(s[f"cap:{i}"]))
            i += 1
    return out


def tiny_data(today, capacity: int = 1, name: str = "PHC Saket", days: int = 1) -> dict:
    """One centre (pincode 110017), one slot of ``capacity`` a day, and its vaccinator."""
    sessions = [
        {
            "id": f"S1-{today.toordinal() + d}",
            "centre_id": "C1",
            "date": today.fromordinal(today.toordinal() + d).isoformat(),
            "vaccine": "COVISHIELD",
            "min_age": 18,
            "max_age": None,
            "slots": [{"time": "09:00-11:00", "capacity": capacity}],
        }
        for d in range(days)
    ]
    return {
        "centres": [
            {
                "id": "C1",
                "name": name,
                "district": "South Delhi",
                "state": "Delhi",
                "pincode": "110017",
                "address": "",
            }
        ],
        "sessions": sessions,
        "vaccinators": [{"phone": VACCINATOR, "name": "A. Kumar", "centre_id": "C1"}],
    }


def load_data(store, data: dict) -> None:
    load(store, data)  # DataError if refused


def all_values(r) -> list[str]:
    """Every key and value in Redis as text (for "no code at rest" checks)."""
    out = []
    for key in r.scan_iter():
        kind = r.type(key).decode()
        out.append(key.decode())
        if kind == "string":
            out.append(r.get(key).decode())
        elif kind == "hash":
            out += [x.decode() for kv in r.hgetall(key).items() for x in kv]
        elif kind == "list":
            out += [x.decode() for x in r.lrange(key, 0, -1)]
        elif kind in ("set",):
            out += [x.decode() for x in r.smembers(key)]
        elif kind == "zset":
            out += [x.decode() for x in r.zrange(key, 0, -1)]
        elif kind == "stream":
            out += [
                json.dumps({k.decode(): v.decode() for k, v in f.items()}, ensure_ascii=False)
                for _, f in r.xrange(key)
            ]
    return out


def live_codes(r, secret: str) -> set[str]:
    """Every code any booking has had, up to its current version."""
    found = set()
    for ref, a in appointments(r).items():
        for version in range(int(a.get("ver", 0)) + 1):
            found.add(codes.derive_code(secret, ref, version))
    return found


def set_maxmemory(r, value: str) -> None:
    """CONFIG SET maxmemory on every master: the one server, or each primary of a cluster
    (a cluster client sends CONFIG SET to one node unless told otherwise)."""
    if isinstance(r, RedisCluster):
        r.config_set("maxmemory", value, target_nodes=RedisCluster.PRIMARIES)
    else:
        r.config_set("maxmemory", value)


@contextmanager
def out_of_memory_after(monkeypatch, r, operation: str = "book"):
    """Redis refuses writes (maxmemory reached, as in production) from the moment the store's
    ``operation`` (book, cancel) has run, so the turn's own commit fails; memory is back on
    leaving."""
    real = getattr(Store, operation)

    def then_fill(self, **kwargs):
        outcome = real(self, **kwargs)
        set_maxmemory(r, "1")
        return outcome

    monkeypatch.setattr(Store, operation, then_fill)
    try:
        yield
    finally:
        set_maxmemory(r, "0")
        monkeypatch.setattr(Store, operation, real)


@contextmanager
def counting_round_trips(monkeypatch):
    """Count requests sent to Redis: a pipeline or a script call is one round trip."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    yield sent
