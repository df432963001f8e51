"""Loading centres, sessions and vaccinators from JSON or CSV, validated row by row.

JSON is the spec's format. CSV files carry one kind of row each, told apart by their header:
centres ``id,name,district,state,pincode,address``; sessions
``id,centre_id,date,vaccine,min_age,max_age,slots`` with slots written
``09:00-11:00=25;11:00-13:00=25``; vaccinators ``phone,name,centre_id``.
Every problem names the row and field, and nothing is written until the whole file is valid.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from gateway import keys
from gateway.errors import DataError
from gateway.phones import normalise

_SLOT_TIME = re.compile(r"^\d{2}:\d{2}-\d{2}:\d{2}$")
_PINCODE = re.compile(r"^\d{6}$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
MAX_CENTRE_NAME = 40  # the SMS and USSD budgets are tested with a name this long
_CSV_KINDS = {
    "centres": {"id", "name", "district", "state", "pincode"},
    "sessions": {"id", "centre_id", "date", "vaccine", "slots"},
    "vaccinators": {"phone", "centre_id"},
}


@dataclass
class LoadReport:
    centres: int = 0
    sessions: int = 0
    vaccinators: int = 0
    created: int = 0
    updated: int = 0
    problems: list[str] = field(default_factory=list)


def read_file(path: Path | str) -> dict:
    """The file as the spec's JSON shape, whichever format it came in."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise DataError(f"{path.name}: expected an object with centres, sessions, vaccinators")
        return data
    rows = list(csv.DictReader(text.splitlines()))
    header = set(rows[0]) if rows else set()
    kind = next((k for k, cols in _CSV_KINDS.items() if cols <= header), None)
    if kind is None:
        raise DataError(f"{path.name}: header matches none of centres, sessions, vaccinators")
    if kind == "sessions":
        for n, row in enumerate(rows, start=2):
            row["slots"] = _csv_slots(row.get("slots") or "", f"{path.name} line {n}")
            for age in ("min_age", "max_age"):
                row[age] = row.get(age) or None
    return {kind: rows}


def _csv_slots(text: str, where: str) -> list[dict]:
    slots = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        time, _, cap = part.partition("=")
        if not (cap.strip().isascii() and cap.strip().isdigit()):  # not '²'
            raise DataError(f"{where}, field slots: '{part}' should be TIME=CAPACITY")
        slots.append({"time": time.strip(), "capacity": int(cap)})
    return slots


def validate(data: dict, known_centres=frozenset(), region: str = "IN") -> dict:
    """Checked and normalised copies of the rows; raises DataError listing every problem."""
    problems: list[str] = []
    out = {"centres": [], "sessions": [], "vaccinators": []}
    # Centres named in the file count as known even if their row is bad: one error, not forty.
    listed = data.get("centres") if isinstance(data.get("centres"), list) else []
    centres = set(known_centres) | {str(c.get("id", "")).strip() for c in listed
                                     if isinstance(c, dict)}
    for kind in out:
        rows = data.get(kind) or []
        if not isinstance(rows, list):
            problems.append(f"{kind}: expected a list")
            continue
        for i, row in enumerate(rows):
            where = f"{kind}[{i}]"
            if not isinstance(row, dict):
                problems.append(f"{where}: expected an object")
                continue
            checker = {"centres": _centre, "sessions": _session, "vaccinators": _vaccinator}[kind]
            clean = checker(row, where, problems, region)
            if clean:
                out[kind].append(clean)
                if kind != "centres" and clean["centre_id"] not in centres:
                    problems.append(f"{where}.centre_id: unknown centre '{clean['centre_id']}'")
    if problems:
        raise DataError("\n".join(problems))
    return out


def _need(row, name, where, problems, pattern=None, hint=""):
    value = row.get(name)
    value = "" if value is None else str(value).strip()
    if not value:
        problems.append(f"{where}.{name}: missing")
        return None
    if pattern and not pattern.match(value):
        problems.append(f"{where}.{name}: '{value}' {hint}")
        return None
    return value


