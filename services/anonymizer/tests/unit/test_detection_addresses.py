"""Street address and ZIP / postal code recognizers."""

from __future__ import annotations

import pytest
from streamtune_anonymizer.detection import merge_spans
from streamtune_anonymizer.detection.addresses import StreetAddressRecognizer, ZipCodeRecognizer


def _values(recognizer, text: str) -> list[str]:
    """What the recognizer finds, its adjoining parts joined as the detector joins them."""
    return sorted(text[s.start:s.end] for s in merge_spans(recognizer.find(text)))


@pytest.mark.parametrize("text, street", [
    ("Jacob lives on 90 Whitchurch Road now", "90 Whitchurch Road"),
    ("ship to 1600 Pennsylvania Ave, Washington", "1600 Pennsylvania Ave"),
    ("his address: 5366 Pivovarská 276", "5366 Pivovarská 276"),
    ("at 07576 Magasinsgatan 7 today", "07576 Magasinsgatan 7"),
    ("office at Via Franscini 71, Tujetsch", "Via Franscini 71"),
    ("He lives on Joaquin Suarez 2906.", "Joaquin Suarez 2906"),
])
def test_street_lines(text, street):
    assert street in _values(StreetAddressRecognizer(), text)


@pytest.mark.parametrize("text, part", [("Apt. 595", "Apt. 595"), ("Suite 838", "Suite 838"),
                                        ("PO Box 287", "PO Box 287"), ("PSC 0413, Box 8144\nAPO AA 42323",
                                                                       "PSC 0413, Box 8144\nAPO AA 42323")])
def test_units_and_boxes(text, part):
    assert _values(StreetAddressRecognizer(), f"send it to {text} please") == [part]


def test_an_address_block_continues_over_its_city_and_country_lines_as_places():
    text = "Marisa\n583 Magrethevej 298\n Apt. 123\n Qasigiannguit\n Greenland 07609\nThanks for the help, see you."
    found = {(text[s.start:s.end], s.pii_type) for s in merge_spans(StreetAddressRecognizer().find(text))}
    assert {("583 Magrethevej 298", "STREET_ADDRESS"), ("Apt. 123", "STREET_ADDRESS"),
            ("Qasigiannguit", "LOCATION"), ("Greenland", "LOCATION"), ("07609", "ZIP_CODE")} <= found
    assert not any("Thanks" in value for value, _ in found)


def test_a_unit_line_inside_an_address_block_stays_part_of_the_street():
    text = "Ship to:\nAnna Berg\n12 Oak Street\nSuite 5\nSpringfield, IL 62704\nUSA"
    found = {(text[s.start:s.end], s.pii_type) for s in merge_spans(StreetAddressRecognizer().find(text))}
    assert {("Suite 5", "STREET_ADDRESS"), ("Springfield, IL", "LOCATION"), ("62704", "ZIP_CODE"),
            ("USA", "LOCATION")} <= found


@pytest.mark.parametrize("text", ["exon 5 close to 2 missense mutations", "the APT1 gene", "in 12 families",
                                  "Article 50 of the Treaty", "type 2 diabetes", "after 3 weeks"])
def test_prose_with_numbers_is_not_an_address(text):
    assert _values(StreetAddressRecognizer(), text) == []


@pytest.mark.parametrize("text, code", [
    ("ZIP: 3520", "3520"), ("zip code 94105-1234", "94105-1234"), ("postal code: 53-320", "53-320"),
    ("Springfield, IL 62704", "62704"), ("St Georges, QC 54256", "54256"), ("Halifax B0J 2H0", "B0J 2H0"),
    ("London SW1A 1AA", "SW1A 1AA"), ("ZIP: 7412 SL", "7412 SL"),
])
def test_postal_codes(text, code):
    assert _values(ZipCodeRecognizer(), text) == [code]


def test_the_last_line_of_an_address_block_holds_its_code():
    text = "Billing address: Ana\n    31401 ul. Słowicza 10 Apt. 360\n   Wrocław\n    53-320"
    assert _values(ZipCodeRecognizer(), text) == ["53-320"]


@pytest.mark.parametrize("text", ["n = 76 of 12345 patients", "codons 1309 1310", "in 1995 .", "weights 70 kg",
                                  "a list\n12345\nof numbers"])
def test_counts_and_numbers_without_evidence_are_not_postal_codes(text):
    assert _values(ZipCodeRecognizer(), text) == []
