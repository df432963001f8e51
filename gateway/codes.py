"""Booking references, security codes and certificate IDs.

- A **reference** is 9 random digits and a Verhoeff check digit (10 digits). Verhoeff catches
  every single-digit error and every adjacent transposition, so a typo is refused before any
  lookup. It is shown grouped (``12345 67890``) and read back with or without spaces/dashes.
- A **security code** is derived, HOTP-style, from ``SECRET_KEY``, the reference and a code
  version: ``HMAC-SHA256(key, "code|ref|version")`` with dynamic truncation, mod 10,000. Redis
  keeps only the version and ``HMAC(key, "check|ref|code")``; a dump without the key reveals
  neither the code nor a way to test the 10,000 candidates. The slip and the SMS worker
  re-derive the code from the key when they need to show it to its own mobile.
- Each appointment keeps the **key id** of the key its code was made with (``k``, 4 hex
  digits of ``HMAC(key, "key-id")``), so after a rotation (``SECRET_KEY_PREVIOUS``) codes
  already texted still verify and still show on the slip; new codes use the current key.
- A **certificate ID** is 15 digits: 14 drawn from ``HMAC(key, "cert|ref")`` (unguessable
  without the key, and the same for the same dose) and a Verhoeff check digit, shown as
  ``12345 67890 12345``. Like a reference, its digits before the check digit carry the bucket
  of its appointment, so the certificate leads to its record without a global lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from functools import lru_cache

# Verhoeff tables: dihedral group D5 multiplication, permutation, inverse.
_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]

REF_LENGTH = 10
CERT_LENGTH = 15
CODE_DIGITS = 4
_SEPARATORS = re.compile(r"[\s\-./]+")
# Devanagari (and other Unicode) decimal digits count as digits: int() and str.isdecimal know them.
_DIGIT_MAP = {ord(c): str(i) for i in range(10) for c in (chr(0x0966 + i), chr(0xFF10 + i))}


def ascii_digits(text: str) -> str:
    """Text with Devanagari and full-width digits replaced by ASCII ones."""
    return text.translate(_DIGIT_MAP)


def verhoeff_check_digit(digits: str) -> str:
    """The digit that makes ``digits + result`` pass the Verhoeff check."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[(i + 1) % 8][int(ch)]]
    return str(_INV[c])


def verhoeff_valid(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def new_reference(partition: int = 0, partitions: int = 1) -> str:
    """A fresh, unpredictable booking reference whose digits before the check digit leave
    ``partition`` modulo ``partitions``: the reference leads to its bucket without a lookup
    (first digit never 0, so it reads as a number)."""
    return _in_bucket(REF_LENGTH, partition, partitions, secrets.randbelow)


def _in_bucket(length: int, partition: int, partitions: int, pick: Callable[[int], int]) -> str:
    """``length`` digits ending in a Verhoeff check digit, the body the ``pick(count)``-th of
    the ``count`` numbers of ``length - 1`` digits that leave ``partition`` mod ``partitions``."""
    low, high = 10 ** (length - 2), 10 ** (length - 1)
    first = (low + partitions - 1 - partition) // partitions  # least n with n*P + p >= low
    n = first + pick((high - 1 - partition) // partitions - first + 1)
    body = str(n * partitions + partition)
    return body + verhoeff_check_digit(body)


def parse_reference(text: str) -> str | None:
    """The reference typed by a person, or None when it is malformed or fails the check."""
    digits = _SEPARATORS.sub("", ascii_digits(text or ""))
    if not (8 <= len(digits) <= 12) or not digits.isascii() or not digits.isdigit():
        return None
    return digits if verhoeff_valid(digits) else None


def format_reference(ref: str) -> str:
    return f"{ref[:5]} {ref[5:]}" if len(ref) == REF_LENGTH else ref


def _mac(secret: str, *parts: object) -> bytes:
    msg = "|".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()


def derive_code(secret: str, ref: str, version: int) -> str:
    """The 4-digit security code of a booking at a code version (RFC 4226 truncation)."""
    mac = _mac(secret, "code", ref, version)
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return f"{number % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def code_check(secret: str, ref: str, code: str) -> str:
    """What Redis keeps to test a code: a keyed digest, useless without the key."""
    # 64 bits: far beyond guessing, since a wrong code costs an attempt and needs the key.
    return _mac(secret, "check", ref, ascii_digits(code).strip()).hex()[:16]


def certificate_id(
    secret: str, ref: str, partition: int = 0, partitions: int = 1, attempt: int = 0
) -> str:
    """The certificate ID of a booking's dose, in the booking's bucket. ``attempt`` 1, 2, …
    give other IDs for the rare dose whose first one another certificate already holds."""
    mac = _mac(secret, "cert", ref, *([attempt] if attempt else []))
    number = int.from_bytes(mac[:8], "big")
    return _in_bucket(CERT_LENGTH, partition, partitions, lambda count: number % count)


def parse_certificate(text: str) -> str | None:
    """The certificate ID typed by a person (spaces and dashes anywhere), or None when it is
    malformed or fails the check digit."""
    digits = _SEPARATORS.sub("", ascii_digits(text or ""))
    if len(digits) != CERT_LENGTH or not digits.isascii() or not digits.isdigit():
        return None
    return digits if verhoeff_valid(digits) else None


def format_certificate(cert: str) -> str:
    """A certificate ID grouped for reading: ``12345 67890 12345`` (others as they are)."""
    if len(cert) != CERT_LENGTH or not cert.isdigit():
        return cert
    return " ".join(cert[i : i + 5] for i in range(0, CERT_LENGTH, 5))


KEY_ID_CHARS = 4  # kept on every appointment: short, yet two keys rarely share one


def key_id(secret: str) -> str:
    """A short public name for a key: which key made an appointment's code, not the key."""
    return _mac(secret, "key-id").hex()[:KEY_ID_CHARS]


class Keyring:
    """The current key (new codes) and earlier ones (codes already texted), by key id."""

    def __init__(self, current: str, previous: tuple[str, ...] = ()):
        self.current = current
        self.current_id = key_id(current)
        self._keys = {self.current_id: current}
        for old in dict.fromkeys(previous):
            kid = key_id(old)
            if self._keys.setdefault(kid, old) != old:
                raise ValueError(
                    f"SECRET_KEY_PREVIOUS: two keys share the id {kid}; "
                    f"retire one of them or choose another SECRET_KEY"
                )

    def key(self, kid: str | None) -> str | None:
        """The key with this id; no id is the current key (bookings from before key ids)."""
        return self._keys.get(kid) if kid else self.current

    def code(self, ref: str, version: int, kid: str | None) -> str:
        """A booking's code under the key it was made with; ``----`` if that key is retired
        (then only a fresh code, ``CODE <ref>``, helps)."""
        key = self.key(kid)
        return derive_code(key, ref, version) if key else "-" * CODE_DIGITS

    def checks(self, ref: str, code: str) -> str:
        """``kid:check`` of an entered code under every key accepted, the current one first."""
        return " ".join(f"{kid}:{code_check(key, ref, code)}" for kid, key in self._keys.items())


@lru_cache(maxsize=8)
def keyring(current: str, previous: tuple[str, ...] = ()) -> Keyring:
    """The keyring of these keys, built once (its ids are HMACs)."""
    return Keyring(current, previous)


def as_keyring(secret: str | Keyring) -> Keyring:
    """A keyring; a bare key is a keyring of one."""
    return secret if isinstance(secret, Keyring) else keyring(secret)
