"""Phone numbers: stored in E.164, typed in any local form, masked in logs."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=4096)  # every hop of a session parses the same number: 4% of a hop's CPU
def normalise(text: str, region: str = "IN") -> str | None:
    """The E.164 form of a number, or None when it is not a possible number."""
    try:
        number = phonenumbers.parse((text or "").strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def local_mobile(text: str, region: str = "IN") -> str | None:
    """The E.164 form of a valid mobile number of ``region`` (an SMS must reach it), or None:
    a landline, a number of another country or one no plan can have is refused."""
    try:
        number = phonenumbers.parse((text or "").strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number_for_region(number, region):
        return None
    if phonenumbers.number_type(number) not in _MOBILE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def mask(number: str | None) -> str:
    """``+9198******21``: enough to tell numbers apart in a log, not enough to call them."""
    if not number:
        return "-"
    if len(number) <= 6:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]
