"""Loading centres, sessions and vaccinators from JSON or CSV: every file given is checked
whole, then everything is written in one transaction, or nothing is written at all.

JSON is the spec's format. CSV files carry one kind of row each, told apart by their header:
centres ``id,name,district,state,pincode,address``; sessions
``id,centre_id,date,vaccine,min_age,max_age,slots`` with slots written
``09:00-11:00=25;11:00-13:00=25``; vaccinators ``phone,name,centre_id``.
Every problem names the file, the record (``sessions[3]``) or CSV line, and the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gateway.errors import DataError
from gateway.phones import normalise

if TYPE_CHECKING:  # the store's package imports no reference code, but keep the edge one-way
    from gateway.store import Outcome, Store

MAX_CENTRE_NAME = 40  # the SMS and USSD budgets are tested with a name this long
MAX_ID = 40
MAX_CAPACITY = 100_000  # per slot; the benchmarks load 20,000
MAX_AGE = 130
MAX_SLOTS = 24
MAX_SHOWN_PROBLEMS = 50
_ID = re.compile(r"[A-Za-z0-9_.-]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HHMM = r"([01][0-9]|2[0-3]):([0-5][0-9])"
_SLOT_TIME = re.compile(f"{_HHMM}-{_HHMM}")
_PINCODE = re.compile(r"[1-9][0-9]{5}")
_WHOLE = re.compile(r"[0-9]{1,9}")
# Zero-width joiners are format characters that Indic spellings need; every other control,
# format, private-use or unassigned character is refused.
_JOINERS = {"\u200c", "\u200d"}
T_co = TypeVar("T_co", covariant=True)
# A checked record: each field's clean value, of the type its checker in FIELDS gives.
Record = dict[str, Any]
# Rows by kind (centres, sessions, vaccinators), as read from one file or object.
Batch = dict[str, list["Row"]]


class Check(Protocol[T_co]):
    """A field checker: a JSON value (or CSV text, ``from_csv``) → its clean value, or Problem."""

    def __call__(self, value: object, from_csv: bool = False) -> T_co: ...


class Problem(ValueError):
    """One field's problem; ``sub`` continues the field's path (``[0].time``)."""

    def __init__(self, message: str, sub: str = ""):
        super().__init__(message)
        self.sub = sub


@dataclass
class Row:
    """One record and where it came from, to name it in problems."""

    where: str  # "week.json sessions[3]" or "sessions.csv line 4"
    data: object  # a JSON object or a CSV row as read: any JSON value until checked
    from_csv: bool = False
    broken: str = ""  # a CSV line that cannot be read as a row, and why

    def problem(self, name: str, message: str) -> str:
        sep = ", field " if self.from_csv else "."
        return f"{self.where}{sep}{name}: {message}"


@dataclass
class LoadReport:
    centres: int = 0
    sessions: int = 0
    vaccinators: int = 0
    created: int = 0
    updated: int = 0


# -- showing values in messages -------------------------------------------------------------


def _show(value: object) -> str:
    """A value as a problem quotes it: short, control characters escaped, never nested."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value) if abs(value) < 1e15 else "a number out of range"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    value = str(value)
    text = "".join(f"\\u{ord(ch):04x}" if _is_control(ch) else ch for ch in value[:40])
    return f"'{text}{'…' if len(value) > 40 else ''}'"


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch).startswith("C") and ch not in _JOINERS


# -- field checkers: value (JSON value, or CSV text) → clean value, or Problem ---------------


def _string(value: object, what: str = "text") -> str:
    if not isinstance(value, str):
        raise Problem(f"{_show(value)} should be {what} in quotes")
    return value


def text(limit: int) -> Check[str]:
    """A checker for free text of at most ``limit`` characters, without control characters."""

    def check(value: object, from_csv: bool = False) -> str:
        clean = unicodedata.normalize("NFC", _string(value)).strip()
        bad = next((ch for ch in clean if _is_control(ch)), None)
        if bad is not None:
            raise Problem(f"{_show(clean)} contains a control character (U+{ord(bad):04X})")
        if len(clean) > limit:
            raise Problem(f"{_show(clean)} is longer than {limit} characters")
        return clean

    return check


def identifier(value: object, from_csv: bool = False) -> str:
    """An id as Redis keys carry it: letters, digits, ``- _ .``."""
    clean = text(MAX_ID)(value)
    if not _ID.fullmatch(clean):
        raise Problem(f"{_show(clean)} is not an id (letters, digits, - _ .)")
    return clean


