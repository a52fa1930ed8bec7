"""Redaction of each PII type, what must stay untouched, and whitespace-token preservation."""

from __future__ import annotations

import pytest
from streamtune_anonymizer.detection.check_digits import luhn_is_valid, mod97_is_valid
from streamtune_anonymizer.redaction import find_pii, redact_text


def _types(text: str) -> list[tuple[str, str]]:
    return [(span.pii_type, text[span.start:span.end]) for span in find_pii(text)]


@pytest.mark.parametrize("email", [
    "jane.doe@example.com", "UtaKortig@jourrapide.com", "a+tag@sub.example.co.uk", "o'brien@mail.ie",
    "pat1968@example-clinic.org",
])
def test_email_addresses_become_a_tag(email):
    result = redact_text(f"write to {email}, thanks")
    assert result.text == "write to <EMAIL>, thanks"
    assert result.counts == {"EMAIL": 1}


@pytest.mark.parametrize("phone", [
    "+1-415-555-1234", "+44 20 7946 0958", "+46 (0)8 928 571 38", "+447700 921 916", "(579)888-3058",
    "905-674-3793", "345-899-3560x4587", "259.735.7502x459", "03.93.92.16.85", "0494 92 82 32",
    "07700 063 966", "001-518-640-0854", "9498777106", "021 253 109 8211", "(37) 788-063",
])
def test_phone_numbers_in_common_formats_become_a_tag(phone):
    assert _types(f"Mobile: {phone} (after 6pm)") == [("PHONE", phone)]


@pytest.mark.parametrize("text", [
    "The end of 1995 .", "between 1990-2005 in 12 families", "on 2020-03-09 at 10:14:33",
    "When: 2000-04-16 11:34:35", "a ratio of 0.0265878 was seen", "( 0 . 5 at age 60 years )",
    "ZIP 12345-6789 and box 9168", "n = 76 of 1240 patients", "codons 1309 1310", "SSN 460-89-9847",
    "IVS14 + 1G > A and 2658G > A", "located at 370 3911 Fourth Avenue", "version 3.11.4 released",
    "coordinates 52.5200 13.4050",
])
def test_years_dates_times_decimals_and_short_numbers_are_not_phones(text):
    assert [value for pii_type, value in _types(text) if pii_type == "PHONE"] == []


def test_an_ambiguous_two_group_number_needs_a_phone_word_nearby():
    assert _types("the new house is at 781 1704 Bay Street") == [("STREET_ADDRESS", "781 1704 Bay Street")]
    assert _types("781 1704 office | 99 668472 mobile") == [("PHONE", "781 1704"), ("PHONE", "99 668472")]


@pytest.mark.parametrize("ip", ["192.168.0.1", "10.214.84.194", "8.8.8.8", "255.255.255.255"])
def test_ipv4_addresses_become_a_tag(ip):
    assert redact_text(f"request from {ip}.").text == "request from <IP_ADDRESS>."


@pytest.mark.parametrize("text", ["version 256.1.1.1", "1.2.3", "octet 10.0.0.256", "10.0.0.1.5"])
def test_invalid_ipv4_is_not_an_ip_address(text):
    assert all(pii_type != "IP_ADDRESS" for pii_type, _ in _types(text))


@pytest.mark.parametrize("ip", [
    "2001:db8::8a2e:370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1%eth0", "::1",
    "::ffff:192.168.1.1",
])
def test_ipv6_addresses_are_validated_and_tagged(ip):
    assert _types(f"host {ip} replied") == [("IP_ADDRESS", ip)]


@pytest.mark.parametrize("text", ["at 10:14:33 sharp", "std::vector", "ratio 3:2:1", "a :: b", "12345::1"])
def test_colon_runs_that_are_not_ipv6_stay(text):
    assert find_pii(text) == []


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005", "4131034282458809939",
    "0824 6281 9482 1999", "4047737215142", "675984103431",
])
def test_luhn_valid_card_numbers_become_a_tag(card):
    assert _types(f"card {card}, thanks") == [("CREDIT_CARD", card)]


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1112", "4111111111111112", "1234 5678 9012 3456", "0000 0000 0000 0000",
])
def test_luhn_invalid_card_numbers_are_not_redacted(card):
    assert redact_text(f"card {card}, thanks").text == f"card {card}, thanks"


def test_a_card_followed_by_more_digits_is_still_found():
    assert _types("card 4111 1111 1111 1111 2025 ok") == [("CREDIT_CARD", "4111 1111 1111 1111")]


@pytest.mark.parametrize("iban", [
    "GB59IFUE40226315499137", "gb42nawi04454264788619", "DE89 3704 0044 0532 0130 00", "FR1420041010050500013M02606",
    "NO9386011117947",
])
def test_ibans_with_a_valid_checksum_become_a_tag(iban):
    assert _types(f"my IBAN is {iban} thanks") == [("IBAN", iban)]


@pytest.mark.parametrize("text", ["my IBAN is GB59IFUE40226315499138", "code DE89 3704 0044 0532 0130 02",
                                  "XX12345678901234567890"])
def test_ibans_with_a_wrong_checksum_or_country_are_not_redacted(text):
    assert find_pii(text) == []


def test_a_value_spanning_tokens_keeps_the_token_count():
    result = redact_text("call 555 123 4567 now")
    assert result.text == "call <PHONE> <PHONE> <PHONE> now"
    assert result.counts == {"PHONE": 1}


def test_whitespace_is_kept_exactly_around_and_inside_values():
    text = "IBAN:\tDE89 3704 0044 0532 0130 00\nmail\u00a0x@y.org"
    result = redact_text(text)
    assert result.text == "IBAN:\t<IBAN> <IBAN> <IBAN> <IBAN> <IBAN> <IBAN>\nmail\u00a0<EMAIL>"
    assert len(result.text.split()) == len(text.split())


def test_compact_masking_never_makes_a_text_longer():
    text = "ips 1.1.1.1 2.2.2.2 mail a@b.io"
    result = redact_text(text, compact=True)
    assert result.text == "ips * * mail *"
    assert result.counts == {"IP_ADDRESS": 2, "EMAIL": 1}


def test_several_types_in_one_text_are_counted_per_type():
    text = "From 10.0.0.7 mail a@b.io or c@d.io, card 4111-1111-1111-1111, phone +1-415-555-0100."
    result = redact_text(text)
    assert result.counts == {"IP_ADDRESS": 1, "EMAIL": 2, "CREDIT_CARD": 1, "PHONE": 1}
    assert result.text == "From <IP_ADDRESS> mail <EMAIL> or <EMAIL>, card <CREDIT_CARD>, phone <PHONE>."


def test_checksums():
    assert luhn_is_valid("79927398713") and not luhn_is_valid("79927398710")
    assert mod97_is_valid("GB82WEST12345698765432") and not mod97_is_valid("GB82WEST12345698765433")
