"""Card, IBAN, SSN and document-number recognizers and the check digits behind them."""

from __future__ import annotations

import pytest
from streamtune_anonymizer.detection.check_digits import luhn_is_valid, mod97_is_valid, ssn_is_valid
from streamtune_anonymizer.detection.numbers import (
    CardRecognizer,
    IbanRecognizer,
    SsnRecognizer,
    document_recognizers,
)


def _values(recognizer, text: str) -> list[str]:
    return [text[s.start:s.end] for s in recognizer.find(text)]


def test_luhn_and_mod97():
    assert luhn_is_valid("79927398713") and not luhn_is_valid("79927398710")
    assert mod97_is_valid("GB82WEST12345698765432") and not mod97_is_valid("GB82WEST12345698765433")


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005"])
def test_cards_with_a_valid_luhn_digit(card):
    assert _values(CardRecognizer(), f"card {card} ok") == [card]


@pytest.mark.parametrize("card", ["4111 1111 1111 1112", "0000 0000 0000 0000", "1234567890123"])
def test_luhn_failures_are_not_cards(card):
    assert _values(CardRecognizer(), f"card {card} ok") == []


def test_a_twelve_digit_number_is_a_card_with_a_maestro_prefix_or_a_card_word():
    number = "060426070011"  # Luhn-valid, no 50/56-69 prefix
    assert luhn_is_valid(number)
    assert _values(CardRecognizer(), f"points won on credit card {number} transactions") == [number]
    assert _values(CardRecognizer(), f"debit {number}") == [number]
    assert _values(CardRecognizer(), f"order {number} shipped") == []
    assert _values(CardRecognizer(), "order 503890547220 shipped") == ["503890547220"]  # Maestro prefix 50
    assert _values(CardRecognizer(), "card 060426070012 declined") == []  # Luhn still decides


def test_iban_needs_the_country_length_and_checksum():
    assert _values(IbanRecognizer(), "IBAN DE89 3704 0044 0532 0130 00 paid") == ["DE89 3704 0044 0532 0130 00"]
    assert _values(IbanRecognizer(), "IBAN DE89 3704 0044 0532 0130 01 paid") == []


@pytest.mark.parametrize("ssn", ["460-89-9847", "054-28-6917", "772-10-5487"])
def test_dashed_ssns_with_valid_parts(ssn):
    assert _values(SsnRecognizer(), f"number {ssn} on file") == [ssn]


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000",
                                 "078-05-1120"])
def test_ssns_with_an_invalid_area_group_or_serial_are_refused(ssn):
    assert not ssn_is_valid(ssn.replace("-", ""))
    assert _values(SsnRecognizer(), f"SSN {ssn}") == []


def test_undashed_ssns_need_an_ssn_word():
    assert _values(SsnRecognizer(), "my SSN is 460899847") == ["460899847"]
    assert _values(SsnRecognizer(), "order 460899847 shipped") == []


@pytest.mark.parametrize("text, value, pii_type", [
    ("My driver's license number is F162823540116", "F162823540116", "DRIVER_LICENSE"),
    ("driving licence: 2270-66-1551", "2270-66-1551", "DRIVER_LICENSE"),
    ("passport no. X1234567 expires", "X1234567", "PASSPORT"),
    ("MRN 00123456, admitted", "00123456", "MEDICAL_RECORD"),
])
def test_document_numbers_after_their_words(text, value, pii_type):
    found = [(r.pii_type, v) for r in document_recognizers() for v in _values(r, text)]
    assert found == [(pii_type, value)]


def test_an_id_shaped_token_without_document_words_is_not_a_document():
    assert [v for r in document_recognizers() for v in _values(r, "batch X1234567 of 2270-66-1551")] == []
