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
from gateway.reference import load, read_file
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
    report = load(store, changed)
    assert len(report.problems) == 1
    assert sid in report.problems[0] and "3 bookings" in report.problems[0]
    assert r.hget(keys.session(sid), "cap:0") == b"25"  # refused, left as it was
    assert r.hget(keys.session(sample["sessions"][1]["id"]), "cap:0") == b"40"  # the rest loads
    changed["sessions"][0]["slots"][0]["capacity"] = 3  # down to exactly the bookings is fine
    assert not load(store, changed).problems


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
        load(store, read_file(tmp_path / name))
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
    data = read_file(ROOT / "data" / "sample.json")
    assert not load(store, data).problems
    assert len(data["centres"]) == 5 and len(data["vaccinators"]) == 2
    assert {c["district"] for c in data["centres"]} == {"South Delhi", "Lucknow"}


def test_a_csv_capacity_in_other_digits_is_refused_with_its_line(store, tmp_path):
    (tmp_path / "sessions.csv").write_text(
        "id,centre_id,date,vaccine,min_age,max_age,slots\n"
        f"S1,C100,{store.today()},covishield,18,,09:00-11:00=²\n")
    with pytest.raises(DataError, match="line 2, field slots"):
        read_file(tmp_path / "sessions.csv")


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
