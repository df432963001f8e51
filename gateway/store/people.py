"""Who a person on a mobile is: their name, as the records of the mobile's bucket key it."""

from __future__ import annotations

import unicodedata


def name_key(name: str) -> str:
    """How two spellings of one beneficiary's name are told to be the same person."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())
