"""Recognizers of identifying numbers: payment cards (Luhn), IBANs (mod-97), US SSNs, and documents
(passport, driver's licence, medical record) that only a nearby word tells apart from any other number."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial

from .check_digits import iban_length, luhn_is_valid, ssn_is_valid
from .context import Context, words
from .spans import CREDIT_CARD, DRIVER_LICENSE, IBAN, MEDICAL_RECORD, PASSPORT, US_SSN, PiiSpan

_IBAN = re.compile(r"(?=[A-Za-z])(?<!\w)[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_CARD = re.compile(r"(?=\d)(?<![\w.+-])(?:\d{12,19}|\d{3,6}(?:[ -]\d{2,6}){1,6})(?!\w|[.-]\d)")
_DIGIT_RUN = re.compile(r"\d+")
_MAESTRO_12 = re.compile(r"^(?:50|5[6-9]|6\d)")
_CARD_CONTEXT = Context(words("cards?", "credit", "debit", "visa", "mastercard", "maestro", "amex", "discover",
                              "jcb", "diners", "cc", "pan"), before=40, after=20)
_SSN = re.compile(r"(?=\d)(?<![\w.+-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[.-]\d)")
_SSN_CONTEXT = Context(words("ssn", "ssns", "social security", "social", "security", "ss#", "ssn#", "taxpayer",
                             "tin"), before=40)
_DOCUMENT_NUMBER = re.compile(r"(?<![\w-])(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])){4,19}(?![\w-])",
                              re.IGNORECASE)


class CardRecognizer:
    """Payment card numbers: 12 to 19 digits, grouped or not, with a valid Luhn check digit.

    13 to 19 digits need nothing more. A 12-digit number (Maestro issues them, under many prefixes) needs a
    Maestro prefix or a card word nearby ("card", "visa", "debit", ...): alone, 12 Luhn-valid digits are too
    common (one number in ten passes Luhn).
    """

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every card number in ``text``; trailing digit groups (an expiry year) are left out."""
        for match in _CARD.finditer(text):
            # The card-word search runs only for a Luhn-valid 12-digit number without a Maestro prefix.
            length = _card_length(match.group(), partial(_CARD_CONTEXT.around, text, match.start(), match.end()))
            if length:
                yield PiiSpan(match.start(), match.start() + length, CREDIT_CARD)


def _card_length(candidate: str, near_card_word: Callable[[], bool] = lambda: False) -> int:
    """Characters of the longest valid card number made of the candidate's first digit groups, or 0.

    Trailing groups may be dropped ("4111 1111 1111 1111 2025"); a 12-digit number only counts whole.
    """
    ends = [m.end() for m in _DIGIT_RUN.finditer(candidate)]
    for size in range(len(ends), 0, -1):
        digits = "".join(_DIGIT_RUN.findall(candidate[:ends[size - 1]]))
        if (size == len(ends) or len(digits) >= 13) and _is_card_number(digits, near_card_word):
            return ends[size - 1]
    return 0


def _is_card_number(digits: str, near_card_word: Callable[[], bool]) -> bool:
    # 13-19 digits is the ISO/IEC 7812 range; Maestro also issues 12-digit numbers.
    if not (12 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_is_valid(digits)):
        return False
    return len(digits) > 12 or _MAESTRO_12.match(digits) is not None or near_card_word()


class IbanRecognizer:
    """IBANs, compact or in groups of four, with the country's length and a valid mod-97 check."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every IBAN in ``text``; the country's registered length decides where it ends."""
        for match in _IBAN.finditer(text):
            length = iban_length(match.group())
            end = match.start() + length
            if length and not (end < len(text) and text[end].isalnum()):
                yield PiiSpan(match.start(), end, IBAN)


class SsnRecognizer:
    """US social security numbers: ``123-45-6789`` shapes with valid area, group and serial.

    A dashed number is enough; spaced or unseparated digits need an SSN word nearby.
    """

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every valid SSN in ``text``."""
        for match in _SSN.finditer(text):
            if not ssn_is_valid(match.group(1) + match.group(3) + match.group(4)):
                continue
            if match.group(2) != "-" and not _SSN_CONTEXT.around(text, match.start(), match.end()):
                continue
            yield PiiSpan(*match.span(), US_SSN)


class DocumentNumberRecognizer:
    """An id of 5 to 20 letters, digits and dashes (at least one digit) right after its document's words."""

    def __init__(self, pii_type: str, context: Context) -> None:
        self.pii_type = pii_type
        self._context = context

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every id-shaped token preceded, within the context window, by the document's words."""
        if not self._context.words.search(text):
            return
        for match in _DOCUMENT_NUMBER.finditer(text):
            if self._context.around(text, match.start(), match.end()):
                yield PiiSpan(*match.span(), self.pii_type)


def document_recognizers() -> list[DocumentNumberRecognizer]:
    """Passport, driver's licence and medical record numbers, each behind its own context words."""
    return [
        DocumentNumberRecognizer(PASSPORT, Context(words("passport", "passport no", "passport number"), 30)),
        DocumentNumberRecognizer(DRIVER_LICENSE, Context(words(
            r"driver'?s?'? licen[cs]e", "driving licen[cs]e", r"licen[cs]e (?:no|number|#)", "dl", "dl#"), 30)),
        DocumentNumberRecognizer(MEDICAL_RECORD, Context(words(
            "mrn", "medical record", "patient id", "patient number", "chart number", "health record"), 30)),
    ]
