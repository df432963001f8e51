"""Code layer (no Redis): the Lua scripts name no Redis key: gateway/keys.py is the one key map
they get keys from."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import inspect
import json
import re
from datetime import date

import pytest
import redis

from gateway import outbox
from gateway.store import keys
from gateway.store.scripts import LUA, sources
from gateway.web.delivery import apply_report
from tests.fake_at import http
from tests.outbox_helpers import dead_id, queue_sms, running, status, wait_for

PHONE = "+919811111111"
VACCINATOR = "+919800000001"
# Literals ending in ':' that are not key names: a session's per-slot hash fields, and the
# message keys (ids of SMS, deduplicated by the outbox) that keys.message() turns into keys.
NOT_KEYS = {
    *("cap:", "booked:", "book:", "cancel:", "dose:", "lock:", "entry:", ":"),
    *("miss:", "closed:", "moved:"),
}
_TOKEN = re.compile(r"--\[\[.*?\]\]|--[^\n]*|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"", re.S)


def _builders() -> list:
    return [
        f
        for name, f in inspect.getmembers(keys, inspect.isfunction)
        if f.__module__ == keys.__name__
        and not name.startswith("_")
        and name not in ("partition_of", "ref_partition", "prefix")
    ]


def _constants() -> list[str]:
    return [v for v in vars(keys).values() if isinstance(v, str) and v.startswith("tk:")]


_MARK = "\x00"
_TAG = re.compile(r"\\\{p\d+\\\}")


_REF = "1234567897"  # a reference or certificate ID (its digits lead to its bucket)


def _example(build) -> str:
    """A builder's key with a marker for each text part (a bucket number for int parts)."""
    params = inspect.signature(build).parameters.values()
    parts = [
        7 if p.annotation in (int, "int") else _REF if p.name in ("ref", "cert_id") else _MARK
        for p in params
    ]
    return build(*parts).replace(_REF, _MARK)


def _names() -> set[str]:
    """Each key function's name part before its first text part, e.g. 'appt:'."""
    return {e.split("}:", 1)[1].split(_MARK)[0] for f in _builders() if _MARK in (e := _example(f))}


def key_literals(lua: str) -> list[str]:
    """The string literals of ``lua`` (comments left out) that look like a key name."""
    literals = [t[1:-1] for t in _TOKEN.findall(lua) if not t.startswith("--")]
    names = _names()
    return [
        s
        for s in literals
        if "{p" in s
        or "{g}" in s
        or s.startswith("tk:")
        or s in _constants()
        or any(s.startswith(name) for name in names)
        or (s.endswith(":") and s not in NOT_KEYS)
    ]


def _pattern(build) -> re.Pattern:
    """Any key ``build`` makes: its example with the marker as any text, any bucket."""
    example = re.escape(_example(build)).replace(re.escape(_MARK), ".+")
    return re.compile(_TAG.sub(r"\\{p\\d+\\}", example))


def test_no_script_spells_a_key_name():
    found = {path.name: key_literals(path.read_text()) for path in sorted(LUA.glob("*.lua"))}
    assert len(found) == len(sources()) + 1  # every script, and common.lua
    assert {name: hits for name, hits in found.items() if hits} == {}


@pytest.mark.parametrize(
    "planted",
    [
        "local msg = prefix .. 'msg:' .. k",
        "redis.call('HGET', 'tk:{tk}:appt:' .. ref, 'state')",
        'redis.call("XLEN", "tk:{tk}:outbox")',
        "local c = hgetall(ARGV[1] .. 'centre:' .. cid)",
        "local stock = ARGV[1] .. 'stock:' .. vaccine  -- a key keys.py does not know",
    ],
)
def test_a_key_name_planted_in_lua_is_caught(planted):
    assert key_literals(planted)


def test_what_is_not_a_key_name_passes():
    lua = (
        "redis.call('HINCRBY', KEYS[1], 'booked:' .. slot, 1)  -- 'appt:' in a comment\n"
        "queue_sms(outbox, counts, 'book:' .. ref .. ':0', to, 'sms.booked', 'en', {})"
    )
    assert key_literals(lua) == []


@pytest.fixture
def touched(r, store, sample, at_settings, fake):
    """Every command Redis ran during a journey through every script, in order."""
    with _watching(r) as seen:
        _journey(store)
        queue_sms(r, "lock:k1", PHONE)
        queue_sms(r, "lock:bad", "")  # no phone: a dead letter
        fake.script(http(500))  # one send retried: the retry is promoted back to its outbox
        with running(r, at_settings, rate=1000):  # the fleet's rate: its bucket too
            wait_for(lambda: status(r, "lock:k1").get("status") == "sent", "the SMS")
            wait_for(lambda: status(r, "lock:bad").get("status") == "dead", "the dead letter")
            wait_for(lambda: _settled(r), "every SMS sent or dead")
        assert apply_report(r, status(r, "lock:k1")["provider_id"], "Success")[0] == "updated"
        assert outbox.requeue(r, dead_id(r, "lock:bad")) == ["lock:bad"]
    return seen


def _settled(r) -> bool:
    figures = outbox.stats(r)
    return figures["sent"] + figures["dead"] == figures["queued"]


@pytest.mark.single_redis(reason="MONITOR watches one server")
def test_every_key_the_scripts_touch_is_in_the_key_map(r, touched):
    patterns = [_pattern(f) for f in _builders()] + [re.compile(re.escape(c)) for c in _constants()]
    keys_seen = {k for _, args in touched for k in _keys_of(r, args)}
    assert any(k.startswith("tk:{p") and ":msg:lock:k1" in k for k in keys_seen)
    assert {k for k in keys_seen if not any(p.fullmatch(k) for p in patterns)} == set()


