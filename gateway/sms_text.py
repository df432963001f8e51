"""SMS text: real segment counts (GSM-7 / UCS-2) and rendering of queued outbox entries."""

from __future__ import annotations

import json

from flows import messages
from gateway import codes

# GSM 03.38 basic set, and the extension set whose characters take two septets.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("\f^{}\\[~]|€")


def is_gsm7(text: str) -> bool:
    return all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text)


def segments(text: str) -> tuple[str, int]:
    """(encoding, number of SMS parts) exactly as a handset would split ``text``."""
    if is_gsm7(text):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        return "gsm7", 1 if septets <= 160 else _parts_gsm7(text)
    units = len(text.encode("utf-16-le")) // 2
    return "ucs2", 1 if units <= 70 else _parts_ucs2(text)


def _parts_gsm7(text: str) -> int:
    # An escape pair is never split across parts: fill each 153-septet part greedily.
    parts, used = 1, 0
    for c in text:
        size = 2 if c in _GSM_EXTENDED else 1
        if used + size > 153:
            parts, used = parts + 1, 0
        used += size
    return parts


def _parts_ucs2(text: str) -> int:
    # A surrogate pair (emoji) is never split across parts: 67 code units per part.
    parts, used = 1, 0
    for c in text:
        size = 2 if ord(c) > 0xFFFF else 1
        if used + size > 67:
            parts, used = parts + 1, 0
        used += size
    return parts


def render_entry(fields: dict, secret: str) -> str:
    """The text of a queued outbox entry (``t`` template, ``l`` language, ``p`` JSON params).

    Security codes are not stored: they are derived here from ``SECRET_KEY`` at send time."""
    return render(fields["t"], fields.get("l") or "en", json.loads(fields.get("p") or "{}"),
                  secret)


def render(template: str, lang: str, params: dict, secret: str) -> str:
    """A filled template; ``ref`` + ``ver`` give ``code``, and a param that is itself an entry
    ``{"t", "p"}`` (or a list of them, one per line) is rendered the same way, so one message
    can carry the codes of several bookings without any code being stored."""
    params = dict(params)
    if "ver" in params and "ref" in params:
        params["code"] = codes.derive_code(secret, params["ref"], int(params["ver"]))
    for name, value in params.items():
        if _is_entry(value):
            params[name] = render(value["t"], lang, value.get("p") or {}, secret)
        elif isinstance(value, list) and value and all(_is_entry(v) for v in value):
            params[name] = "\n".join(render(v["t"], lang, v.get("p") or {}, secret)
                                     for v in value)
    return messages.text(template, lang, **params)


def _is_entry(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("t"), str)
