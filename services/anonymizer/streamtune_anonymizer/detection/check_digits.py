"""Check digits and number rules: card numbers (Luhn), IBANs (ISO 13616 mod-97, with the length of each
country) and the area/group/serial rules of US social security numbers."""

from __future__ import annotations

# ISO 13616 registry: total IBAN length per country code.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def luhn_is_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_length(candidate: str) -> int:
    """How many characters at the start of ``candidate`` form a valid IBAN (single spaces allowed), or 0.

    The country's registered length decides where the IBAN ends, so trailing words are never eaten.
    """
    length = IBAN_LENGTHS.get(candidate[:2].upper())
    if length is None:
        return 0
    compact: list[str] = []
    for offset, char in enumerate(candidate):
        if char != " ":
            compact.append(char)
        if len(compact) == length:
            return offset + 1 if mod97_is_valid("".join(compact)) else 0
    return 0


def mod97_is_valid(iban: str) -> bool:
    """The ISO 7064 mod-97 check of a compact IBAN (country, check digits, account)."""
    rearranged = (iban[4:] + iban[:4]).upper()
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ssn_is_valid(digits: str) -> bool:
    """Whether nine digits can be a US SSN: area not 000, 666 or 9xx, group not 00, serial not 0000.

    Numbers the SSA published as examples (078-05-1120 on a wallet insert, 123-45-6789) are refused too.
    """
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _SSN_EXAMPLES and len(set(digits)) > 1


_SSN_EXAMPLES = frozenset({"078051120", "123456789", "219099999"})
