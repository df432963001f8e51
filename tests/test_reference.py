"""Store layer (real Redis): loading reference data: idempotent upserts, clear errors, capacity
never cut below bookings."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from gateway.errors import DataError
from gateway.sample import sample_data
from gateway.store import keys
from gateway.store.reference import load, load_files
from tests.partitions import matching, session_key
from tests.test_store import snapshot

ROOT = Path(__file__).resolve().parent.parent


def test_loading_twice_changes_nothing_the_second_time(store, r):
    data = sample_data(store.now().date())
    first = load(store, data)
    before = snapshot(r)
    second = load(store, data)
    assert (first.created, first.updated) == (35, 0)
    assert (second.created, second.updated) == (0, 35)
    assert snapshot(r) == before


def test_capacity_cannot_drop_below_what_is_booked(store, r, sample):
    sid = sample["sessions"][0]["id"]
    for i in range(3):
        assert store.book(
            mobile=f"+91981000000{i}", name="P", birth_year=1980, session_id=sid, slot=0
        ).ok
    changed = json.loads(json.dumps(sample))
    changed["sessions"][0]["slots"][0]["capacity"] = 2
    changed["sessions"][1]["slots"][0]["capacity"] = 40
    before = snapshot(r)
    with pytest.raises(DataError) as error:
        load(store, changed)
    assert "sessions[0].slots[0].capacity: 3 already booked" in str(error.value)
    assert snapshot(r) == before  # all or nothing: the other session's change is not written
    changed["sessions"][0]["slots"][0]["capacity"] = 3  # down to exactly the bookings is fine
    load(store, changed)
    assert r.hget(session_key(r, sid), "cap:0") == b"3"
    assert r.hget(session_key(r, sample["sessions"][1]["id"]), "cap:0") == b"40"


def test_a_slot_dropped_from_the_list_counts_as_capacity_zero(store, r, sample):
    sid = sample["sessions"][0]["id"]
    assert store.book(mobile="+919810000000", name="P", birth_year=1980, session_id=sid, slot=2).ok
    changed = json.loads(json.dumps(sample))
    del changed["sessions"][0]["slots"][2]
    with pytest.raises(DataError, match=r"sessions\[0\].slots\[2\].capacity: 1 already"):
        load(store, changed)
    changed["sessions"][0]["slots"].append({"time": "14:00-16:00", "capacity": 0})
    with pytest.raises(DataError, match="1 already booked"):
        load(store, changed)


def test_a_session_cannot_move_to_another_centre_or_date(store, r, sample):
    changed = json.loads(json.dumps(sample))
    changed["sessions"][0]["centre_id"] = "C101"
    before = snapshot(r)
    with pytest.raises(DataError, match=r"sessions\[0\].centre_id: already exists for C100"):
        load(store, changed)
    assert snapshot(r) == before


def test_bad_rows_are_named_with_their_field_and_nothing_is_written(store, r):
    data = sample_data(store.now().date())
    data["centres"][1]["pincode"] = "11001"
    data["sessions"][2]["date"] = "2026-13-01"
    data["sessions"][3]["slots"][0]["capacity"] = "lots"
    data["vaccinators"][0]["phone"] = "not a phone"
    data["vaccinators"][1]["centre_id"] = "C999"
    with pytest.raises(DataError) as error:
        load(store, data)
    message = str(error.value)
    for expected in (
        "centres[1].pincode",
        "sessions[2].date",
        "sessions[3].slots[0].capacity",
        "vaccinators[0].phone",
        "vaccinators[1].centre_id: unknown centre 'C999'",
    ):
        assert expected in message
    assert r.dbsize() == 0


def test_csv_files_load_like_json(store, r, tmp_path):
    (tmp_path / "centres.csv").write_text(
        "id,name,district,state,pincode,address\nC100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
    )
    (tmp_path / "sessions.csv").write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=25;11:00-13:00=10\n"
    )
    (tmp_path / "vaccinators.csv").write_text("phone,name,centre_id\n09800000001,A,C100\n")
    for name in ("centres.csv", "sessions.csv", "vaccinators.csv"):
        load_files(store, [tmp_path / name])
    [centre] = store.availability("110017")
    assert centre["open"] == 35 and centre["sessions"][0]["vaccine"] == "COVISHIELD"
    assert store.vaccinator("+919800000001")["centre_id"] == "C100"


def test_the_load_data_command_reports_and_fails_on_bad_files(redis_url, tmp_path):
    good = tmp_path / "week.json"
    bad = tmp_path / "bad.json"
    good.write_text(json.dumps(sample_data(date.today())))
    bad.write_text('{"centres": [{"id": "C1"}]}')
    env = {
        "REDIS_URL": redis_url,
        "SECRET_KEY": "k",
        "INSTANCE_PATH": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    run = [sys.executable, "-m", "flask", "--app", "app", "load-data"]
    ok = subprocess.run([*run, str(good)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "5 centres, 35 sessions" in ok.stdout and "2 vaccinators" in ok.stdout
    refused = subprocess.run([*run, str(bad)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "centres[0].name: missing" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_shipped_sample_file_is_valid(store):
    report = load_files(store, [ROOT / "data" / "sample.json"])
    assert (report.centres, report.vaccinators) == (5, 2)
    assert {store.r.hget(keys.centre(cid), "district") for cid in store.centre_ids()} == {
        b"South Delhi",
        b"Lucknow",
    }


def test_a_csv_capacity_in_other_digits_is_refused_with_its_line(store, tmp_path):
    (tmp_path / "sessions.csv").write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=²\n"
    )
    with pytest.raises(DataError, match=r"line 2, field slots\[0\].capacity"):
        load_files(store, [tmp_path / "sessions.csv"])


def test_an_operator_can_take_a_vaccinators_rights_away(settings, sample, store):
    from app import create_app

    runner = create_app({"SETTINGS": settings}).test_cli_runner()
    result = runner.invoke(args=["remove-vaccinator", "09800000001"])
    assert result.exit_code == 0 and "+919800000001 is no longer a vaccinator" in result.output
    assert store.vaccinator("+919800000001") is None
    ref = store.book(
        mobile="+919811111111",
        name="Asha",
        birth_year=1990,
        session_id=sample["sessions"][0]["id"],
        slot=0,
    ).value
    assert (
        store.verify(
            vaccinator="+919800000001", ref=ref, code=store.appointment(ref)["code"]
        ).status
        == "not_vaccinator"
    )
    again = runner.invoke(args=["remove-vaccinator", "+919800000001"])
    assert again.exit_code == 1 and "not a registered vaccinator" in again.output


# -- all or nothing, never a traceback (issue 9 §5) ------------------------------------------


@pytest.fixture
def cli(settings):
    """Click's runner for the app's commands, on the test Redis."""
    from app import create_app

    return create_app({"SETTINGS": settings}).test_cli_runner()


def run_load(cli, *paths):
    """``flask load-data PATHS`` through Click's runner; fails the test on any traceback."""
    result = cli.invoke(args=["load-data", *map(str, paths)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output
    return result


def refused(cli, r, *paths) -> str:
    """Load PATHS, expecting a refusal that writes nothing; the refusal's text."""
    before = snapshot(r)
    result = run_load(cli, *paths)
    assert result.exit_code == 1, result.output
    assert snapshot(r) == before
    return result.output


def write_json(tmp_path, data, name="week.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


@pytest.mark.parametrize(
    "bad",
    ["20261201", "2026-W49-3", "2026-02-30", "2026-12-1", "२०२६-१२-०१", " 2026-12-01x", 20261201],
)
def test_a_date_not_written_yyyy_mm_dd_refuses_the_file(cli, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][3]["date"] = bad
    message = refused(cli, r, write_json(tmp_path, data))
    assert "week.json sessions[3].date" in message and "YYYY-MM-DD" in message


def test_a_file_that_is_not_utf8_is_refused_by_name(cli, r, tmp_path):
    path = tmp_path / "centres.csv"
    path.write_bytes(
        b"id,name,district,state,pincode,address\n"
        b"C100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
        b"C101,Caf\xe9 Clinic,South Delhi,Delhi,110017,\n"
    )
    message = refused(cli, r, path)
    assert "centres.csv line 3" in message and "UTF-8" in message


def test_deeply_nested_json_is_refused(cli, r, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"centres": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "deep.json" in refused(cli, r, path)


def test_a_csv_field_over_the_csv_limit_is_refused_with_its_line(cli, r, tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text(
        "id,name,district,state,pincode,address\n"
        "C100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
        f'C101,PHC Kalkaji,South Delhi,Delhi,110019,"{"x" * 200_000}"\n'
    )
    assert "centres.csv line 3" in refused(cli, r, path)


@pytest.mark.parametrize(
    "bad",
    [
        "99:99-00:00",
        "11:00-09:00",
        "09:00-09:00",
        "9:00-11:00",
        "24:00-25:00",
        "09:60-10:00",
        "०९:००-११:००",
        900,
    ],
)
def test_slot_times_must_be_real_and_end_after_they_start(cli, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][0]["slots"][2]["time"] = bad
    assert "sessions[0].slots[2].time" in refused(cli, r, write_json(tmp_path, data))


def test_pincodes_are_stored_as_six_ascii_digits(cli, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["centres"][0]["pincode"] = "५६०००२"
    data["centres"][1]["pincode"] = "560003\n"
    data["centres"][2]["pincode"] = " 110 017 "
    assert run_load(cli, write_json(tmp_path, data)).exit_code == 0
    assert r.hget(keys.centre("C100"), "pincode") == b"560002"
    assert r.hget(keys.centre("C101"), "pincode") == b"560003"
    assert r.hget(keys.centre("C102"), "pincode") == b"110017"
    assert [c["id"] for c in store.availability("560002")] == ["C100"]
    assert [c["id"] for c in store.availability("560003")] == ["C101"]


@pytest.mark.parametrize(
    "bad", ["56000", "5600021", "56OO02", "056000", "560-002", "560002\x00", 560002, ["560002"]]
)
def test_a_pincode_that_is_not_six_digits_is_refused(cli, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["centres"][4]["pincode"] = bad
    assert "centres[4].pincode" in refused(cli, r, write_json(tmp_path, data))


@pytest.mark.parametrize(
    ("kind", "index", "field", "bad"),
    [
        ("centres", 0, "name", "PHC\x07Saket"),
        ("centres", 0, "name", "PHC\u202eSaket"),
        ("centres", 0, "name", "x" * 41),
        ("centres", 1, "address", "y" * 161),
        ("centres", 1, "address", "Line 1\nLine 2"),
        ("centres", 2, "district", "z" * 61),
        ("centres", 2, "state", "s" * 61),
        ("centres", 3, "id", "C" * 41),
        ("sessions", 2, "vaccine", "V" * 33),
        ("sessions", 2, "vaccine", "COVI\x00SHIELD"),
        ("vaccinators", 0, "name", "n" * 81),
        ("vaccinators", 1, "name", "S.\x1bVerma"),
    ],
)
def test_text_fields_have_limits_and_no_control_characters(
    cli, r, store, tmp_path, kind, index, field, bad
):
    data = sample_data(store.now().date())
    data[kind][index][field] = bad
    message = refused(cli, r, write_json(tmp_path, data))
    assert f"{kind}[{index}].{field}" in message
    assert "\x07" not in message and "\x1b" not in message and "\u202e" not in message


def test_text_at_its_limit_loads(cli, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["centres"][0].update(name="N" * 40, address="A" * 160, district="D" * 60, state="S" * 60)
    data["vaccinators"][0]["name"] = "रामकुमारी देवी" + "x" * 66
    assert run_load(cli, write_json(tmp_path, data)).exit_code == 0
    assert r.hget(keys.centre("C100"), "address") == b"A" * 160


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("min_age", True),
        ("min_age", 12.7),
        ("min_age", "12"),
        ("max_age", 18.0),
        ("max_age", False),
        ("min_age", -1),
        ("max_age", 131),
        ("min_age", [18]),
    ],
)
def test_ages_are_whole_numbers(cli, r, store, tmp_path, field, bad):
    data = sample_data(store.now().date())
    data["sessions"][4][field] = bad
    assert f"sessions[4].{field}" in refused(cli, r, write_json(tmp_path, data))


@pytest.mark.parametrize("bad", [True, 2.5, "25", -1, 100_001, None])
def test_capacities_are_whole_numbers(cli, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][0]["slots"][1]["capacity"] = bad
    assert "sessions[0].slots[1].capacity" in refused(cli, r, write_json(tmp_path, data))


def test_min_age_above_max_age_is_refused(cli, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["sessions"][4].update(min_age=45, max_age=18)
    assert "sessions[4].max_age" in refused(cli, r, write_json(tmp_path, data))


@pytest.mark.parametrize(
    "bad", [["+919800000001"], 919800000001, {"n": "+919800000001"}, "+91 98000\x0000001", "12"]
)
def test_a_phone_must_be_one_number_written_as_text(cli, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["vaccinators"][1]["phone"] = bad
    assert "vaccinators[1].phone" in refused(cli, r, write_json(tmp_path, data))


def test_a_later_file_refused_means_the_earlier_ones_are_not_written_either(
    cli, r, store, tmp_path
):
    good = write_json(tmp_path, sample_data(store.now().date()), "good.json")
    bad = write_json(tmp_path, {"centres": [{"id": "C1"}]}, "bad.json")
    message = refused(cli, r, good, bad)
    assert "bad.json centres[0].name: missing" in message


def test_sessions_may_name_centres_of_another_file_or_already_loaded(cli, r, store, tmp_path):
    data = sample_data(store.now().date())
    centres = write_json(tmp_path, {"centres": data["centres"]}, "centres.json")
    sessions = write_json(tmp_path, {"sessions": data["sessions"]}, "sessions.json")
    staff = write_json(tmp_path, {"vaccinators": data["vaccinators"]}, "staff.json")
    assert run_load(cli, sessions, centres).exit_code == 0
    assert run_load(cli, staff).exit_code == 0  # its centres are already in Redis
    assert store.vaccinator("+919800000002")["centre_id"] == "C200"
    orphan = write_json(
        tmp_path, {"vaccinators": [{"phone": "+919800000009", "centre_id": "C999"}]}, "orphan.json"
    )
    assert "unknown centre 'C999'" in refused(cli, r, orphan)


def test_misspelt_keys_and_repeated_ids_are_refused(cli, r, store, tmp_path):
    data = sample_data(store.now().date())
    assert "centers" in refused(cli, r, write_json(tmp_path, {"centers": data["centres"]}))
    data["centres"][0]["adress"] = "J Block"
    assert "centres[0].adress" in refused(cli, r, write_json(tmp_path, data))
    del data["centres"][0]["adress"]
    data["sessions"][5]["id"] = data["sessions"][2]["id"]
    data["vaccinators"][1]["phone"] = "09800000001"  # the same number as vaccinators[0]
    message = refused(cli, r, write_json(tmp_path, data))
    assert "sessions[5].id" in message and "vaccinators[1].phone" in message


def test_the_same_row_in_two_files_loads_once_but_two_versions_are_refused(cli, r, store, tmp_path):
    week = sample_data(store.now().date(), days=3)
    later = sample_data(store.now().date() + timedelta(days=3), days=3)
    first, second = write_json(tmp_path, week, "w1.json"), write_json(tmp_path, later, "w2.json")
    assert run_load(cli, first, second).exit_code == 0  # the same centres and staff in each
    assert r.zcard(keys.centre_sessions("C100")) == 6
    later["centres"][0]["name"] = "PHC Saket New"
    message = refused(cli, r, first, write_json(tmp_path, later, "w2.json"))
    assert "w2.json centres[0].id: 'C100' is also at" in message and "w1.json centres[0]" in message


def test_csv_problems_name_the_line_and_field(cli, r, store, tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=25\n"
        'S2,C100,"2026-12-\n01",covishield,18,,09:00-11:00=25\n'
        f"S3,C100,{store.today()},covishield,18.5,,09:00-11:00=25\n"
        f"S4,C100,{store.today()},covishield,18,,99:99-00:00=25\n"
        f"S5,C100,{store.today()},covishield,18,,09:00-11:00=25,extra\n"
    )
    centres = tmp_path / "centres.csv"
    centres.write_text(
        "id,name,district,state,pincode,address\nC100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
    )
    message = refused(cli, r, centres, path)
    for expected in (
        "sessions.csv line 3, field date",
        "sessions.csv line 5, field min_age",
        "sessions.csv line 6, field slots[0].time",
        "sessions.csv line 7",
    ):
        assert expected in message, message
    assert "sessions.csv line 2" not in message


# -- property: random and hostile files never traceback and never half-write ------------------

FUZZ = settings_(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SAMPLE = json.loads((ROOT / "data" / "sample.json").read_text())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
hostile = st.one_of(
    json_values,
    st.sampled_from(
        [
            "20261201",
            "2026-W49-3",
            "2026-02-30",
            "99:99-00:00",
            "11:00-09:00",
            "५६०००२",
            "560003\n",
            "PHC\x00Saket",
            "\u202eevil",
            "x" * 500,
            "",
            " ",
            "C999",
            "+919800000001",
            "09800000001",
            "१२",
            True,
            12.7,
            "12",
            10**30,
            -1,
            0,
            [],
            {},
            ["+919800000001"],
            {"time": "09:00-11:00"},
        ]
    ),
)
FIELD_NAMES = sorted({name for rows in SAMPLE.values() for row in rows for name in row})
schema_like = st.dictionaries(  # the spec's shape, with hostile values in it
    st.sampled_from(["centres", "sessions", "vaccinators"]),
    st.lists(
        st.dictionaries(
            st.sampled_from([*FIELD_NAMES, "time", "capacity"]),
            st.one_of(
                hostile,
                st.lists(st.fixed_dictionaries({"time": hostile, "capacity": hostile}), max_size=3),
            ),
        ),
        max_size=4,
    ),
    max_size=3,
)
PATHS = [
    (kind, i, name)
    for kind, rows in SAMPLE.items()
    for i, row in enumerate(rows)
    for name in [*row, "slots.0.time", "slots.0.capacity", "extra"]
    if kind == "sessions" or not name.startswith("slots")
]
CSV_COLUMNS = [
    "id",
    "name",
    "district",
    "state",
    "pincode",
    "address",
    "centre_id",
    "date",
    "vaccine",
    "min_age",
    "max_age",
    "slots",
    "phone",
    "",
    "x,y",
    'q"',
]
csv_text = st.builds(
    lambda header, rows: "\n".join(",".join(r) for r in [header, *rows]),
    st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=8),
    st.lists(
        st.lists(
            st.one_of(
                st.text(max_size=12),
                st.sampled_from(
                    [
                        '"a,b"',
                        '"x\ny"',
                        '"',
                        "09:00-11:00=25",
                        "110017",
                        "C100",
                        "2026-12-01",
                        "18",
                        "09800000001",
                        "x" * 140_000,
                    ]
                ),
            ),
            max_size=8,
        ),
        max_size=5,
    ),
)


def mutate(data: dict, path: tuple, value) -> dict:
    """A copy of data with the field at path (kind, row, name) replaced, or removed (None)."""
    copy = json.loads(json.dumps(data))
    kind, i, name = path
    target, key = copy[kind][i], name
    if name.startswith("slots."):
        _, j, key = name.split(".")
        target = target["slots"][int(j)]
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
    return copy


def stored_shapes_hold(r) -> None:
    """What a successful load leaves: pincodes of six ASCII digits, real dates, real times."""
    for key in matching(r, "centre"):
        assert re.fullmatch(rb"[1-9][0-9]{5}", r.hget(key, "pincode"))
    for key in matching(r, "session"):
        fields = r.hgetall(key)
        date.fromisoformat(fields[b"date"].decode())
        for time in json.loads(fields[b"slots"]):
            assert re.fullmatch(
                r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]", time
            )


def dumped(r) -> dict:
    """Every key's DUMP (its exact bytes) and TTL, in one round trip after the scan."""
    names = sorted(r.scan_iter(count=1000))
    with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.dump(name)
            pipe.pttl(name)
        values = pipe.execute()
    return {name: (values[2 * i], values[2 * i + 1] > 0) for i, name in enumerate(names)}


def loads_whole_or_not_at_all(cli, r, path: Path) -> None:
    before = dumped(r)
    result = run_load(cli, path)
    assert result.exit_code in (0, 1) and result.output.strip()
    if result.exit_code:
        assert dumped(r) == before, result.output
    else:
        stored_shapes_hold(r)


@pytest.fixture
def booked(store, r):
    """The shipped sample, moved to start today, loaded, with a booking in its first slot."""
    data = sample_data(store.now().date())
    assert [len(rows) for rows in data.values()] == [len(rows) for rows in SAMPLE.values()]
    load(store, data)
    assert store.book(
        mobile="+919811111111",
        name="Asha",
        birth_year=1980,
        session_id=data["sessions"][0]["id"],
        slot=0,
    ).ok
    return data


@FUZZ
@given(path=st.sampled_from(PATHS), value=st.one_of(st.none(), hostile))
def test_any_change_to_the_sample_loads_whole_or_not_at_all(cli, r, booked, tmp_path, path, value):
    loads_whole_or_not_at_all(cli, r, write_json(tmp_path, mutate(booked, path, value)))


def nested(depth: int) -> str:
    return '{"centres": ' + "[" * depth + "]" * depth + "}"


@FUZZ
@given(
    text_=st.one_of(
        json_values.map(json.dumps),
        schema_like.map(json.dumps),
        st.integers(500, 100_000).map(nested),
    )
)
def test_any_json_loads_whole_or_not_at_all(cli, r, booked, tmp_path, text_):
    path = tmp_path / "data.json"
    path.write_text(text_)
    loads_whole_or_not_at_all(cli, r, path)


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".json", ".csv", ".txt"]))
def test_any_bytes_load_whole_or_not_at_all(cli, r, booked, tmp_path, raw, suffix):
    path = tmp_path / f"file{suffix}"
    path.write_bytes(raw)
    loads_whole_or_not_at_all(cli, r, path)


@FUZZ
@given(text_=csv_text)
def test_any_csv_loads_whole_or_not_at_all(cli, r, booked, tmp_path, text_):
    path = tmp_path / "rows.csv"
    path.write_text(text_, encoding="utf-8", errors="surrogatepass")
    loads_whole_or_not_at_all(cli, r, path)


def test_a_booking_landing_during_a_load_is_counted_before_capacity_is_cut(
    store, r, sample, monkeypatch
):
    sid = sample["sessions"][0]["id"]
    for i in range(2):
        assert store.book(
            mobile=f"+91981000000{i}", name="P", birth_year=1980, session_id=sid, slot=0
        ).ok
    changed = json.loads(json.dumps(sample))
    changed["sessions"][0]["slots"][0]["capacity"] = 2  # what is booked when the load starts
    changed["sessions"][1]["slots"][0]["capacity"] = 40
    checked = store._write_centres_and_staff  # runs after the check, before the sessions

    def a_third_booking_lands(data):
        assert store.book(
            mobile="+919810000009", name="Q", birth_year=1980, session_id=sid, slot=0
        ).ok
        return checked(data)

    monkeypatch.setattr(store, "_write_centres_and_staff", a_third_booking_lands)
    with pytest.raises(DataError, match=r"sessions\[0\].slots\[0\].capacity: 3 already booked"):
        load(store, changed)
    assert r.hget(session_key(r, sid), "cap:0") == b"25"  # never below what is booked
    assert r.hget(session_key(r, sid), "booked:0") == b"3"
    assert r.hget(session_key(r, sample["sessions"][1]["id"]), "cap:0") == b"40"  # the rest


def test_redis_away_is_one_line_not_a_traceback(settings, store, tmp_path):
    from app import create_app
    from tests.servers import free_port

    away = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    path = write_json(tmp_path, sample_data(store.now().date()))
    result = run_load(create_app({"SETTINGS": away}).test_cli_runner(), path)
    assert result.exit_code == 1
    assert "Redis failed" in result.output and "run the same command again" in result.output


def test_a_session_refused_by_a_racing_booking_is_named_and_the_rest_loaded(
    cli, r, store, sample, tmp_path, monkeypatch
):
    from gateway.store import Store

    first, second = sample["sessions"][0]["id"], sample["sessions"][1]["id"]
    for i in range(20):
        assert store.book(
            mobile=f"+9198100{i:05d}", name="Q", birth_year=1980, session_id=first, slot=0
        ).ok
    changed = json.loads(json.dumps(sample))
    changed["sessions"][0]["slots"][0]["capacity"] = 20  # exactly what is booked: allowed
    changed["sessions"][1]["slots"][0]["capacity"] = 40
    path = write_json(tmp_path, changed)
    checked = Store._write_centres_and_staff

    def one_more_lands(self, data):
        assert self.book(
            mobile="+919810099999", name="Q", birth_year=1980, session_id=first, slot=0
        ).ok
        return checked(self, data)

    monkeypatch.setattr(Store, "_write_centres_and_staff", one_more_lands)
    result = run_load(cli, path)
    assert result.exit_code == 1
    assert "refused, the rest was loaded" in result.output
    assert "21 already booked" in result.output
    assert r.hget(session_key(r, first), "cap:0") == b"25"
    assert r.hget(session_key(r, first), "booked:0") == b"21"
    assert r.hget(session_key(r, second), "cap:0") == b"40"
