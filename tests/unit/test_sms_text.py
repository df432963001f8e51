"""Unit layer: SMS text as a handset sees it (flows/messages/sms.py): GSM-7 and UCS-2 parts,
letters counted as a reader counts them, names shortened to fit a budget. No Redis."""

from __future__ import annotations

import pytest

from flows.messages.sms import graphemes, segments, shorten, within_budget


@pytest.mark.parametrize(
    "text, encoding, parts",
    [
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # an extension character takes two septets
        ("€" * 81, "gsm7", 2),
        ("a" * 152 + "€" + "a" * 10, "gsm7", 2),  # the escape pair is not split across parts
        ("a" * 152 + "€" + "a" * 152, "gsm7", 3),
        ("अ" * 70, "ucs2", 1),
        ("अ" * 71, "ucs2", 2),
        ("अ" * 134, "ucs2", 2),
        ("अ" * 135, "ucs2", 3),
        ("😀" * 35, "ucs2", 1),  # an emoji is two UTF-16 units
        ("😀" * 36, "ucs2", 2),
        ("a" * 159 + "ç", "ucs2", 3),  # one character outside GSM-7 turns the whole text UCS-2
    ],
)
def test_texts_are_split_into_parts_as_a_handset_splits_them(text, encoding, parts):
    assert segments(text) == (encoding, parts)


@pytest.mark.parametrize(
    "text, letters", [("Asha", 4), ("श्री", 1), ("क्षमा", 2), ("राधा", 2), ("कृष्ण", 2), ("hé", 2)]
)
def test_letters_are_counted_as_a_reader_counts_them(text, letters):
    assert len(graphemes(text)) == letters
    assert "".join(graphemes(text)) == text  # nothing lost in the counting


@pytest.mark.parametrize(
    "name, keep, shown",
    [
        ("Asha Kumari Devi", 12, "Asha Kumari"),  # whole words while they fit
        ("Asha Kumari Devi", 50, "Asha Kumari Devi"),
        ("Ashakumaridevi", 5, "Ashak"),  # one long word: its first letters
        ("श्रीमती राधा", 4, "श्रीमती"),  # a conjunct is never cut in half
        ("श्रीमती", 2, "श्रीम"),
    ],
)
def test_a_long_name_is_shortened_without_breaking_a_letter(name, keep, shown):
    assert shorten(name, keep) == shown


def test_budgets_count_parts_per_template():
    one_part, two_parts = "a" * 160, "a" * 200
    assert within_budget("sms.locked", one_part) and not within_budget("sms.locked", two_parts)
    assert within_budget("sms.booked", two_parts)  # the confirmation may take two
    assert within_budget("sms.locked", "अ" * 200) and not within_budget("sms.locked", "अ" * 202)


def test_a_ussd_screen_is_counted_in_characters():
    assert within_budget("ussd.menu", "अ" * 156) and not within_budget("ussd.menu", "a" * 157)
