"""SMS text: real segment counts (GSM-7 / UCS-2) and rendering of queued outbox entries.

A leaf beside the catalogue it fills: the flows render at reply time and the outbox at send
time, so both import it and it imports neither.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from flows import messages
from gateway import codes

# GSM 03.38 basic set, and the extension set whose characters take two septets.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("\f^{}\\[~]|€")

# Budgets, so a reply reaches a feature phone whole and cheaply: a USSD screen is 160
# characters with "CON "; SMS parts as (GSM-7, UCS-2): the booking confirmation at most 2
# English / 3 Hindi parts, the slip 3 / 5, a centre's notice of a session called off or moved
# (it carries the operator's reason) 2 / 4, conversation replies one GSM-7 part where they can.
USSD_TEXT = 156
SMS_BUDGETS = {
    "sms.booked": (2, 3),
    "sms.slip": (3, 5),
    "sms.centre_cancelled": (2, 4),
    "sms.centre_moved": (2, 4),
}
CONVERSATION_BUDGET = (1, 3)
# What gives way, in turn, when a text is over its budget: (param, letters kept).
REDUCTIONS = (
    ("address", 40),
    ("address", 0),
    ("name", 30),
    ("name", 20),
    ("name", 12),
    ("name", 8),
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# An operator's reason for calling off a session, as it goes into every SMS about it: plain
# GSM-7 letters (no character of the extension table, which takes two), one line, at most this
# many, so the notice keeps to its budget in both languages.
MAX_REASON = 60
_TYPOGRAPHIC = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


def clean_reason(text: str) -> str:
    """The reason as the SMS will carry it: typographic quotes and dashes made plain, spaces
    and line breaks made one space; ValueError saying what is wrong when it is empty, too
    long or has a letter a GSM-7 handset cannot show in one septet."""
    plain = " ".join(unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC).split())
    if not plain:
        raise ValueError("the reason is empty")
    if len(plain) > MAX_REASON:
        raise ValueError(f"the reason has {len(plain)} characters, at most {MAX_REASON}")
    odd = sorted({c for c in plain if c not in _GSM_BASIC or c in "\n\r"})
    if odd:
        raise ValueError(
            f"the reason has characters an SMS in plain text cannot carry: {''.join(odd)!r} "
            "(write it in Latin letters, e.g. Hindi in Roman script)"
        )
    return plain


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


def render_entry(fields: dict[str, str], secret: str | codes.Keyring) -> str:
    """The text of a queued outbox entry (``t`` template, ``l`` language, ``p`` JSON params).

    Security codes are not stored: they are derived here from ``SECRET_KEY`` at send time."""
    return render(fields["t"], fields.get("l") or "en", json.loads(fields.get("p") or "{}"), secret)


def render(template: str, lang: str, params: dict[str, Any], secret: str | codes.Keyring) -> str:
    """A filled template, kept to its budget: a centre's address is cut, then left out, then
    a long name (they run to 50 letters) shortened, until the text fits or is as short as it
    gets. An ISO ``date`` reads as the USSD screens show days (``Wed 02-12``)."""
    text = _fill(template, lang, params, secret)
    for key, keep in REDUCTIONS:
        if within_budget(template, text):
            break
        params = _shortened(params, key, keep)
        text = _fill(template, lang, params, secret)
    return text


def _fill(template: str, lang: str, params: dict[str, Any], secret: str | codes.Keyring) -> str:
    """The template filled; ``ref`` + ``ver`` give ``code``, and a param that is itself an entry
    ``{"t", "p"}`` (or a list of them, one per line) is rendered the same way, so one message
    can carry the codes of several bookings without any code being stored. ``kid`` names the
    key the code was made with (``secret`` is the keyring, or one key)."""
    params = dict(params)
    if _ISO_DATE.fullmatch(str(params.get("date", ""))):
        params["date"] = messages.day(params["date"], lang)
    params["address"] = f" ({params['address']})" if params.get("address") else ""
    if "ver" in params and "ref" in params:
        ring = codes.as_keyring(secret)
        params["code"] = ring.code(params["ref"], int(params["ver"]), params.pop("kid", None))
    for name, value in params.items():
        if _is_entry(value):
            params[name] = _fill(value["t"], lang, value.get("p") or {}, secret)
        elif isinstance(value, list) and value and all(_is_entry(v) for v in value):
            params[name] = "\n".join(_fill(v["t"], lang, v.get("p") or {}, secret) for v in value)
    return messages.text(template, lang, **params)


def within_budget(template: str, text: str) -> bool:
    """Whether a rendered text keeps to its template's budget (the budgets above)."""
    if template.startswith("ussd."):
        return len(text) <= USSD_TEXT
    encoding, parts = segments(text)
    gsm7, ucs2 = SMS_BUDGETS.get(template, CONVERSATION_BUDGET)
    return parts <= (gsm7 if encoding == "gsm7" else ucs2)


def _shortened(params: Any, key: str, keep: int) -> Any:
    """``params`` with every ``key`` inside it, nested entries too, cut to ``keep`` letters."""
    if isinstance(params, list):
        return [_shortened(v, key, keep) for v in params]
    if not isinstance(params, dict):
        return params
    return {
        k: shorten(v, keep) if k == key and isinstance(v, str) else _shortened(v, key, keep)
        for k, v in params.items()
    }


def shorten(text: str, keep: int) -> str:
    """At most ``keep`` letters of ``text``: whole words while they fit, else the first cut."""
    out: list[str] = []
    for word in text.split():
        if len(graphemes(" ".join(out + [word]))) > keep:
            break
        out.append(word)
    return " ".join(out) if out else "".join(graphemes(text)[:keep])


_VIRAMA = 9  # canonical combining class of the Indic viramas (्): they join conjuncts


def graphemes(text: str) -> list[str]:
    """The letters of a text as a reader counts them: a base with its marks, a conjunct
    (क्ष, श्री) as one, close to Unicode's extended grapheme clusters for Indic scripts."""
    out: list[str] = []
    for char in text:
        joins = unicodedata.category(char)[0] == "M" or char in "\u200c\u200d"
        after_virama = (
            bool(out)
            and unicodedata.combining(out[-1][-1]) == _VIRAMA
            and unicodedata.category(char) == "Lo"
        )
        if out and (joins or after_virama):
            out[-1] += char
        else:
            out.append(char)
    return out


def _is_entry(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("t"), str)
