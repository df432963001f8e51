"""Code layer (no Redis): the Lua scripts name no Redis key: gateway/keys.py is the one key map
they get keys from."""

from __future__ import annotations

import codecs
import contextlib
import inspect
import re
from datetime import date

import pytest
import redis

from gateway import outbox
from gateway.store import keys
from gateway.store.scripts import LUA, sources
from gateway.web.delivery import apply_report
from tests.outbox_helpers import queue_sms, running, status, wait_for

PHONE = "+919811111111"
VACCINATOR = "+919800000001"
# Literals ending in ':' that are not key names: a session's per-slot hash fields, and the
# message keys (ids of SMS, deduplicated by the outbox) that keys.message() turns into keys.
NOT_KEYS = {"cap:", "booked:", "book:", "cancel:", "dose:", "lock:", "entry:", ":"}
_TOKEN = re.compile(r"--\[\[.*?\]\]|--[^\n]*|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"", re.S)


def _builders() -> list:
    return [
        f
        for name, f in inspect.getmembers(keys, inspect.isfunction)
        if f.__module__ == keys.__name__ and name != "template"
    ]


def _constants() -> list[str]:
    return [v for v in vars(keys).values() if isinstance(v, str) and v.startswith(keys.PREFIX)]


def _names() -> set[str]:
    """Each key function's name part, e.g. 'appt:' for keys.appointment."""
    return {keys.template(f)[len(keys.PREFIX) :].split("%s")[0] for f in _builders()}


def key_literals(lua: str) -> list[str]:
    """The string literals of ``lua`` (comments left out) that look like a key name."""
    literals = [t[1:-1] for t in _TOKEN.findall(lua) if not t.startswith("--")]
    names = _names()
    return [
        s
        for s in literals
        if keys.TAG in s
        or s.startswith(keys.PREFIX[:3])
        or s in _constants()
        or any(s.startswith(name) for name in names)
        or (s.endswith(":") and s not in NOT_KEYS)
    ]


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(re.escape("%s"), ".+"))


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


@pytest.mark.single_redis(reason="MONITOR watches one server")
def test_every_key_the_scripts_touch_is_in_the_key_map(r, store, sample, at_settings, fake):
    with _watching(r) as touched:
        _journey(store)
        queue_sms(r, "lock:k1", PHONE)
        r.xadd(keys.OUTBOX, {"k": "lock:bad", "t": "sms.locked"})  # no phone: a dead letter
        with running(r, at_settings):
            wait_for(lambda: status(r, "lock:k1").get("status") == "sent", "the SMS")
            wait_for(lambda: status(r, "lock:bad").get("status") == "dead", "the dead letter")
        assert apply_report(r, status(r, "lock:k1")["provider_id"], "Success")[0] == "updated"
        assert outbox.requeue(r, "lock:bad") == ["lock:bad"]
    patterns = [_pattern(keys.template(f)) for f in _builders()] + [
        re.compile(re.escape(c)) for c in _constants()
    ]
    in_lua = {k for lua, k in touched if lua}
    assert keys.message("lock:k1") in in_lua and keys.day("C100", store.today()) in in_lua
    assert {k for _, k in touched if not any(p.fullmatch(k) for p in patterns)} == set()


@contextlib.contextmanager
def _watching(r):
    """The keys of every command Redis runs meanwhile (MONITOR), as (from a script, key)."""
    monitor = redis.Redis(connection_pool=r.connection_pool).monitor()
    touched: set[tuple[bool, str]] = set()
    with monitor:
        yield touched
        r.echo(_END)
        while (line := monitor.connection.read_response()) is not None:
            source, args = _monitored(line.decode("utf-8", "replace"))
            if args == ["ECHO", _END]:
                break
            touched.update((source == "lua", k) for k in _keys_of(r, args))


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
    """Every store script once: book, reissue, verify, dose, cancel, and the reads."""
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
    assert store.cancel(mobile=PHONE, ref=refs[1]).ok
    assert store.slip(PHONE) and store.availability() and store.centre_today("C100")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