def _centre(row, where, problems, region):
    cid = _need(row, "id", where, problems, _ID, "is not an id (letters, digits, - _ .)")
    name = _need(row, "name", where, problems)
    if name and len(name) > MAX_CENTRE_NAME:
        problems.append(f"{where}.name: longer than {MAX_CENTRE_NAME} characters (SMS budget)")
        name = None
    district = _need(row, "district", where, problems)
    pin = _need(row, "pincode", where, problems, _PINCODE, "is not a 6-digit pincode")
    if None in (cid, name, district, pin):
        return None
    return {"id": cid, "name": name, "district": district, "state": str(row.get("state") or ""),
            "pincode": pin, "address": str(row.get("address") or "")}


def _age(row, name, where, problems):
    value = row.get(name)
    if value in (None, ""):
        return None
    try:
        age = int(value)
    except (TypeError, ValueError):
        age = -1
    if not 0 <= age <= 130:
        problems.append(f"{where}.{name}: '{value}' is not an age")
        return None
    return age


def _session(row, where, problems, region):
    sid = _need(row, "id", where, problems, _ID, "is not an id (letters, digits, - _ .)")
    cid = _need(row, "centre_id", where, problems)
    day = _need(row, "date", where, problems)
    vaccine = _need(row, "vaccine", where, problems)
    if day:
        try:
            date.fromisoformat(day)
        except ValueError:
            problems.append(f"{where}.date: '{day}' is not a date YYYY-MM-DD")
            day = None
    min_age, max_age = _age(row, "min_age", where, problems), _age(row, "max_age", where, problems)
    if min_age is not None and max_age is not None and min_age > max_age:
        problems.append(f"{where}.max_age: {max_age} is below min_age {min_age}")
    slots = row.get("slots")
    good_slots = []
    if not isinstance(slots, list) or not slots:
        problems.append(f"{where}.slots: expected a list of {{time, capacity}}")
    else:
        for j, slot in enumerate(slots):
            time = str((slot or {}).get("time", "")) if isinstance(slot, dict) else ""
            cap = slot.get("capacity") if isinstance(slot, dict) else None
            if not _SLOT_TIME.match(time):
                problems.append(f"{where}.slots[{j}].time: '{time}' should be HH:MM-HH:MM")
            elif not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= 100000:
                problems.append(f"{where}.slots[{j}].capacity: '{cap}' is not a whole number")
            else:
                good_slots.append({"time": time, "capacity": cap})
    if None in (sid, cid, day, vaccine) or len(good_slots) != len(slots or []):
        return None
    return {"id": sid, "centre_id": cid, "date": day, "vaccine": vaccine.upper(),
            "min_age": min_age, "max_age": max_age, "slots": good_slots}


def _vaccinator(row, where, problems, region):
    phone = _need(row, "phone", where, problems)
    cid = _need(row, "centre_id", where, problems)
    if phone:
        e164 = normalise(phone, region)
        if not e164:
            problems.append(f"{where}.phone: '{phone}' is not a phone number")
        phone = e164
    if None in (phone, cid):
        return None
    return {"phone": phone, "name": str(row.get("name") or ""), "centre_id": cid}


def load(store, data: dict) -> LoadReport:
    """Validate everything, then upsert; sessions that would cut capacity below bookings are
    refused one by one and reported (the rest still load)."""
    known = {c.decode() if isinstance(c, bytes) else c for c in store.r.smembers(keys.CENTRES)}
    clean = validate(data, known, store.settings.default_region)
    report = LoadReport()
    for centre in clean["centres"]:
        store.upsert_centre(centre)
        report.centres += 1
    for i, session in enumerate(clean["sessions"]):
        outcome = store.upsert_session(session)
        if outcome.ok:
            report.sessions += 1
            setattr(report, outcome.value, getattr(report, outcome.value) + 1)
        elif outcome.status == "below_booked":
            slot, booked = outcome.value.split(":")
            report.problems.append(
                f"sessions[{i}] {session['id']}: slot {int(slot) + 1} has {booked} bookings; "
                f"capacity cannot go below that (refused, left as it was)")
        else:
            report.problems.append(
                f"sessions[{i}] {session['id']}: already exists for {outcome.value}; "
                f"a session cannot move to another centre or date (refused)")
    for vaccinator in clean["vaccinators"]:
        store.upsert_vaccinator(vaccinator)
        report.vaccinators += 1
    return report
