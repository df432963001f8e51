"""Operator commands: ``flask --app app load-data FILE``, ``sample-data``, …"""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import with_appcontext

from flows.messages.sms import MAX_REASON, clean_reason
from gateway.errors import REDIS_ERRORS, DataError
from gateway.phones import normalise
from gateway.sample import sample_data
from gateway.services import services
from gateway.store.reference import load_files


@click.command("load-data")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def load_data(files):
    """Load (or update in place) centres, sessions and vaccinators from JSON or CSV FILES:
    all of them, or, if any has a problem, none. (A booking that lands on a session between
    the check and its write can still refuse that session: the rest is then loaded.)"""
    try:
        report = load_files(services().store, files)
    except DataError as exc:
        done = "the rest was loaded" if exc.rest_loaded else "nothing loaded"
        click.echo(f"refused, {done}:\n{exc}", err=True)
        sys.exit(1)
    except REDIS_ERRORS as exc:  # a load is idempotent: running it again finishes it
        click.echo(
            f"Redis failed ({exc}); part of the file may be written: run the same command "
            f"again (a load changes nothing twice)",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"loaded {len(files)} file(s): {report.centres} centres, {report.sessions} "
        f"sessions ({report.created} new, {report.updated} updated), "
        f"{report.vaccinators} vaccinators"
    )


@click.command("remove-vaccinator")
@click.argument("phone")
@with_appcontext
def remove_vaccinator(phone):
    """Stop PHONE from using VERIFY, DOSE and TODAY (loading data never removes anyone)."""
    svc = services()
    e164 = normalise(phone, svc.settings.default_region)
    if not e164:
        raise click.BadParameter(f"'{phone}' is not a phone number", param_hint="PHONE")
    if not svc.store.remove_vaccinator(e164):
        click.echo(f"{e164} is not a registered vaccinator", err=True)
        sys.exit(1)
    click.echo(f"{e164} is no longer a vaccinator")


@click.command("cancel-session")
@click.argument("session_id")
@click.option(
    "--reason",
    required=True,
    help=f"Why, as each person's SMS will say it (plain Latin letters, at most {MAX_REASON}).",
)
@click.option(
    "--to-date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Move the bookings to this day's session at the same centre (same vaccine) where "
    "they fit; those that do not are cancelled.",
)
@with_appcontext
def cancel_session(session_id, reason, to_date):
    """Call off SESSION_ID: nobody can book it again; each open booking on it is cancelled
    (or moved --to-date) and its person told by SMS, in their language. Safe to repeat: a
    person is told once."""
    try:
        reason = clean_reason(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from None
    target = to_date.date().isoformat() if to_date else None
    try:
        done = services().store.cancel_session(session_id, reason, target)
    except REDIS_ERRORS as exc:
        click.echo(f"Redis failed ({exc}): run the same command again (nobody is told twice)")
        sys.exit(1)
    if done.status != "ok":
        click.echo(_closing_refusal(done.status, session_id, done.date, done.centre_id), err=True)
        sys.exit(1)
    click.echo(
        f"session {session_id} at {done.centre_id} on {done.date} is called off: nobody can "
        f"book it. {done.told} people told: {len(done.cancelled)} cancelled"
        + (f", {len(done.moved)} moved to {target} ({done.target})" if target else "")
    )


def _closing_refusal(status: str, session_id: str, date: str, centre_id: str) -> str:
    return {
        "no_session": f"no session {session_id}",
        "past": f"session {session_id} was on {date}: that day is over (its open bookings "
        "are marked missed); nothing changed",
        "no_target": f"no session with the same vaccine at {centre_id} on {date} to move "
        "the bookings to; nothing changed",
        "target_past": f"{date} is over; nothing changed",
    }.get(status, f"refused: {status}; nothing changed")


@click.command("sample-data")
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First session day (default: today in TIMEZONE).",
)
@click.option("--days", default=7, show_default=True)
@with_appcontext
def sample_data_command(start, days):
    """Print the demo data set as JSON (pipe it to a file, then load-data it)."""
    first = start.date() if start else services().store.now().date()
    click.echo(json.dumps(sample_data(first, days), indent=2, ensure_ascii=False))


def init_app(app: Flask) -> None:
    for command in (load_data, remove_vaccinator, cancel_session, sample_data_command):
        app.cli.add_command(command)
