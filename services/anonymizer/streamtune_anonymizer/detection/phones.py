"""Phone numbers, written the many ways people write them.

Two recognizers: hand-written digit-group rules (the default, measured better on the development
texts) and one on the ``phonenumbers`` library (Google's libphonenumber metadata), kept for comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import phonenumbers

from .context import Context, words
from .spans import PHONE, PiiSpan

_PHONE = re.compile(
    r"""
    (?=[+(\d])(?<![\w+.@/#-])            # not inside a word, a number, an address or a path
    (?P<number>
        (?:\+\d{1,3}[ .-]?)?              # +CC
        (?:\(\d{1,4}\)[ .-]?)?            # (0), (37), (579)
        \d{1,12}(?:[ .-]\d{1,8}){0,6}     # digit groups (a bare national number is one long group)
    )
    (?:\ ?(?:x|ext\.?)\ ?\d{1,6})?        # extension
    (?![\w@:]|[.-]\d)                     # a time (11:34) or a longer number is not a phone
    """,
    re.VERBOSE | re.IGNORECASE,
)
_GROUP_SPLIT = re.compile(r"[^\d]+")
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_TWO_GROUPS = re.compile(r"\d+ \d+")
_ID_SHAPE = re.compile(r"^\d{3,4}-\d\d-\d{4}$")
_PHONE_CONTEXT = Context(words(
    r"\w*phone\w*", "tel", r"mobile\w*", "cell", "fax", r"call\w*", "desk", "office", r"contact\w*", r"answer\w*",
    r"reach\w*", "sms", "whatsapp", r"dial\w*", r"ring\w*", r"numbers?", "registered",
), before=40, after=20)


class PhoneRecognizer:
    """Phone numbers from digit-group rules: plausible lengths and separators, no dates, decimals or ids."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every phone number in ``text``; a two-group number ("781 1704") only near a phone word."""
        for match in _PHONE.finditer(text):
            number = match.group("number")
            if not is_plausible_phone(number):
                continue
            if _TWO_GROUPS.fullmatch(number) and not _PHONE_CONTEXT.around(text, match.start(), match.end()):
                continue  # "781 1704" reads as a phone after "office" but as a house number before "Bay Street"
            yield PiiSpan(*match.span(), PHONE)


def is_plausible_phone(number: str) -> bool:
    """Whether a run of digit groups can be a phone number rather than a count, a decimal, a date or an id."""
    groups = [g for g in _GROUP_SPLIT.split(number) if g]
    digits = sum(len(g) for g in groups)
    if number.startswith("+"):
        return 8 <= digits <= 15
    if not 7 <= digits <= 13:
        return False
    if len(groups) == 1:
        return digits in (10, 11)  # a bare run of digits only in the common national lengths
    separators = set(re.sub(r"[\d()]", "", number))
    if "." in separators and (len(separators) > 1 or len(groups) < 3):
        return False  # decimals and coordinates
    if any(len(g) == 1 for g in groups[1:]):
        return False  # lists of single digits
    if len(groups) == 2 and "(" not in number and len(groups[0]) > 3 and not groups[0].startswith("0"):
        return False  # ZIP+4, house and box numbers
    if _ID_SHAPE.match(number):
        return False  # social security and licence numbers
    return not _looks_like_date(groups[:3])


def _looks_like_date(groups: list[str]) -> bool:
    if len(groups) == 2:
        return _YEAR.match(groups[0]) is not None and (len(groups[1]) == 2 or _YEAR.match(groups[1]) is not None)
    if len(groups) != 3:
        return False
    first, second, third = (int(g) for g in groups)
    if _YEAR.match(groups[0]) and len(groups[1]) <= 2 and len(groups[2]) <= 2:
        return 1 <= second <= 12 and 1 <= third <= 31
    if _YEAR.match(groups[2]) and len(groups[0]) <= 2 and len(groups[1]) <= 2:
        return 1 <= min(first, second) <= 12 and max(first, second) <= 31
    return False


class LibPhoneRecognizer:
    """Phone numbers that ``phonenumbers`` matches as valid in any of ``regions`` (for comparison)."""

    def __init__(self, regions: Sequence[str] = ("US", "GB", "DE", "FR", "SE", "BE", "NL", "CH", "AU", "IN"),
                 leniency: phonenumbers.Leniency = phonenumbers.Leniency.VALID) -> None:
        self._regions = tuple(regions)
        self._leniency = leniency

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every span some region's matcher accepts (overlaps are merged by the detector)."""
        if not any(char.isdigit() for char in text):
            return
        for region in self._regions:
            for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=self._leniency):
                yield PiiSpan(match.start, match.end, PHONE)
