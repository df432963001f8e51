"""A realistic demo data set: five centres in two districts, sessions for the next 7 days,
two vaccinators. ``data/sample.json`` is this, written for one week; a first run builds it
afresh for the current week so the demo always has open slots."""

from __future__ import annotations

import copy
from datetime import date, timedelta

CENTRES = [
    {
        "id": "C100",
        "name": "PHC Saket",
        "district": "South Delhi",
        "state": "Delhi",
        "pincode": "110017",
        "address": "J Block, Saket, New Delhi",
    },
    {
        "id": "C101",
        "name": "UPHC Kalkaji",
        "district": "South Delhi",
        "state": "Delhi",
        "pincode": "110019",
        "address": "Block H, Kalkaji, New Delhi",
    },
    {
        "id": "C102",
        "name": "Dispensary Malviya Nagar",
        "district": "South Delhi",
        "state": "Delhi",
        "pincode": "110017",
        "address": "Shivalik Road, Malviya Nagar",
    },
    {
        "id": "C200",
        "name": "UPHC Aminabad",
        "district": "Lucknow",
        "state": "Uttar Pradesh",
        "pincode": "226018",
        "address": "Aminabad Road, Lucknow",
    },
    {
        "id": "C201",
        "name": "CHC Sarojini Nagar",
        "district": "Lucknow",
        "state": "Uttar Pradesh",
        "pincode": "226008",
        "address": "Kanpur Road, Sarojini Nagar, Lucknow",
    },
]
VACCINATORS = [
    {"phone": "+919800000001", "name": "A. Kumar", "centre_id": "C100"},
    {"phone": "+919800000002", "name": "S. Verma", "centre_id": "C200"},
]
_PLANS = {  # centre -> (vaccine, min_age, max_age, slot capacities)
    "C100": ("COVISHIELD", 18, None, [25, 25, 20]),
    "C101": ("COVAXIN", 18, 44, [30, 30]),
    "C102": ("COVISHIELD", 45, None, [20, 20]),
    "C200": ("COVISHIELD", 18, None, [25, 25, 25]),
    "C201": ("COVAXIN", 18, None, [15, 15]),
}
_TIMES = ["09:00-11:00", "11:00-13:00", "14:00-16:00"]


def sample_data(first_day: date, days: int = 7) -> dict:
    """The demo data with sessions from ``first_day`` for ``days`` days."""
    sessions = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for cid, (vaccine, min_age, max_age, caps) in _PLANS.items():
            sessions.append(
                {
                    "id": f"S{cid[1:]}-{day:%Y%m%d}",
                    "centre_id": cid,
                    "date": day.isoformat(),
                    "vaccine": vaccine,
                    "min_age": min_age,
                    "max_age": max_age,
                    "slots": [
                        {"time": t, "capacity": c} for t, c in zip(_TIMES, caps, strict=False)
                    ],
                }
            )
    return {
        "centres": copy.deepcopy(CENTRES),
        "sessions": sessions,
        "vaccinators": copy.deepcopy(VACCINATORS),
    }
