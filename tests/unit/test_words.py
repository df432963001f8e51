"""Unit layer: reading what people type (flows/words.py), keywords and their Hindi aliases,
Devanagari digits, yes and no words, names, numbers and near misses. No Redis."""

from __future__ import annotations

import pytest

from flows import words


@pytest.mark.parametrize(
    "typed, command, rest",
    [
        ("BOOK 110017", "book", "110017"),
        ("  book   110017 ", "book", "110017"),
        ("Book, 110017", "book", "110017"),
        ("#status", "status", ""),
        ("बुक ११००१७", "book", "110017"),
        ("रद्द 12345 67890", "cancel", "12345 67890"),
        ("स्थिति", "status", ""),
        ("जाँच 1234567890 1234", "verify", "1234567890 1234"),
        ("डोज़ 1234567890", "dose", "1234567890"),
        ("language hi", "lang", "hi"),
        ("WALKIN 9811122222 Asha 1990", "walkin", "9811122222 Asha 1990"),
        ("Walk-in 9811122222 Asha 1990", "walkin", "9811122222 Asha 1990"),
        ("walk in: 9811122222", "walkin", "9811122222"),
        ("वॉक-इन ९८१११", "walkin", "98111"),
        ("वॉकइन ९८१११", "walkin", "98111"),
    ],
)
def test_a_keyword_in_either_language_is_read_with_what_follows(typed, command, rest):
    assert words.command(typed) == (command, rest)


@pytest.mark.parametrize("typed", ["hello", "", "   ", "bookings please", "12345", "yes"])
def test_text_that_does_not_start_with_a_keyword_is_no_command(typed):
    assert words.command(typed)[0] is None


@pytest.mark.parametrize(
    "typed", ["1", "yes", "YES", "y", "ok", "haan", "Haa", "ji", "हाँ", "हां", "१"]
)
def test_yes_in_english_hindi_or_hinglish(typed):
    assert words.yes(typed) and not words.no(typed)


@pytest.mark.parametrize("typed", ["2", "no", "N", "nahi", "Nahin", "nhi", "na", "नहीं", "२"])
def test_no_in_english_hindi_or_hinglish(typed):
    assert words.no(typed) and not words.yes(typed)


@pytest.mark.parametrize("typed", ["yes please book", "11", "haan ji", "maybe", ""])
def test_a_longer_or_other_reply_is_neither_yes_nor_no(typed):
    assert not words.yes(typed) and not words.no(typed)


@pytest.mark.parametrize("typed, count, picked", [("2", 3, 2), ("२", 3, 2), (" 3. ", 3, 3)])
def test_an_option_number_is_picked_in_any_digits(typed, count, picked):
    assert words.choice(typed, count) == picked


@pytest.mark.parametrize("typed", ["0", "4", "two", "1 2", "-1", ""])
def test_a_number_outside_the_options_picks_nothing(typed):
    assert words.choice(typed, 3) is None


@pytest.mark.parametrize("typed", ["Asha Devi", "O'Brien", "Ram-Lal", "श्रीमती राधा", "A. Kumar"])
def test_names_of_any_script_are_taken_as_typed(typed):
    assert words.person_name(typed) == typed


def test_a_name_keeps_single_spaces():
    assert words.person_name("  Asha    Devi ") == "Asha Devi"


@pytest.mark.parametrize("typed", ["y", "1", "Asha 1990", "Asha@home", "", "a" * 51])
def test_what_is_not_a_name_is_refused(typed):
    assert words.person_name(typed) is None


def test_a_hindi_name_is_counted_in_letters_a_reader_sees():
    # 50 conjunct-heavy letters are far more than 50 code points, and still a name.
    name = "क्ष" * 50
    assert len(name) == 150 and words.person_name(name) == name
    assert words.person_name(name + "क") is None


@pytest.mark.parametrize(
    "typed, value", [("110017", "110017"), ("११००१७", "110017"), ("110 017", "110017")]
)
def test_a_pincode_is_six_digits_in_any_script(typed, value):
    assert words.number(typed, 6) == value


@pytest.mark.parametrize("typed", ["11001", "1100177", "11oo17", ""])
def test_anything_but_six_digits_is_no_pincode(typed):
    assert words.number(typed, 6) is None


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("VERIFU 1234567890 1234", "verify"),
        ("verfy 1234567890 1234", "verify"),
        ("D0SE 1234567890", "dose"),
        ("dsoe 1234567890", "dose"),
        ("tody", "today"),
        ("WALKN 9811122222 Asha 1990", "walkin"),
        ("wlakin 9811122222", "walkin"),
    ],
)
def test_a_mistyped_vaccinator_command_is_recognised(typed, meant):
    command, _ = words.near_miss(typed)
    assert command == meant


@pytest.mark.parametrize(
    "typed", ["Rose", "Dinesh", "VERIFY 1", "BOOK", "haan", "Tod", "do", "x", "Wali Khan", "Walk"]
)
def test_known_words_and_names_are_no_near_miss(typed):
    assert words.near_miss(typed) is None


def test_a_near_miss_keeps_what_followed_it():
    assert words.near_miss("D0SE: 12345 67890") == ("dose", "12345 67890")
