"""PII in free text: find e-mail addresses, phone numbers, IP addresses, card numbers and IBANs, and
replace them by type tags without changing the number of whitespace tokens.

Pure and regex-based: candidates come from compiled patterns, then checksums (Luhn, mod-97) or the
``ipaddress`` module confirm them. Keeping the token count is what keeps BIO labels aligned.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby

from .checksums import iban_length, luhn_is_valid

EMAIL = "EMAIL"
PHONE = "PHONE"
IP_ADDRESS = "IP_ADDRESS"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN"
PII_TYPES = (EMAIL, PHONE, IP_ADDRESS, CREDIT_CARD, IBAN)
COMPACT_MASK = "*"

# Each pattern opens with a lookahead on its first character: it lets the regex engine skip ahead fast.
_HAS_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(
    r"(?<![\w.%+'-])[\w%+'-]+(?:\.[\w%+'-]+)*@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_IBAN = re.compile(r"(?=[A-Za-z])(?<!\w)[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_CARD = re.compile(r"(?=\d)(?<![\w.+-])(?:\d{12,19}|\d{3,6}(?:[ -]\d{2,6}){1,6})(?!\w|[.-]\d)")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?=\d)(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?=[0-9A-Fa-f:])(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
    r"(?:%[0-9A-Za-z_.]+)?(?![\w:])"
)
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
_PHONE_CONTEXT = re.compile(
    r"phone|tel\b|mobile|cell|fax|call|desk|office|contact|answer|reach|sms|whatsapp|dial|ring|number", re.IGNORECASE
)
_MAESTRO_12 = re.compile(r"^(?:50|5[6-9]|6\d)")


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A detected PII value: character offsets into the original text, and its type."""

    start: int
    end: int
    pii_type: str


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted text and how many values of each PII type it replaced."""

    text: str
    counts: dict[str, int]


def redact_text(text: str, *, compact: bool = False) -> Redaction:
    """Replace every PII value by its tag (``<EMAIL>``...), keeping whitespace and the token count.

    Each whitespace-separated piece of a value becomes one tag, so "555 123 4567" turns into
    "<PHONE> <PHONE> <PHONE>". ``compact`` uses a one-character mask instead, which never makes a
    text longer (for texts that would outgrow the schema limit).
    """
    spans = find_pii(text)
    if not spans:
        return Redaction(text, {})
    pieces, cursor = [], 0
    for span in spans:
        pieces.append(text[cursor:span.start])
        pieces.append(_mask(text[span.start:span.end], COMPACT_MASK if compact else f"<{span.pii_type}>"))
        cursor = span.end
    pieces.append(text[cursor:])
    return Redaction("".join(pieces), dict(Counter(span.pii_type for span in spans)))


def _mask(value: str, tag: str) -> str:
    # Grouping by str.isspace is exactly how str.split() sees tokens, so their count cannot change.
    return "".join("".join(chars) if is_space else tag for is_space, chars in groupby(value, key=str.isspace))


def find_pii(text: str) -> list[PiiSpan]:
    """Non-overlapping PII spans in text order; where two detectors overlap, the one listed first wins."""
    # Cheap tests that let most texts skip most detectors.
    present = {"@": "@" in text, "::": text.count(":") >= 2, "digit": _HAS_DIGIT.search(text) is not None}
    taken: list[PiiSpan] = []
    for pii_type, detector, needs in _DETECTORS:
        if not present[needs]:
            continue
        for start, end in detector(text):
            if not any(start < other.end and other.start < end for other in taken):
                taken.append(PiiSpan(start, end, pii_type))
    return sorted(taken, key=lambda span: span.start)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(text):
        yield match.span()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        length = iban_length(match.group())
        end = match.start() + length
        if length and not (end < len(text) and text[end].isalnum()):
            yield match.start(), end


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text):
        length = _card_length(match.group())
        if length:
            yield match.start(), match.start() + length


def _card_length(candidate: str) -> int:
    """Characters of the longest valid card number made of the candidate's first digit groups, or 0.

    Trailing groups may be dropped ("4111 1111 1111 1111 2025"); a 12-digit Maestro number only counts whole.
    """
    ends = [m.end() for m in re.finditer(r"\d+", candidate)]
    for size in range(len(ends), 0, -1):
        digits = re.sub(r"\D", "", candidate[:ends[size - 1]])
        if (size == len(ends) or len(digits) >= 13) and _is_card_number(digits):
            return ends[size - 1]
    return 0


def _is_card_number(digits: str) -> bool:
    # 13-19 digits is the ISO/IEC 7812 range; Maestro also issues 12-digit numbers.
    length_ok = 13 <= len(digits) <= 19 or (len(digits) == 12 and _MAESTRO_12.match(digits) is not None)
    return length_ok and len(set(digits)) > 1 and luhn_is_valid(digits)


def _ipv4s(text: str) -> Iterator[tuple[int, int]]:
    for match in _IPV4.finditer(text):
        yield match.span()


def _ipv6s(text: str) -> Iterator[tuple[int, int]]:
    for match in _IPV6.finditer(text):
        candidate = match.group()
        if candidate.count(":") < 2 or not any(c not in ":." for c in candidate.split("%")[0]):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield match.span()


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for match in _PHONE.finditer(text):
        number = match.group("number")
        if not is_plausible_phone(number):
            continue
        if _is_ambiguous_phone(number) and not _PHONE_CONTEXT.search(
                text, max(0, match.start() - 40), min(len(text), match.end() + 20)):
            continue
        yield match.span()


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


def _is_ambiguous_phone(number: str) -> bool:
    # "781 1704" reads as a phone after "office" but as a house number before "Bay Street".
    return _TWO_GROUPS.fullmatch(number) is not None


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


Detector = Callable[[str], Iterator[tuple[int, int]]]
# Order is priority: an IP address or a card number is never also read as a phone number.
_DETECTORS: tuple[tuple[str, Detector, str], ...] = (
    (EMAIL, _emails, "@"),
    (IBAN, _ibans, "digit"),
    (CREDIT_CARD, _cards, "digit"),
    (IP_ADDRESS, _ipv6s, "::"),
    (IP_ADDRESS, _ipv4s, "digit"),
    (PHONE, _phones, "digit"),
)
