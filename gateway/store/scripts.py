"""Every Lua script of ``gateway/store/lua/``, registered once per Redis client, common.lua first.

A script is one atomic step; keeping them all as files in one folder, behind one loader, means
the store, the outbox worker and the delivery reports share the helpers of common.lua and a
reader finds every script (and every key it touches) in one place.
"""

from __future__ import annotations

import weakref
from functools import cache
from pathlib import Path

from redis.commands.core import Script

from gateway.store.redisconn import Client

LUA = Path(__file__).with_name("lua")
COMMON = "common"  # prepended to every other script, never run alone


@cache
def sources() -> dict[str, str]:
    """Each script's full text by name (its file's stem), common.lua in front."""
    common = (LUA / f"{COMMON}.lua").read_text()
    return {
        path.stem: common + path.read_text()
        for path in sorted(LUA.glob("*.lua"))
        if path.stem != COMMON
    }


class Scripts:
    """The scripts registered with one client: ``scripts["book"](keys=[…], args=[…])``.

    Registering only hashes the text; Redis loads a script on its first EVALSHA.
    """

    def __init__(self, client: Client):
        self._scripts = {name: client.register_script(text) for name, text in sources().items()}

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]


_registered: weakref.WeakKeyDictionary[Client, Scripts] = weakref.WeakKeyDictionary()


def scripts_for(client: Client) -> Scripts:
    """The one ``Scripts`` of ``client``, for callers that hold a client, not a store."""
    found = _registered.get(client)
    if found is None:
        found = _registered[client] = Scripts(client)
    return found
