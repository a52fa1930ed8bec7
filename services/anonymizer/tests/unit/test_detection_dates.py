"""Date, year and age recognizers: the formats people write, and numbers that are not dates or ages."""

from __future__ import annotations

import pytest
from streamtune_anonymizer.detection.dates import AgeRecognizer, DateRecognizer, YearRecognizer


def _values(recognizer, text: str) -> list[str]:
    return [text[s.start:s.end] for s in recognizer.find(text)]


@pytest.mark.parametrize("date", [
    "12/03/1985", "3/13/1956", "12.03.85", "1985-03-12", "2007-01-17 23:08:55", "March 3, 1985", "March 3rd",
    "3rd of March", "3 March 1985", "Mar. 2020", "Tuesday", "friday", "Monday, March 3, 1985",
])
def test_dates_in_common_formats(date):
    assert _values(DateRecognizer(), f"seen on {date} again") == [date]


@pytest.mark.parametrize("text", [
    "call 555-123-4567", "ratio 3/4", "version 1.2.3", "13/13/2020", "may be fine", "in March", "2020-13-45",
])
def test_phones_ratios_versions_and_impossible_dates_are_not_dates(text):
    assert _values(DateRecognizer(), text) == []


@pytest.mark.parametrize("text, year", [("born in 1985 in Oslo", "1985"), ("a 2017 Polish film", "2017"),
                                        ("since 1999 we", "1999")])
def test_years_after_a_cue_word(text, year):
    assert _values(YearRecognizer(), text) == [year]


@pytest.mark.parametrize("text", ["1985 alone", "codons 1309 1310", "type 2 diabetes", "in 1990-2005 families",
                                  "a 2000 mg dose", "of 1240 patients", "in 2000 patients"])
def test_bare_numbers_counts_and_ranges_are_not_years(text):
    assert _values(YearRecognizer(), text) == []


@pytest.mark.parametrize("text", ["This 79 year old female", "a 42-year-old man", "he is 42 years old", "aged 42",
                                  "age: 42", "at the age of 42", "I just turned 42", "Written when he was 42.",
                                  "patient, 42 y/o,"])
def test_ages(text):
    assert _values(AgeRecognizer(), text) == ["42"] if "79" not in text else ["79"]


@pytest.mark.parametrize("text", ["after 3 years of treatment", "42 years", "turned 42%", "aged 4.5 kg",
                                  "age 400", "pages 42"])
def test_durations_percentages_and_other_numbers_are_not_ages(text):
    assert _values(AgeRecognizer(), text) == []