def pincode(value: object, from_csv: bool = False) -> str:
    """Six ASCII digits; Devanagari (any decimal) digits and spaces are normalised first."""
    raw = _string(value, "a 6-digit pincode")
    if len(raw) > 20:
        raise Problem(f"{_show(raw)} is not a 6-digit pincode")
    clean = "".join(
        str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in raw if not ch.isspace()
    )
    if not _PINCODE.fullmatch(clean):
        raise Problem(f"{_show(raw)} is not a 6-digit pincode")
    return clean


def day(value: object, from_csv: bool = False) -> str:
    """A real calendar date written ``YYYY-MM-DD`` (not ``20261201``, not ``2026-W49-3``)."""
    raw = _string(value, "a date YYYY-MM-DD").strip()
    if not _DATE.fullmatch(raw):
        raise Problem(f"{_show(raw)} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise Problem(f"{_show(raw)} is not a real date (YYYY-MM-DD)") from None


def whole(low: int, high: int) -> Check[int]:
    """A checker for an integer in [low, high]: a JSON number without a fraction (true and
    false are not numbers), or in CSV the digits alone."""

    def check(value: object, from_csv: bool = False) -> int:
        if from_csv and isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            value = int(value.strip())
        if type(value) is not int:
            raise Problem(f"{_show(value)} is not a whole number")
        if not low <= value <= high:
            raise Problem(f"{value} is not between {low} and {high}")
        return value

    return check


def slot_time(value: object, from_csv: bool = False) -> str:
    """``HH:MM-HH:MM`` between 00:00 and 23:59, ending after it starts."""
    raw = _string(value, "a time range HH:MM-HH:MM").strip()
    if not _SLOT_TIME.fullmatch(raw):
        raise Problem(f"{_show(raw)} is not a time range HH:MM-HH:MM (00:00 to 23:59)")
    start, end = raw.split("-")
    if end <= start:
        raise Problem(f"{_show(raw)} does not end after it starts")
    return raw


def slots(value: object, from_csv: bool = False) -> list[Record]:
    """The slots of a session: JSON ``[{time, capacity}]`` or CSV ``TIME=CAP;TIME=CAP``."""
    items = _csv_slots(value) if from_csv else value
    if not isinstance(items, list) or not items:
        raise Problem("expected a list of {time, capacity}")
    if len(items) > MAX_SLOTS:
        raise Problem(f"{len(items)} slots; at most {MAX_SLOTS} a session")
    out = [_slot(j, item, from_csv) for j, item in enumerate(items)]
    times = [s["time"] for s in out]
    for j, time in enumerate(times):
        if time in times[:j]:
            raise Problem(f"{_show(time)} is listed twice", f"[{j}].time")
    return out


def _slot(j: int, item: object, from_csv: bool) -> Record:
    if not isinstance(item, dict):
        raise Problem(f"{_show(item)} should be an object {{time, capacity}}", f"[{j}]")
    extra = sorted(set(item) - {"time", "capacity"})
    if extra:
        raise Problem(f"unknown field {_show(extra[0])}", f"[{j}]")
    out: Record = {}
    checks: tuple[tuple[str, Check[object]], ...] = (("time", slot_time), ("capacity", CAPACITY))
    for name, check in checks:
        try:
            if item.get(name) is None:
                raise Problem("missing")
            out[name] = check(item[name], from_csv)
        except Problem as exc:
            raise Problem(str(exc), f"[{j}].{name}") from None
    return out


def _csv_slots(value: object) -> list[Record]:
    parts = [p.strip() for p in _string(value).split(";")]
    out: list[Record] = []
    for j, part in enumerate(p for p in parts if p):
        time, sep, cap = part.partition("=")
        if not sep:
            raise Problem(f"{_show(part)} should be TIME=CAPACITY", f"[{j}]")
        out.append({"time": time, "capacity": cap})
    return out


def vaccine(value: object, from_csv: bool = False) -> str:
    """A vaccine's name, upper-case as the replies show it."""
    return text(32)(value).upper()


AGE = whole(0, MAX_AGE)
CAPACITY = whole(0, MAX_CAPACITY)

# Each kind's fields: name → (checker, required). Missing optional fields become "" or None.
FIELDS: dict[str, dict[str, tuple[Check[object], bool]]] = {
    "centres": {
        "id": (identifier, True),
        "name": (text(MAX_CENTRE_NAME), True),
        "district": (text(60), True),
        "state": (text(60), False),
        "pincode": (pincode, True),
        "address": (text(160), False),
    },
    "sessions": {
        "id": (identifier, True),
        "centre_id": (identifier, True),
        "date": (day, True),
        "vaccine": (vaccine, True),
        "min_age": (AGE, False),
        "max_age": (AGE, False),
        "slots": (slots, True),
    },
    "vaccinators": {
        "phone": (text(32), True),
        "name": (text(80), False),
        "centre_id": (identifier, True),
    },
}
_OPTIONAL_DEFAULT = {"min_age": None, "max_age": None}


# -- reading files --------------------------------------------------------------------------


def read_file(path: Path | str) -> Batch:
    """The rows of one file, by kind, each with where it came from; DataError if unreadable."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        text_ = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{name} line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            f"save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
        ) from None
    if path.suffix.lower() == ".json":
        return rows_of(_parse_json(name, text_), name)
    return _read_csv(name, text_)


def _parse_json(name: str, text_: str) -> object:
    try:
        parsed: object = json.loads(text_)
        return parsed
    except RecursionError:
        raise DataError(f"{name}: nested too deeply to be reference data") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise DataError(f"{name}: not valid JSON ({str(exc)[:120]})") from None


def rows_of(data: object, source: str = "") -> Batch:
    """The rows of the spec's JSON shape (``source`` names the file in problems)."""
    prefix = f"{source} " if source else ""
    if not isinstance(data, dict):
        raise DataError(
            f"{source or 'data'}: expected an object with centres, sessions, vaccinators"
        )
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise DataError(
            f"{source or 'data'}: unknown key {_show(unknown[0])} "
            f"(expected centres, sessions, vaccinators)"
        )
    out: Batch = {}
    for kind in FIELDS:
        listed = data.get(kind)
        if listed is not None and not isinstance(listed, list):
            raise DataError(f"{prefix}{kind}: expected a list")
        out[kind] = [Row(f"{prefix}{kind}[{i}]", row) for i, row in enumerate(listed or [])]
    return out


def _read_csv(name: str, text_: str) -> Batch:
    reader = csv.reader(io.StringIO(text_, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        kind = _csv_kind(name, header)
        rows: list[Row] = []
        start = reader.line_num + 1
        for record in reader:
            if any(field.strip() for field in record):
                rows.append(_csv_row(name, start, header, record))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{name} line {reader.line_num}: {exc}") from None
    return {k: rows if k == kind else [] for k in FIELDS}


def _csv_kind(name: str, header: list[str]) -> str:
    required = {k: {f for f, (_, need) in fields.items() if need} for k, fields in FIELDS.items()}
    kind = next((k for k, cols in required.items() if cols <= set(header)), None)
    if kind is None:
        raise DataError(
            f"{name} line 1: the header matches none of centres "
            f"({','.join(FIELDS['centres'])}), sessions "
            f"({','.join(FIELDS['sessions'])}), vaccinators "
            f"({','.join(FIELDS['vaccinators'])})"
        )
    for i, column in enumerate(header):
        if column not in FIELDS[kind]:
            raise DataError(f"{name} line 1: unknown column {_show(column)} for {kind}")
        if column in header[:i]:
            raise DataError(f"{name} line 1: column {_show(column)} appears twice")
    return kind


def _csv_row(name: str, line: int, header: list[str], record: list[str]) -> Row:
    if len(record) != len(header):
        return Row(
            f"{name} line {line}",
            {},
            True,
            f"{len(record)} fields, the header has {len(header)} "
            f'(a comma inside a value needs "quotes")',
        )
    return Row(f"{name} line {line}", dict(zip(header, record, strict=True)), from_csv=True)


# -- checking rows --------------------------------------------------------------------------


def validate(
    batches: list[Batch], known_centres: Iterable[str] = frozenset(), region: str = "IN"
) -> dict[str, list[tuple[Row, Record]]]:
    """Checked and normalised copies of the rows of every batch (as ``read_file`` returns
    them), each with its Row; raises DataError listing every problem."""
    problems: list[str] = []
    out: dict[str, list[tuple[Row, Record]]] = {kind: [] for kind in FIELDS}
    for batch in batches:
        for kind, rows in batch.items():
            for row in rows:
                clean = _check_row(kind, row, problems, region)
                if clean is not None:
                    out[kind].append((row, clean))
    _check_repeats(out, problems)
    _check_centres(batches, out, known_centres, problems)
    if problems:
        raise DataError(_summary(problems))
    return out


def _check_row(kind: str, row: Row, problems: list[str], region: str) -> Record | None:
    if row.broken or not isinstance(row.data, dict):
        problems.append(f"{row.where}: {row.broken or _show(row.data) + ' should be an object'}")
        return None
    found = len(problems)
    for extra in sorted(str(k) for k in row.data if k not in FIELDS[kind]):
        problems.append(row.problem(extra, "unknown field"))
    clean: Record = {}
    for name, (check, required) in FIELDS[kind].items():
        value = row.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problems.append(row.problem(name, "missing"))
            clean[name] = _OPTIONAL_DEFAULT.get(name, "")
            continue
        try:
            clean[name] = check(value, row.from_csv)
        except Problem as exc:
            problems.append(row.problem(name + exc.sub, str(exc)))
    if len(problems) == found:
        _check_across(kind, row, clean, problems, region)
    return clean if len(problems) == found else None


def _check_across(kind: str, row: Row, clean: Record, problems: list[str], region: str) -> None:
    """What one field alone cannot tell: age order, and a phone read in the region."""
    if kind == "sessions" and None not in (clean["min_age"], clean["max_age"]):
        if clean["min_age"] > clean["max_age"]:
            problems.append(
                row.problem("max_age", f"{clean['max_age']} is below min_age {clean['min_age']}")
            )
    if kind == "vaccinators":
        e164 = normalise(clean["phone"], region)
        if not e164:
            problems.append(row.problem("phone", f"{_show(clean['phone'])} is not a phone number"))
        clean["phone"] = e164


def _check_repeats(out: dict[str, list[tuple[Row, Record]]], problems: list[str]) -> None:
    """Drop rows repeated unchanged (two weeks' files may list the same centres); a repeat
    that differs is a problem, since which one should win is the operator's call."""
    for kind, key in (("centres", "id"), ("sessions", "id"), ("vaccinators", "phone")):
        first: dict[str, tuple[Row, Record]] = {}
        for row, clean in out[kind]:
            seen, seen_clean = first.setdefault(clean[key], (row, clean))
            if seen is not row and seen_clean != clean:
                problems.append(
                    row.problem(
                        key, f"{_show(clean[key])} is also at {seen.where}, with other values"
                    )
                )
        out[kind] = list(first.values())


def _check_centres(
    batches: list[Batch],
    out: dict[str, list[tuple[Row, Record]]],
    known: Iterable[str],
    problems: list[str],
) -> None:
    # Centres listed in the load count as known even if their row is bad: one error, not forty.
    listed = set(known) | {
        row.data["id"].strip()
        for batch in batches
        for row in batch["centres"]
        if isinstance(row.data, dict) and isinstance(row.data.get("id"), str)
    }
    for kind in ("sessions", "vaccinators"):
        for row, clean in out[kind]:
            if clean["centre_id"] not in listed:
                problems.append(
                    row.problem("centre_id", f"unknown centre {_show(clean['centre_id'])}")
                )


def _summary(problems: list[str]) -> str:
    shown = problems[:MAX_SHOWN_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"… and {len(problems) - len(shown)} more problems")
    return "\n".join(shown)


# -- loading --------------------------------------------------------------------------------


def load(store: Store, data: object) -> LoadReport:
    """Check data in the spec's JSON shape, then write it all or nothing (DataError)."""
    return load_batches(store, [rows_of(data)])


def load_files(store: Store, paths: Iterable[Path | str]) -> LoadReport:
    """Read and check every file, then write them all or nothing (DataError)."""
    return load_batches(store, [read_file(path) for path in paths])


def load_batches(store: Store, batches: list[Batch]) -> LoadReport:
    """Check the rows of every batch, then write them (DataError if a row is refused)."""
    known = store.centre_ids()
    clean = validate(batches, known, store.settings.default_region)
    rows = {kind: [c for _, c in items] for kind, items in clean.items()}
    refusals, tally = store.load_reference(rows)
    if refusals:
        where = {c["id"]: row for row, c in clean["sessions"]}
        raise DataError(
            _summary([_refusal(where[sid], outcome) for sid, outcome in refusals.items()]),
            rest_loaded=bool(tally),
        )
    return LoadReport(
        centres=len(rows["centres"]),
        sessions=len(rows["sessions"]),
        vaccinators=len(rows["vaccinators"]),
        **tally,
    )


def _refusal(row: Row, outcome: Outcome) -> str:
    if outcome.status == "below_booked":
        slot, booked = outcome.value.split(":")
        return row.problem(
            f"slots[{slot}].capacity", f"{booked} already booked; capacity cannot go below that"
        )
    return row.problem(
        "centre_id",
        f"already exists for {outcome.value}; a session cannot move to another centre or date",
    )
