"""Reading what people type: keywords in any catalogue language, numbers, names, yes and no.

Keywords and their aliases live in the catalogues (``kw.<command>``, space-separated), so a
translator adds a Hindi alias without touching code. Matching is case-insensitive, ignores
punctuation and extra spaces, and reads Devanagari digits as digits.
"""

from __future__ import annotations

import unicodedata
from functools import cache

from flows import messages
from flows.messages.sms import graphemes
from gateway.codes import ascii_digits

COMMANDS = (
    "book",
    "status",
    "cancel",
    "code",
    "cert",
    "lang",
    "help",
    "verify",
    "dose",
    "today",
    "walkin",
)
VACCINATOR_COMMANDS = ("verify", "dose", "today", "walkin")
ANSWERS = ("yes", "no", "more", "lang_en", "lang_hi")
MAX_NAME = 50  # letters as a reader counts them (grapheme clusters), not code points
_NAME_PUNCTUATION = set(" .'-")


def normal(text: str) -> str:
    """NFC text with ASCII digits and single spaces, trimmed."""
    return " ".join(ascii_digits(unicodedata.normalize("NFC", text or "")).split())


def _wordish(char: str) -> bool:
    # Letters, combining marks (Devanagari vowel signs) and digits make words; the rest splits.
    return unicodedata.category(char)[0] in "LMN"


def tokens(text: str) -> list[str]:
    """The words of a text, casefolded, punctuation dropped."""
    out, word = [], []
    for char in normal(text).casefold():
        if _wordish(char):
            word.append(char)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


@cache
def _aliases() -> dict[tuple[str, ...], str]:
    """Every alias of every keyword and answer word, from all catalogues, as its words: an
    alias spelt with punctuation (``walk-in``) is read as those words in a row."""
    table = {}
    for lang in messages.LANGUAGES:
        entries = messages.catalogue(lang)
        for word in COMMANDS + ANSWERS:
            for alias in entries.get(f"kw.{word}", "").split():
                table[tuple(tokens(alias))] = word
    return table


def meaning(token: str) -> str | None:
    """The keyword or answer word a token stands for, if any."""
    return _aliases().get((token,))


def command(text: str) -> tuple[str | None, str]:
    """(command, the rest of the text) when the text starts with a keyword, else (None, text)."""
    clean = normal(text)
    first = tokens(clean)[:2]
    for size in (2, 1):  # "walk in" is WALKIN, not WALK and "in"
        word = _aliases().get(tuple(first[:size])) if len(first) >= size else None
        if word in COMMANDS:
            return word, _after(clean, first[:size])
    return None, clean


def _after(clean: str, words_: list[str]) -> str:
    # The rest starts after the keyword's own characters, whatever punctuation preceded them.
    start = 0
    for word in words_:
        start = clean.casefold().find(word, start) + len(word)
    return clean[start:].strip(" .,:;!?#*-")


_LOOKALIKE = str.maketrans("0135", "oies")  # digits typed for the letters they look like


def near_miss(text: str) -> tuple[str, str] | None:
    """(vaccinator command, the rest) when the first word looks like a vaccinator command
    mistyped: the same first letter and one edit away (two for VERIFY), a swap of neighbours
    or a look-alike digit (``D0SE``) counting as one; known words and names like Rose (or Wali,
    two edits from WALKIN) are not."""
    clean = normal(text)
    first = tokens(clean)[:1]
    if not first or meaning(first[0]):
        return None
    word = first[0].translate(_LOOKALIKE)
    if not (word.isascii() and word.isalpha() and len(word) >= 3):
        return None
    for target in VACCINATOR_COMMANDS:
        if word[0] == target[0] and _edits(word, target) <= (2 if target == "verify" else 1):
            return target, _after(clean, first)
    return None


def _edits(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: insert, delete, replace, or swap two neighbours."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def answer_word(text: str) -> str | None:
    """The answer word a whole reply stands for (``yes``, ``no``, ``more``…), if any."""
    words = tokens(text)
    return meaning(words[0]) if len(words) == 1 else None


def yes(text: str) -> bool:
    """Whether a reply says yes: ``1`` or a yes word (``haan`` and ``ji`` too)."""
    return normal(text) == "1" or answer_word(text) == "yes"


def no(text: str) -> bool:
    """Whether a reply says no: ``2`` or a no word (``nahi`` and ``na`` too)."""
    return normal(text) == "2" or answer_word(text) == "no"


def choice(text: str, count: int) -> int | None:
    """The option number 1..count a reply picks, if it is one."""
    digits = normal(text).strip(" .)#")
    if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= count:
        return int(digits)
    return None


def person_name(text: str) -> str | None:
    """A beneficiary's name as typed (letters of any script, spaces, . ' -), 2 to 50."""
    name = " ".join(unicodedata.normalize("NFC", text or "").split())
    if not 1 <= len(graphemes(name)) <= MAX_NAME:
        return None
    if sum(unicodedata.category(c).startswith("L") for c in name) < 2:
        return None  # a stray "y" or "1" is an answer to something else, not a name
    if not all(c in _NAME_PUNCTUATION or unicodedata.category(c)[0] in "LM" for c in name):
        return None
    return name


def number(text: str, digits: int) -> str | None:
    """Exactly ``digits`` digits (any script), spaces ignored, or None."""
    value = normal(text).replace(" ", "")
    return value if len(value) == digits and value.isascii() and value.isdigit() else None
