"""Message catalogues, one JSON file per language, editable without touching code.

``text(key, lang, **params)`` fills a template; a key missing from a language falls back to
English so a half-finished translation never leaves a person without an answer.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from gateway.codes import format_certificate, format_reference

LANGUAGES = ("en", "hi")
DEFAULT = "en"
_HERE = Path(__file__).parent


@cache
def catalogue(lang: str) -> dict[str, str]:
    """All templates of a language (read once per process)."""
    data = json.loads((_HERE / f"{lang}.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def template(key: str, lang: str) -> str:
    lang = lang if lang in LANGUAGES else DEFAULT
    return catalogue(lang).get(key) or catalogue(DEFAULT)[key]


def text(key: str, lang: str = DEFAULT, **params: Any) -> str:
    """The filled template; ``ref`` also yields ``ref_shown``, and a certificate ID ``cert``
    is shown, grouped for reading."""
    if "ref" in params:
        params.setdefault("ref_shown", format_reference(str(params["ref"])))
    if "cert" in params:
        params["cert"] = format_certificate(str(params["cert"]))
    return template(key, lang).format(**params)


def day(iso: str, lang: str = DEFAULT) -> str:
    """A short day label, e.g. ``Mon 01-12`` (``सोम 01-12``)."""
    d = date.fromisoformat(iso)
    names = template("days", lang).split()
    return text("day", lang, wd=names[d.weekday()], dd=f"{d.day:02d}", mm=f"{d.month:02d}")