@pytest.mark.single_redis(reason="MONITOR watches one server")
def test_every_key_a_script_touches_is_one_it_declared(r, touched):
    """What Redis Cluster and Redis Functions require: a script reaches only its KEYS."""
    names = {hashlib.sha1(text.encode()).hexdigest(): name for name, text in sources().items()}
    ran, undeclared, declared, script = set(), [], set(), ""
    for source, args in touched:
        if source != "lua":
            script = names.get(args[1], "") if args[0].upper() == "EVALSHA" else ""
            declared = set(args[3 : 3 + int(args[2])]) if script else set()
            ran.add(script)
            continue
        undeclared += [(script, k) for k in _keys_of(r, args) if k not in declared]
    assert undeclared == []
    assert set(sources()) - ran == set()  # the journey ran every script


@contextlib.contextmanager
def _watching(r):
    """Every command Redis runs meanwhile (MONITOR), in order, as (client, arguments): the
    client is 'lua' for a command a script ran."""
    monitor = redis.Redis(connection_pool=r.connection_pool).monitor()
    touched: list[tuple[str, list[str]]] = []
    with monitor:
        yield touched
        r.echo(_END)
        while (line := monitor.connection.read_response()) is not None:
            source, args = _monitored(line.decode("utf-8", "replace"))
            if args == ["ECHO", _END]:
                break
            touched.append((source, args))


_END = "watching-ends"
_ARG = re.compile(r'"((?:\\.|[^"\\])*)"')


def _monitored(line: str) -> tuple[str, list[str]]:
    """(client, arguments) of a MONITOR line: '<time> [<db> <client>] "ARG" "ARG" …'."""
    source = line.split("[", 1)[1].split("]", 1)[0].split(" ", 1)[1]
    args = [
        codecs.escape_decode(a.encode())[0].decode("utf-8", "replace")
        for a in _ARG.findall(line.split("]", 1)[1])
    ]
    return source, args


def _keys_of(r, args: list[str]) -> list[str]:
    try:
        return [_text(k) for k in r.command_getkeys(*args)]
    except redis.ResponseError:  # a command without keys
        return []


def _journey(store) -> None:
    """Every store script once: load, book, reissue, verify, dose, a certificate lookup,
    cancel, a conversation turn, and the reads."""
    from gateway.sample import sample_data
    from gateway.store.conversations import KEEP
    from gateway.store.reference import load

    load(store, sample_data(date.fromisoformat(store.today())))
    assert store.save_ussd_turn(session_id="S1", mobile=PHONE, session=KEEP)
    session_id = f"S100-{date.fromisoformat(store.today()):%Y%m%d}"
    refs = [
        store.book(mobile=PHONE, name=name, birth_year=1990, session_id=session_id, slot=0).value
        for name in ("Asha Devi", "Ravi Kumar")
    ]
    assert store.reissue(mobile=PHONE, ref=refs[0]).ok
    code = store.appointment(refs[0])["code"]
    assert store.verify(vaccinator=VACCINATOR, ref=refs[0], code=code).ok
    assert store.waiting(VACCINATOR)
    assert store.record_dose(vaccinator=VACCINATOR, ref=refs[0]).ok
    assert store.take_lookup(PHONE, 10, 3600, store.now()) == 0
    assert store.certificate(store.appointment(refs[0])["cert"])
    assert store.cancel(mobile=PHONE, ref=refs[1]).ok
    walk_in = dict(vaccinator=VACCINATOR, centre_id="C100", mobile="+919811122222")
    walk_in.update(name="Meena", session_id=session_id, lang="en", now=store.now())
    assert store.walk_in(**walk_in, birth_year=1990, slot=0).ok
    assert store.walk_in(**walk_in, birth_year=1990, slot=0).status == "replay"  # handed back
    assert store.open_today("C100", store.now()) and store.language(PHONE) is None
    assert store.slip(PHONE) and store.availability("110017") and store.centre_today("C100")
    _settling(store, session_id)
    _calling_off(store, session_id)


def _settling(store, session_id: str) -> None:
    """What settles a booking left in flight (void, confirm) or an open one whose day is over
    (miss, person): records made to look as a crash and a past day leave them."""
    gita = dict(mobile=PHONE, name="Gita", birth_year=1990, session_id=session_id, slot=0)
    ref = store.book(**gita).value
    ravi = store.slip(PHONE)[0]["ref"]
    stale = {"c": "C100", "sid": session_id, "slot": 0}
    store.r.hset(
        keys.beneficiaries(PHONE), "gita", json.dumps({"r": ref, "s": "pending", "u": 0, **stale})
    )
    store.r.hset(
        keys.beneficiaries(PHONE),
        "old",
        json.dumps({"r": ravi, "s": "booked", "d": "2000-01-01", **stale}),
    )
    assert store.book(**gita).status == "replay"


def _calling_off(store, session_id: str) -> None:
    """A session called off with its bookings moved to the next day's, then that one too."""
    day = date.fromordinal(date.fromisoformat(store.today()).toordinal() + 1)
    mohan = dict(mobile="+919822222222", name="Mohan", birth_year=1990, slot=1)
    assert store.book(**mohan, session_id=session_id).ok
    assert store.cancel_session(session_id, "No stock", day.isoformat()).moved
    assert store.cancel_session(f"S100-{day:%Y%m%d}", "No stock").cancelled


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
