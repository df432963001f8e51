"""Redis cost per request: round trips counted on the client, commands from the server.

Scripts are played through the real app in this process (Flask's test client), so every
request the app makes to Redis passes through the counting wrapper in ``bench.common``;
``INFO commandstats`` before and after gives the commands, script-internal ones included.
"""

from __future__ import annotations

from collections import defaultdict

import redis

from bench.common import RedisSnapshot, RoundTrips
from bench.load import play


def per_request(app, redis_client: redis.Redis, path: str, factory, scripts: int) -> dict:
    """Round trips and commands per request over ``scripts`` scripts; round trips also per
    step of the script (hop 1, hop 2, …), where the cost of one screen shows."""
    client = app.test_client()
    play(client, path, factory(10**6))  # warm: scripts loaded, connections open
    per_step: dict[int, list[int]] = defaultdict(list)
    requests = goals = 0
    before = RedisSnapshot.take(redis_client)
    with RoundTrips() as trips:
        for n in range(scripts):
            script = _counted(factory(n), trips, per_step)
            done, goal = play(client, path, script)
            requests += done
            goals += goal
        total_trips = trips.count
    delta = RedisSnapshot.take(redis_client).since(before)
    return {
        "scripts": scripts,
        "requests": requests,
        "goals": goals,
        "round_trips_per_request": round(total_trips / max(requests, 1), 2),
        "max_round_trips_in_one_request": max((max(v) for v in per_step.values()), default=0),
        "round_trips_by_step": {
            step + 1: round(sum(v) / len(v), 2) for step, v in sorted(per_step.items())
        },
        "commands_per_request": round(delta.commands / max(requests, 1), 2),
        "top_commands_per_request": {
            k: round(v / max(requests, 1), 2) for k, v in delta.top(8).items()
        },
        "redis_cpu_ms_per_request": round(1000 * delta.cpu / max(requests, 1), 4),
    }


def _counted(script, trips: RoundTrips, per_step: dict):
    """Wrap a script so the round trips made while answering each of its requests are noted
    against that step."""
    step, mark = 0, None
    try:
        form = next(script)
        while True:
            mark = trips.count
            reply = yield form
            per_step[step].append(trips.count - mark)
            step += 1
            form = script.send(reply)
    except StopIteration as done:
        return done.value
