"""What the simulated people do: USSD booking journeys read each screen and answer it, SMS
citizens send STATUS or a whole BOOK conversation, vaccinators send VERIFY then DOSE.

Each script is a generator (see ``bench.load``): it yields a form, is sent ``(status,
body)`` back and returns True when it reached its goal. The bare scripts send forms of the
same shape to the baseline app and ignore its ``CON hello``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.booking import mobile, person
from bench.data import BIRTH_YEAR, JOURNEY_PINCODES
from gateway import codes

MAX_HOPS = 20  # a journey that needs more is lost in the menu: counted as not booked
_OPTION = re.compile(r"^\s*(\d{1,2})[.):-]?\s+(.+?)\s*$", re.MULTILINE)
_NAVIGATION = re.compile(r"\b(back|main menu|more|next|exit|no|cancel)\b", re.I)
# Words a screen uses to offer the choices the journey wants.
_YES = re.compile(r"(?:^|\s)(\d{1,2})[.):-]?\s*(?:yes|confirm)\b", re.I | re.MULTILINE)
_WANT = [("book", re.compile(r"\bbook\b|new booking", re.I))]
_ASKS = [
    ("year", re.compile(r"\byear\b|\bborn\b|\bbirth", re.I)),
    ("pincode", re.compile(r"\bpin ?code\b|\bpin\b", re.I)),
    ("name", re.compile(r"\bname\b", re.I)),
]
_DECLINE = re.compile(r"\b(resume|continue)\b", re.I)


def _options(screen: str) -> list[tuple[str, str]]:
    # Choices only: "0 Back", "00 Main menu", "9 More" move around, they choose nothing.
    return [
        (number, label)
        for number, label in _OPTION.findall(screen)
        if number not in ("0", "00") and not _NAVIGATION.search(label)
    ]


def answer(screen: str, n: int) -> str:
    """The input a person who wants to book answers ``screen`` with."""
    body = screen[4:] if screen[:4] in ("CON ", "END ") else screen
    yes = _YES.search(body)  # "1 Yes 2 No 0 Back" often shares one line
    if yes:
        return yes.group(1)
    options = _options(body)
    for _, pattern in _WANT:
        for number, label in options:
            if pattern.search(label):
                return number
    prompt = body.splitlines()[0] if body else ""
    for kind, pattern in _ASKS:
        if pattern.search(prompt) or (not options and pattern.search(body)):
            return {
                "year": str(BIRTH_YEAR),
                "pincode": JOURNEY_PINCODES[n % len(JOURNEY_PINCODES)],
                "name": person(n),
            }[kind]
    if options:
        # A menu of centres, dates or slots: the first (the earliest, busiest) one.
        return options[0][0]
    return "1"


def _ussd_form(session_id: str, phone: str, inputs: list[str]) -> dict:
    return {
        "sessionId": session_id,
        "serviceCode": "*384*1#",
        "phoneNumber": phone,
        "networkCode": "99999",
        "text": "*".join(inputs),
    }


def ussd_booking(n: int, series: int = 60):
    """A new caller dials, books one beneficiary through the menu and hears the reference."""
    session_id, phone, inputs = f"ATUid_bench_{series}_{n}", mobile(n, series), []
    status, screen = yield _ussd_form(session_id, phone, inputs)
    for _ in range(MAX_HOPS):
        if status != 200 or not screen.startswith("CON "):
            break
        inputs.append(answer(screen, n))
        status, screen = yield _ussd_form(session_id, phone, inputs)
    return status == 200 and screen.startswith("END ") and _has_reference(screen)


def _has_reference(screen: str) -> bool:
    return any(codes.parse_reference(m) for m in re.findall(r"\d[\d -]{7,14}\d", screen))


def bare_ussd(hops: int = 9):
    """A factory of scripts that send ``hops`` USSD-shaped forms to the bare app."""

    def script(n: int):
        session_id, phone, inputs = f"ATUid_bare_{n}", mobile(n, 59), []
        yield _ussd_form(session_id, phone, inputs)
        for answer_ in ["1", person(n), str(BIRTH_YEAR), "110017", "1", "1", "1", "1"][: hops - 1]:
            inputs.append(answer_)
            yield _ussd_form(session_id, phone, inputs)
        return True

    return script


# -- inbound SMS ----------------------------------------------------------------------------------


def _sms_form(sender: str, text: str, message_id: str) -> dict:
    return {
        "from": sender,
        "to": "12345",
        "text": text,
        "date": "2026-06-01 10:00:00",
        "id": message_id,
        "linkId": "",
        "networkCode": "99999",
    }


def sms_book_turns(n: int) -> list[str]:
    """The texts of a whole BOOK conversation answered without looking at the replies."""
    return [
        f"BOOK {JOURNEY_PINCODES[n % len(JOURNEY_PINCODES)]}",
        person(n),
        str(BIRTH_YEAR),
        "1",
        "1",
        "1",
        "YES",
    ]


class SmsMix:
    """Citizens (STATUS, BOOK) and vaccinators (VERIFY, DOSE), in a fixed mix.

    ``bookings`` are (vaccinator, ref) pairs booked for today at that vaccinator's centre,
    each used once; when they run out the script becomes a STATUS.
    """

    def __init__(
        self,
        secret: str,
        bookings: list[tuple[str, str]],
        status_mobiles: list[str],
        turns: Callable[[int], list[str]] = sms_book_turns,
        series: int = 90,
    ):
        self.secret = secret
        self.bookings = list(bookings)
        self.status_mobiles = status_mobiles
        self.turns = turns
        self.series = series

    def __call__(self, n: int):
        kind = n % 4
        if kind in (2, 3) and self.bookings:
            return self._vaccinator(n, *self.bookings.pop())
        if kind == 0:
            return self._book(n)
        return self._status(n)

    def _status(self, n: int):
        phone = self.status_mobiles[n % len(self.status_mobiles)]
        status, _ = yield _sms_form(phone, "STATUS", f"ATXid_bench_s{self.series}_{n}")
        return status == 200

    def _book(self, n: int):
        phone = mobile(n, self.series)
        for i, text in enumerate(self.turns(n)):
            status, _ = yield _sms_form(phone, text, f"ATXid_bench_b{self.series}_{n}_{i}")
            if status != 200:
                return False
        return True

    def _vaccinator(self, n: int, vaccinator: str, ref: str):
        code = codes.derive_code(self.secret, ref, 0)
        status, _ = yield _sms_form(
            vaccinator,
            f"VERIFY {codes.format_reference(ref)} {code}",
            f"ATXid_bench_v{self.series}_{n}",
        )
        if status != 200:
            return False
        status, _ = yield _sms_form(vaccinator, f"DOSE {ref}", f"ATXid_bench_d{self.series}_{n}")
        return status == 200


def bare_sms(n: int):
    """One inbound-SMS-shaped form to the bare app."""
    yield _sms_form(mobile(n, 49), "STATUS", f"ATXid_bare_{n}")
    return True
