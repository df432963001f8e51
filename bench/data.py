"""The demo data scaled up for load: more capacity, more centres and vaccinators, and a
dedicated centre of few slots for the contended-booking race.

Built on ``gateway.sample.sample_data`` and loaded through ``gateway.store.reference.load``, the
same path an operator's ``load-data`` takes.
"""

from __future__ import annotations

from datetime import date, timedelta

from gateway.sample import sample_data
from gateway.store.reference import load

# Pincodes the journeys ask for; each has centres open to a beneficiary born in BIRTH_YEAR.
JOURNEY_PINCODES = ["110017", "226018"]
BIRTH_YEAR = 1990
RACE_CENTRE = "C900"
SEARCH_PINCODE = "560001"  # the pincode an availability search asks for
EXTRA_CENTRES = 40  # more centres and vaccinators, as a district-sized deployment has


def scaled(first_day: date, *, capacity: int = 20000, days: int = 7) -> dict:
    """The sample data with every slot at ``capacity`` and ``EXTRA_CENTRES`` more centres,
    each with its own vaccinator."""
    data = sample_data(first_day, days)
    for session in data["sessions"]:
        for slot in session["slots"]:
            slot["capacity"] = capacity
    for n in range(EXTRA_CENTRES):
        cid = f"C{300 + n}"
        data["centres"].append(
            {
                "id": cid,
                "name": f"PHC Ward {n + 1}",
                "district": "Bench District",
                "state": "Delhi",
                "pincode": f"{120000 + n:06d}",
                "address": f"Ward {n + 1}",
            }
        )
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            data["sessions"].append(
                {
                    "id": f"S{cid[1:]}-{day:%Y%m%d}",
                    "centre_id": cid,
                    "date": day.isoformat(),
                    "vaccine": "COVISHIELD",
                    "min_age": 18,
                    "max_age": None,
                    "slots": [
                        {"time": "09:00-11:00", "capacity": capacity},
                        {"time": "11:00-13:00", "capacity": capacity},
                    ],
                }
            )
        data["vaccinators"].append(
            {"phone": f"+91980001{n:04d}", "name": f"Vaccinator {n + 1}", "centre_id": cid}
        )
    return data


def race(first_day: date, *, sessions: int = 10, slots: int = 2, capacity: int = 25) -> dict:
    """One centre with ``sessions`` × ``slots`` slots of ``capacity``: the contended prize."""
    centre = {
        "id": RACE_CENTRE,
        "name": "Race Hall",
        "district": "Bench District",
        "state": "Delhi",
        "pincode": "129999",
        "address": "Race Road",
    }
    times = ["09:00-11:00", "11:00-13:00", "14:00-16:00", "16:00-18:00"][:slots]
    rows = []
    for n in range(sessions):
        day = first_day + timedelta(days=n % 7)
        rows.append(
            {
                "id": f"S900-{n:02d}-{day:%Y%m%d}",
                "centre_id": RACE_CENTRE,
                "date": day.isoformat(),
                "vaccine": "COVISHIELD",
                "min_age": 18,
                "max_age": None,
                "slots": [{"time": t, "capacity": capacity} for t in times],
            }
        )
    return {"centres": [centre], "sessions": rows, "vaccinators": []}


def _centres(first_day: date, ids: list[str], pincode_of, *, days: int, district: str) -> dict:
    """Centres with one session a day for ``days`` days from ``first_day``, 2 slots of 100."""
    data: dict = {"centres": [], "sessions": [], "vaccinators": []}
    for n, cid in enumerate(ids):
        data["centres"].append(
            {
                "id": cid,
                "name": f"{district} Centre {n + 1}",
                "district": district,
                "state": "Karnataka",
                "pincode": pincode_of(n),
                "address": f"{n + 1} Main Road",
            }
        )
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            data["sessions"].append(
                {
                    "id": f"S{cid}-{day:%Y%m%d}",
                    "centre_id": cid,
                    "date": day.isoformat(),
                    "vaccine": "COVAXIN",
                    "min_age": 18,
                    "max_age": None,
                    "slots": [
                        {"time": "09:00-11:00", "capacity": 100},
                        {"time": "11:00-13:00", "capacity": 100},
                    ],
                }
            )
    return data


def search_pincode(first_day: date, *, centres: int = 10, days: int = 7) -> dict:
    """``centres`` centres in SEARCH_PINCODE, each open every day for ``days`` days: what an
    availability search for that pincode reads."""
    ids = [f"Q{n:03d}" for n in range(centres)]
    return _centres(first_day, ids, lambda n: SEARCH_PINCODE, days=days, district="Search")


def other_centres(first_day: date, count: int, *, start: int = 0, days: int = 1) -> dict:
    """``count`` centres in other pincodes (10 to a pincode, none SEARCH_PINCODE), each with
    ``days`` days of sessions: the rest of a state's data, which a search must not read."""
    ids = [f"R{n:05d}" for n in range(start, start + count)]
    return _centres(
        first_day, ids, lambda n: f"{570000 + (start + n) // 10:06d}", days=days, district="Other"
    )


def load_all(store, *datasets: dict) -> None:
    """Load data sets in order; any refusal (DataError) is a bench bug, so it stops the run."""
    for data in datasets:
        load(store, data)
