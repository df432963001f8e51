"""Outbound SMS from the command line: ``flask --app app outbox-worker`` and ``flask sms …``."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import with_appcontext

from gateway import outbox
from gateway.errors import ConfigurationError
from gateway.outbox import health
from gateway.services import services
from gateway.web import delivery


@click.command("outbox-worker")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Sends in flight at once (default: OUTBOX_CONCURRENCY, 8).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    default=None,
    help="At most this many sends per second for all workers together, 0 for no cap "
    "(default: OUTBOX_RATE).",
)
@click.option(
    "--claim-idle",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds before entries left pending by a dead worker are taken over; "
    "keep it above the send timeout.",
)
@click.option(
    "--idle",
    type=click.FloatRange(0.01, 10),
    default=0.25,
    show_default=True,
    help="Seconds between looks over every partition's outbox while all are empty: the most "
    "an SMS queued then waits; each look is one XLEN per partition.",
)
@with_appcontext
def outbox_worker(concurrency, rate, claim_idle, idle):
    """Deliver the SMS outbox of every partition until SIGTERM (in-flight sends finish
    first)."""
    svc = services()
    try:
        worker = outbox.Worker(
            svc.redis,
            svc.settings,
            concurrency=concurrency,
            rate=rate,
            claim_idle=claim_idle,
            idle=idle,
            lifecycle=svc.store.lifecycle,
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    worker.run(handle_signals=True)


@click.group("sms")
def sms():
    """Outbound SMS: counters, dead letters, requeue."""


@sms.command("stats")
@with_appcontext
def stats_command():
    """Queued, sent, delivered, failed and dead counts, what waits now, and each worker's
    state (stuck, and why, while Redis refuses it)."""
    client = services().redis
    figures = outbox.stats(client)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        click.echo(f"{name.replace('_', ' '):<{width}}  {value}")
    click.echo(f"the oldest SMS in the outbox has waited {health.oldest_wait(client)} s")
    found = health.workers(client)
    for worker in found:
        click.echo(health.describe(worker))
    if not found:
        click.echo("no outbox worker is connected")


@sms.command("dead")
@click.option("--limit", default=100, show_default=True, help="Show at most this many.")
@with_appcontext
def dead_command(limit):
    """List dead letters of every partition, oldest first: id (<partition>:<stream id>),
    message key, phone, template, attempts, error."""
    letters = outbox.dead_letters(services().redis, limit)
    if not letters:
        click.echo("no dead letters")
        return
    for d in letters:
        click.echo(
            f"{d['id']}  {d.get('k', '')}  {d.get('to', '')}  {d.get('t', '')}  "
            f"attempts={d.get('attempts', '?')}  at={d.get('at', '')}  "
            f"{d.get('error', '')}"
        )


@sms.command("requeue")
@click.argument("ident", required=False)
@click.option("--all", "everything", is_flag=True, help="Requeue every dead letter.")
@with_appcontext
def requeue_command(ident, everything):
    """Put a dead letter (by its id, <partition>:<stream id>, or its message key) or --all of
    them back on the outbox."""
    if bool(ident) == everything:
        raise click.UsageError("give one dead-letter ID (or message key), or --all")
    client = services().redis
    done = outbox.requeue_all(client) if everything else outbox.requeue(client, ident)
    if not done and not everything:
        click.echo(f"no dead letter {ident}", err=True)
        sys.exit(1)
    click.echo(f"requeued {len(done)}" + (": " + ", ".join(done) if done else ""))


def init_app(app: Flask) -> None:
    """Outbound SMS: the worker and operator commands, and the delivery-report webhook."""
    app.cli.add_command(outbox_worker)
    app.cli.add_command(sms)
    app.register_blueprint(delivery.bp)
