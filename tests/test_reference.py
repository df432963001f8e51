"""Loading reference data: idempotent upserts, clear errors, capacity never cut below bookings."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from gateway import keys
from gateway.errors import DataError
from gateway.reference import load, load_files
from gateway.sample import sample_data
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
        assert store.book(mobile=f"+91981000000{i}", name="P", birth_year=1980,
                          session_id=sid, slot=0).ok
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
    assert r.hget(keys.session(sid), "cap:0") == b"3"
    assert r.hget(keys.session(sample["sessions"][1]["id"]), "cap:0") == b"40"


def test_a_slot_dropped_from_the_list_counts_as_capacity_zero(store, r, sample):
    sid = sample["sessions"][0]["id"]
    assert store.book(mobile="+919810000000", name="P", birth_year=1980, session_id=sid,
                      slot=2).ok
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
    for expected in ("centres[1].pincode", "sessions[2].date", "sessions[3].slots[0].capacity",
                     "vaccinators[0].phone", "vaccinators[1].centre_id: unknown centre 'C999'"):
        assert expected in message
    assert r.dbsize() == 0


def test_csv_files_load_like_json(store, r, tmp_path):
    (tmp_path / "centres.csv").write_text(
        "id,name,district,state,pincode,address\n"
        "C100,PHC Saket,South Delhi,Delhi,110017,J Block\n")
    (tmp_path / "sessions.csv").write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=25;11:00-13:00=10\n")
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
    env = {"REDIS_URL": redis_url, "SECRET_KEY": "k", "INSTANCE_PATH": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "flask", "--app", "app", "load-data"]
    ok = subprocess.run([*run, str(good)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "5 centres, 35 sessions" in ok.stdout and "2 vaccinators" in ok.stdout
    refused = subprocess.run([*run, str(bad)], cwd=ROOT, env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 1
    assert "centres[0].name: missing" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_shipped_sample_file_is_valid(store):
    report = load_files(store, [ROOT / "data" / "sample.json"])
    assert (report.centres, report.vaccinators) == (5, 2)
    assert {store.r.hget(keys.centre(cid), "district") for cid in store.centre_ids()} == {
        b"South Delhi", b"Lucknow"}


def test_a_csv_capacity_in_other_digits_is_refused_with_its_line(store, tmp_path):
    (tmp_path / "sessions.csv").write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=²\n")
    with pytest.raises(DataError, match=r"line 2, field slots\[0\].capacity"):
        load_files(store, [tmp_path / "sessions.csv"])


def test_an_operator_can_take_a_vaccinators_rights_away(settings, sample, store):
    from app import create_app

    runner = create_app({"SETTINGS": settings}).test_cli_runner()
    result = runner.invoke(args=["remove-vaccinator", "09800000001"])
    assert result.exit_code == 0 and "+919800000001 is no longer a vaccinator" in result.output
    assert store.vaccinator("+919800000001") is None
    ref = store.book(mobile="+919811111111", name="Asha", birth_year=1990,
                     session_id=sample["sessions"][0]["id"], slot=0).value
    assert store.verify(vaccinator="+919800000001", ref=ref,
                        code=store.appointment(ref)["code"]).status == "not_vaccinator"
    again = runner.invoke(args=["remove-vaccinator", "+919800000001"])
    assert again.exit_code == 1 and "not a registered vaccinator" in again.output


# -- all or nothing, never a traceback (issue 9 §5) ------------------------------------------

def run_load(settings, *paths):
    """``flask load-data PATHS`` through Click's runner; fails the test on any traceback."""
    from app import create_app

    runner = create_app({"SETTINGS": settings}).test_cli_runner()
    result = runner.invoke(args=["load-data", *map(str, paths)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.output
    return result


def refused(settings, r, *paths) -> str:
    """Load PATHS, expecting a refusal that writes nothing; the refusal's text."""
    before = snapshot(r)
    result = run_load(settings, *paths)
    assert result.exit_code == 1, result.output
    assert snapshot(r) == before
    return result.output


def write_json(tmp_path, data, name="week.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


@pytest.mark.parametrize("bad", ["20261201", "2026-W49-3", "2026-02-30", "2026-12-1",
                                 "२०२६-१२-०१", " 2026-12-01x", 20261201])
def test_a_date_not_written_yyyy_mm_dd_refuses_the_file(settings, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][3]["date"] = bad
    message = refused(settings, r, write_json(tmp_path, data))
    assert "week.json sessions[3].date" in message and "YYYY-MM-DD" in message


def test_a_file_that_is_not_utf8_is_refused_by_name(settings, r, tmp_path):
    path = tmp_path / "centres.csv"
    path.write_bytes(b"id,name,district,state,pincode,address\n"
                     b"C100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
                     b"C101,Caf\xe9 Clinic,South Delhi,Delhi,110017,\n")
    message = refused(settings, r, path)
    assert "centres.csv line 3" in message and "UTF-8" in message


def test_deeply_nested_json_is_refused(settings, r, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"centres": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "deep.json" in refused(settings, r, path)


def test_a_csv_field_over_the_csv_limit_is_refused_with_its_line(settings, r, tmp_path):
    path = tmp_path / "centres.csv"
    path.write_text("id,name,district,state,pincode,address\n"
                    "C100,PHC Saket,South Delhi,Delhi,110017,J Block\n"
                    f'C101,PHC Kalkaji,South Delhi,Delhi,110019,"{"x" * 200_000}"\n')
    assert "centres.csv line 3" in refused(settings, r, path)


@pytest.mark.parametrize("bad", ["99:99-00:00", "11:00-09:00", "09:00-09:00", "9:00-11:00",
                                 "24:00-25:00", "09:60-10:00", "०९:००-११:००", 900])
def test_slot_times_must_be_real_and_end_after_they_start(settings, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][0]["slots"][2]["time"] = bad
    assert "sessions[0].slots[2].time" in refused(settings, r, write_json(tmp_path, data))


def test_pincodes_are_stored_as_six_ascii_digits(settings, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["centres"][0]["pincode"] = "५६०००२"
    data["centres"][1]["pincode"] = "560003\n"
    data["centres"][2]["pincode"] = " 110 017 "
    assert run_load(settings, write_json(tmp_path, data)).exit_code == 0
    assert r.hget(keys.centre("C100"), "pincode") == b"560002"
    assert r.hget(keys.centre("C101"), "pincode") == b"560003"
    assert r.hget(keys.centre("C102"), "pincode") == b"110017"
    assert [c["id"] for c in store.availability("560002")] == ["C100"]
    assert [c["id"] for c in store.availability("560003")] == ["C101"]


@pytest.mark.parametrize("bad", ["56000", "5600021", "56OO02", "056000", "560-002",
                                 "560002\x00", 560002, ["560002"]])
def test_a_pincode_that_is_not_six_digits_is_refused(settings, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["centres"][4]["pincode"] = bad
    assert "centres[4].pincode" in refused(settings, r, write_json(tmp_path, data))


@pytest.mark.parametrize(("kind", "index", "field", "bad"), [
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
])
def test_text_fields_have_limits_and_no_control_characters(settings, r, store, tmp_path,
                                                          kind, index, field, bad):
    data = sample_data(store.now().date())
    data[kind][index][field] = bad
    message = refused(settings, r, write_json(tmp_path, data))
    assert f"{kind}[{index}].{field}" in message
    assert "\x07" not in message and "\x1b" not in message and "\u202e" not in message


def test_text_at_its_limit_loads(settings, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["centres"][0].update(name="N" * 40, address="A" * 160, district="D" * 60,
                              state="S" * 60)
    data["vaccinators"][0]["name"] = "रामकुमारी देवी" + "x" * 66
    assert run_load(settings, write_json(tmp_path, data)).exit_code == 0
    assert r.hget(keys.centre("C100"), "address") == b"A" * 160


@pytest.mark.parametrize(("field", "bad"), [
    ("min_age", True), ("min_age", 12.7), ("min_age", "12"), ("max_age", 18.0),
    ("max_age", False), ("min_age", -1), ("max_age", 131), ("min_age", [18]),
])
def test_ages_are_whole_numbers(settings, r, store, tmp_path, field, bad):
    data = sample_data(store.now().date())
    data["sessions"][4][field] = bad
    assert f"sessions[4].{field}" in refused(settings, r, write_json(tmp_path, data))


@pytest.mark.parametrize("bad", [True, 2.5, "25", -1, 100_001, None])
def test_capacities_are_whole_numbers(settings, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["sessions"][0]["slots"][1]["capacity"] = bad
    assert "sessions[0].slots[1].capacity" in refused(settings, r, write_json(tmp_path, data))


def test_min_age_above_max_age_is_refused(settings, r, store, tmp_path):
    data = sample_data(store.now().date())
    data["sessions"][4].update(min_age=45, max_age=18)
    assert "sessions[4].max_age" in refused(settings, r, write_json(tmp_path, data))


@pytest.mark.parametrize("bad", [["+919800000001"], 919800000001, {"n": "+919800000001"},
                                 "+91 98000\x0000001", "12"])
def test_a_phone_must_be_one_number_written_as_text(settings, r, store, tmp_path, bad):
    data = sample_data(store.now().date())
    data["vaccinators"][1]["phone"] = bad
    assert "vaccinators[1].phone" in refused(settings, r, write_json(tmp_path, data))


def test_a_later_file_refused_means_the_earlier_ones_are_not_written_either(
        settings, r, store, tmp_path):
    good = write_json(tmp_path, sample_data(store.now().date()), "good.json")
    bad = write_json(tmp_path, {"centres": [{"id": "C1"}]}, "bad.json")
    message = refused(settings, r, good, bad)
    assert "bad.json centres[0].name: missing" in message


def test_sessions_may_name_centres_of_another_file_or_already_loaded(settings, r, store,
                                                                     tmp_path):
    data = sample_data(store.now().date())
    centres = write_json(tmp_path, {"centres": data["centres"]}, "centres.json")
    sessions = write_json(tmp_path, {"sessions": data["sessions"]}, "sessions.json")
    staff = write_json(tmp_path, {"vaccinators": data["vaccinators"]}, "staff.json")
    assert run_load(settings, sessions, centres).exit_code == 0
    assert run_load(settings, staff).exit_code == 0  # its centres are already in Redis
    assert store.vaccinator("+919800000002")["centre_id"] == "C200"
    orphan = write_json(tmp_path, {"vaccinators": [{"phone": "+919800000009",
                                                    "centre_id": "C999"}]}, "orphan.json")
    assert "unknown centre 'C999'" in refused(settings, r, orphan)


def test_misspelt_keys_and_repeated_ids_are_refused(settings, r, store, tmp_path):
    data = sample_data(store.now().date())
    assert "centers" in refused(settings, r, write_json(tmp_path, {"centers": data["centres"]}))
    data["centres"][0]["adress"] = "J Block"
    assert "centres[0].adress" in refused(settings, r, write_json(tmp_path, data))
    del data["centres"][0]["adress"]
    data["sessions"][5]["id"] = data["sessions"][2]["id"]
    data["vaccinators"][1]["phone"] = "09800000001"  # the same number as vaccinators[0]
    message = refused(settings, r, write_json(tmp_path, data))
    assert "sessions[5].id" in message and "vaccinators[1].phone" in message


def test_csv_problems_name_the_line_and_field(settings, r, store, tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text("id,centre_id,date,vaccine,min_age,max_age,slots\n"
                    f"S1,C100,{store.today()},covishield,18,,09:00-11:00=25\n"
                    'S2,C100,"2026-12-\n01",covishield,18,,09:00-11:00=25\n'
                    f"S3,C100,{store.today()},covishield,18.5,,09:00-11:00=25\n"
                    f"S4,C100,{store.today()},covishield,18,,99:99-00:00=25\n"
                    f"S5,C100,{store.today()},covishield,18,,09:00-11:00=25,extra\n")
    centres = tmp_path / "centres.csv"
    centres.write_text("id,name,district,state,pincode,address\n"
                       "C100,PHC Saket,South Delhi,Delhi,110017,J Block\n")
    message = refused(settings, r, centres, path)
    for expected in ("sessions.csv line 3, field date", "sessions.csv line 5, field min_age",
                     "sessions.csv line 6, field slots[0].time", "sessions.csv line 7"):
        assert expected in message, message
    assert "sessions.csv line 2" not in message
