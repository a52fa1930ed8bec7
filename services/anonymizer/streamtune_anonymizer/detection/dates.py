"""Recognizers of dates, times and ages: numeric and written-out dates, weekdays, years with a cue word,
and ages said the ways people say them ("42-year-old", "aged 42", "age: 42", "turned 42")."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .spans import AGE, DATE, PiiSpan

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)day"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:\s?[ap]\.?m\.?)?"
_NUMERIC_DATE = (
    rf"{_YEAR}-(?:0?[1-9]|1[0-2])-(?:[12]\d|3[01]|0?[1-9])(?:[T ]{_TIME}(?:Z|[+-]\d\d:?\d\d)?)?"
    rf"|(?:[12]\d|3[01]|0?[1-9])([/.-])(?:[12]\d|3[01]|0?[1-9])\1(?:{_YEAR}|\d\d)(?:,?\s{_TIME})?"
)
_WRITTEN_DATE = (
    rf"{_MONTH}\s{_DAY}(?:,?\s{_YEAR})?"                          # March 3, 1985 / March 3rd
    rf"|{_DAY}(?:\sof)?\s{_MONTH}(?:,?\s{_YEAR})?"                 # 3 March 1985 / 3rd of March
    rf"|{_MONTH},?\s{_YEAR}"                                       # March 1985
)
_DATE = re.compile(
    rf"(?<![\w/.:-])(?:(?:{_WEEKDAY}),?\s)?(?:{_NUMERIC_DATE}|{_WRITTEN_DATE})(?![\w/:]|[.-]\d)"
    rf"|(?<![\w-]){_WEEKDAY}(?!\w)",
    re.IGNORECASE,
)
# "March" and "May" are also words: alone (no day, no year) they are never matched above.
_CUED_YEAR = re.compile(
    rf"(?<!\w)(?:in|since|born|until|till|from|during|circa|year|of|by|before|after|a|an|early|late|mid|the"
    rf"|summer|winter|spring|autumn|fall)(?:\s(?:early|late|mid|the))?[\s-]({_YEAR})(?!\w|\.\d|[-/–]\d|\s?%)"
    r"(?!\s(?:mg|mcg|g|kg|ml|units?|iu|patients|cases|people|persons|subjects|cells|samples|individuals|families"
    r"|children|men|women|bp|base|times|copies|mutations?|alleles?|genes?)\b)",
    re.IGNORECASE,
)
_AGE_BEFORE = re.compile(  # the number first: 42-year-old, 42 years old, 42 y/o ("3 years" alone is a duration)
    r"(?<![\w.,-])(1[01]\d|120|\d{1,2})(?:\s|-)?(?:(?:years?|yrs?)[\s-]?old|yo|y/o|y\.o\.)(?!\w)"
    r"|(?<![\w.,-])(1[01]\d|120|\d{1,2})(?:\s|-)?(?:years?|yrs?)[\s-]of[\s-]age(?!\w)",
    re.IGNORECASE,
)
_AGE_AFTER = re.compile(  # a word comes first: aged 42, age: 42, age of 42, turned 42, when he was 42
    r"(?<!\w)(?:aged?(?:\s?:|\sof|\sis)?|turn(?:ed|s|ing)?|when\s(?:he|she|i|they|you)\s(?:was|were|is))"
    r"\s?(1[01]\d|120|\d{1,2})(?!\w|[.,]\d|\s?(?:%|percent|times|am|pm|o'clock))",
    re.IGNORECASE,
)


_DIGIT = re.compile(r"\d")
_WORD_STEMS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "day")


def _may_hold_a_date(text: str) -> bool:
    # Cheap C-level checks that let most texts skip the date pattern: a digit, a month stem or "day".
    if _DIGIT.search(text):
        return True
    lowered = text.lower()
    return any(stem in lowered for stem in _WORD_STEMS)


class DateRecognizer:
    """Dates (numeric, ISO with a time, written out) and weekdays; a clock time alone identifies no one."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every date in ``text``, with its time where one is attached."""
        if not _may_hold_a_date(text):
            return
        for match in _DATE.finditer(text):
            if not _impossible_day_month(match.group()):
                yield PiiSpan(*match.span(), DATE)


def _impossible_day_month(candidate: str) -> bool:
    # 13/13/2020 is neither day/month nor month/day.
    parts = _DAY_MONTH.search(candidate)
    return parts is not None and int(parts.group(1)) > 12 and int(parts.group(2)) > 12


_DAY_MONTH = re.compile(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}(?!\d)")


class YearRecognizer:
    """A bare year (1800-2099) only after a word that makes it one: "in 1985", "born 1990", "a 2017 film"."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every cued year in ``text``: the year itself."""
        if not _DIGIT.search(text):
            return
        for match in _CUED_YEAR.finditer(text):
            yield PiiSpan(*match.span(1), DATE)


class AgeRecognizer:
    """Ages (0-120): the number only, so "42-year-old" keeps its "-year-old"."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every age in ``text``."""
        if not _DIGIT.search(text):
            return
        for pattern in (_AGE_BEFORE, _AGE_AFTER):
            for match in pattern.finditer(text):
                group = 1 if match.group(1) is not None else 2
                yield PiiSpan(*match.span(group), AGE)
