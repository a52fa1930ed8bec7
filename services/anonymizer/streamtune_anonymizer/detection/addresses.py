"""Recognizers of postal addresses: street lines (number + name + suffix, or the European name + number),
apartment/suite/unit parts, PO and military boxes, and ZIP / postal codes with the evidence that makes
a number one (a cue word, a state before it, the end of an address block, or a postcode's own shape)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .spans import LOCATION, STREET_ADDRESS, ZIP_CODE, PiiSpan

# USPS street suffixes (Publication 28, C1), with their common abbreviations.
_SUFFIX = (
    r"(?:street|st|road|rd|avenue|ave|av|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace|ter|way|"
    r"circle|cir|highway|hwy|parkway|pkwy|square|sq|trail|trl|crescent|cres|close|grove|gardens?|park|row|walk|"
    r"hill|mews|alley|plaza|loop|pike|crossing|point|ridge|run|path|green|view|rise|vale|wharf|quay|expressway|"
    r"freeway|motorway|turnpike|causeway|bypass|junction|landing|heights|hollow|meadows?|manor|orchard|oval|pass|"
    r"passage|port|route|shore|spur|station|summit|trace|track|valley|village|vista|wells?|union|crest|creek|"
    r"estates?|falls|ferry|fields?|forest|fort|glen|harbou?r|haven|island|isle|lakes?|lodge|mall|mill|mount|"
    r"mountain|prairie|ranch|spring|streams?|tunnel|underpass|viaduct|bridge|brook|burg|camp|canyon|cape|centre|"
    r"center|cliffs?|common|corner|course|cove|curve|dale|dam|divide|extension|flat|ford|forge|fork|gateway|"
    r"knoll|light|lock|neck|overpass|pine|plain|radial|ramp|rapids?|rest|shoal|skyway|str|walkway)\.?"
)
# Suffixes that are never ordinary words; the others ("close", "green", "run") must be capitalized.
_PLAIN_SUFFIXES = frozenset({"street", "st", "road", "rd", "avenue", "ave", "boulevard", "blvd", "lane", "ln",
                             "drive", "terrace", "highway", "hwy", "parkway", "pkwy", "str"})
# Street words of other languages that end (Mellemvej, Magasinsgatan) or open (Via, Rue, ul.) the name.
_ENDING = (r"[^\W\d_]+(?:vej|vænget|gade|gatan|gata|vägen|väg|veien|vegen|vei|stien|straße|strasse|straat|str\.|"
           r"weg|gasse|platz|laan|plein|tie|kuja|katu|polku|tori|aukio|gränd|torget|bakken|stræde|allé|utca|ulica|"
           r"tér|sokak|caddesi)"
           r"|[^\W\d_][\w'’.-]*[ \t](?:gate|gata|gatan|terrasse|vei|veien|vej|gade|weg|allé|alle|tie|katu|torg)")
_OPENING = (r"(?:via|viale|corso|piazza|rue|avenue|av\.?|avenida|rúa|rua|calle|carrer|paseo|plaza|camino|"
            r"ul\.|ulica|aleja|al\.|chemin|boulevard|place|quai|travessa|largo|praça|strada)")
_NAME_WORD = r"(?:[^\W\d_][\w'’.-]*)"
_NUMBER = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,4})?"
_UNIT = r"(?:apt|apartment|suite|ste|unit|flat|room|rm|floor|fl|bldg|building)(?:\.[ \t]?|[ \t])#?[ \t]?\d{1,6}[A-Za-z]?"
_BOX = (r"(?:p\.?[ \t]?o\.?[ \t]?|post[ \t]office[ \t])box[ \t]#?\d{1,6}"
        r"|(?:psc|cmr|unit)[ \t]\d{1,5},?[ \t]box[ \t]\d{1,5}(?:\s+(?:apo|fpo|dpo)[ \t](?:aa|ae|ap)[ \t]\d{5})?"
        r"|(?:apo|fpo|dpo)[ \t](?:aa|ae|ap)[ \t]\d{5}")
# Number first ("90 Whitchurch Road", "106 Rue Ettatawer"): tried only where a number starts.
_NUMBER_FIRST = re.compile(
    rf"(?=\d)(?<![\w-])(?:{_NUMBER}[ \t]+)?{_NUMBER},?[ \t]+(?:{_OPENING}(?:[ \t]+{_NAME_WORD}){{1,3}}"
    rf"|(?:{_NAME_WORD}[ \t]+){{0,3}}(?P<suffix>{_SUFFIX})(?!\w))",
    re.IGNORECASE,
)
# Name first ("Mellemvej 32", "Via Franscini 71", "Király u. 15.", "Kuuse 53" before "Apt. 6"): matched
# backwards from each number, so the words of a text are not all tried as the start of a street name.
_NUMBER_TOKEN = re.compile(rf"(?<![\w-]){_NUMBER}\.?(?!\w)")
_NAME_BEFORE_NUMBER = re.compile(
    rf"(?<![\w-])(?:{_NUMBER}[ \t]+)?(?:{_ENDING}|{_OPENING}(?:[ \t]+{_NAME_WORD}){{1,3}}"
    rf"|(?:{_NAME_WORD}[ \t]+){{1,3}}(?:u\.|utca|út))[ \t]+\Z",
    re.IGNORECASE,
)
_NAMES_BEFORE_NUMBER = re.compile(rf"(?<![\w-])(?:{_NUMBER}[ \t]+)?(?:{_NAME_WORD}[ \t]+){{1,3}}\Z")
_UNIT_AFTER = re.compile(rf",?[ \t]+(?:{_UNIT})", re.IGNORECASE)
_LOOK_BEHIND_CHARS = 60
_DIGIT = re.compile(r"\d")
_UNIT_OR_BOX = re.compile(rf"(?<![\w-])(?:{_BOX}|{_UNIT})(?!\w)", re.IGNORECASE)
# A "name number" line is a street line when the next line is a unit or a box (the block's shape says so).
_NAME_NUMBER_LINE = re.compile(rf"[ \t>?]*((?:{_NUMBER}[ \t]+)?(?:{_NAME_WORD}[ \t]+){{1,3}}{_NUMBER})[ \t]*\n[ \t>?]*")
# Name-and-number streets without a street word ("Joaquin Suarez 2906") only right after an address cue.
_ADDRESS_CUE = (r"(?i:address(?:[ \t]is)?:?|lives?[ \t](?:on|at|in)|living[ \t](?:on|at)|located[ \t]at|"
                r"moved[ \t]to|is[ \t]at|resides?[ \t](?:on|at)|deliver(?:ed)?[ \t]to|ship(?:ped)?[ \t]to|"
                r"send[ \t](?:it[ \t])?to|return[ \t](?:it[ \t])?to)")
_CUED_STREET = re.compile(
    rf"(?<!\w){_ADDRESS_CUE}[ \t]+((?:{_NUMBER}[ \t]+)?(?:[A-ZÀ-Þ][\w'’.-]*[ \t]+(?:(?:and|de|do|da|del|di|la|le|"
    rf"van|von|der|den|y|u\.|ul\.)[ \t]+)*){{1,4}}{_NUMBER})(?!\w)"
)
# Lines that continue an address block: a few capitalized words (city, region, country), "nan", then maybe a
# code. The words are a LOCATION, as a city or country is anywhere else (presidio-research's convention too:
# the street part is the STREET_ADDRESS, the city and country lines are places); the code is a ZIP_CODE.
_CONTINUATION = re.compile(
    r"\n[ \t>?]*,?[ \t]*((?:(?:[^\W\d_a-z][\w'’.()-]*|nan|de|del|la|le|nad|upon|on)(?:[ \t,]+|(?=[ \t]*(?:\n|$)))){0,5}?)"
    r"[ \t]*(\d{2,6}(?:[- ]\d{2,6})?)?\.?[ \t]*(?=\n|$)"
)
_MAX_CONTINUATION_LINES = 4


class StreetAddressRecognizer:
    """Street lines, unit parts and boxes (STREET_ADDRESS), and the city/country lines of an address block after
    them (LOCATION, with a closing code as ZIP_CODE)."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every street address part in ``text``; adjoining parts are joined by the detector's merge."""
        if not _DIGIT.search(text):
            return
        spans = [*_street_lines(text), *_name_first_streets(text)]
        spans += [PiiSpan(*m.span(), STREET_ADDRESS) for m in _UNIT_OR_BOX.finditer(text)]
        yield from spans
        ends = [span.end for span in spans]
        for match in _CUED_STREET.finditer(text):
            ends.append(match.end(1))
            yield PiiSpan(*match.span(1), STREET_ADDRESS)
        for span in _lines_above_units(text):
            ends.append(span.end)
            yield span
        if "\n" in text:
            yield from _continuations(text, ends)


def _street_lines(text: str) -> Iterator[PiiSpan]:
    for match in _NUMBER_FIRST.finditer(text):
        if _is_street_word(match):
            yield PiiSpan(*match.span(), STREET_ADDRESS)


def _name_first_streets(text: str) -> Iterator[PiiSpan]:
    for number in _NUMBER_TOKEN.finditer(text):
        start = number.start()
        if start < 2 or text[start - 1] not in " \t" or not (text[start - 2].isalpha() or text[start - 2] == "."):
            continue  # a street name ends in a letter or an abbreviation's dot right before the number
        lo = max(0, start - _LOOK_BEHIND_CHARS)
        name = _NAME_BEFORE_NUMBER.search(text, lo, start)
        if name is None and _UNIT_AFTER.match(text, number.end()):
            name = _NAMES_BEFORE_NUMBER.search(text, lo, start)
        if name is not None:
            yield PiiSpan(name.start(), number.end(), STREET_ADDRESS)


def _lines_above_units(text: str) -> Iterator[PiiSpan]:
    """Name-and-number lines right above a line that opens with a unit or a box."""
    for unit in _UNIT_OR_BOX.finditer(text):
        line_start = text.rfind("\n", 0, unit.start()) + 1
        if line_start == 0:
            continue
        above = text.rfind("\n", 0, line_start - 1) + 1
        match = _NAME_NUMBER_LINE.fullmatch(text, above, unit.start())
        if match is not None:
            yield PiiSpan(*match.span(1), STREET_ADDRESS)


def _is_street_word(match: re.Match[str]) -> bool:
    suffix = match.groupdict().get("suffix")
    return suffix is None or suffix[0].isupper() or suffix.rstrip(".").lower() in _PLAIN_SUFFIXES


def _continuations(text: str, ends: list[int]) -> Iterator[PiiSpan]:
    """The lines of an address block that follow the line where a part ended."""
    for end in set(ends):
        line_end = text.find("\n", end)
        if line_end < 0 or text[end:line_end].strip(" \t.,"):
            continue  # something else follows the part on its line
        for _ in range(_MAX_CONTINUATION_LINES):
            match = _CONTINUATION.match(text, line_end)
            if match is None or not (match.group(1) or match.group(2)):
                break
            words, code = match.group(1), match.group(2)
            start = match.start(1)
            line = text[start:match.end()].strip()
            if _UNIT_OR_BOX.fullmatch(line):  # "Apt. 123" on its own line: still the street part
                yield PiiSpan(start, start + len(line), STREET_ADDRESS)
            else:
                if words.strip(" \t,"):
                    yield PiiSpan(start, start + len(words.rstrip(" \t,")), LOCATION)
                if code:
                    yield PiiSpan(*match.span(2), ZIP_CODE)
            line_end = match.end()


def has_street_address(text: str) -> bool:
    """Whether ``text`` holds a street line, a unit or a box (evidence for a ZIP code at a line's end)."""
    return (_NUMBER_FIRST.search(text) is not None or _UNIT_OR_BOX.search(text) is not None
            or next(_name_first_streets(text), None) is not None)


_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
    "OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|AS|MP"
)
_CA_PROVINCES = "AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT"
_POSTAL_VALUE = (
    r"\d{5}-\d{4}|\d{5}-\d{3}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}\s\d{2}|\d{4}\s?[A-Z]{2}|\d{3,6}"   # US, BR, PT, PL, SE, NL
    r"|[A-Z]\d[A-Z]\s?\d[A-Z]\d"                                                            # Canada
    r"|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"                                                   # United Kingdom
)
_CUED_ZIP = re.compile(
    rf"(?i:zip(?:\s?code)?|postal\scode|post\s?code|postleitzahl|plz|code\spostal)\s*(?:is|:|#|no\.?)?\s*"
    rf"({_POSTAL_VALUE})(?![\w-])"
)
_STATE_ZIP = re.compile(rf"(?<![\w-])(?:{_US_STATES}|{_CA_PROVINCES})(?:,?[ \t]+|\s*\n\s*)(\d{{5}}(?:-\d{{4}})?)(?![\w-])")
_SHAPED_POSTCODE = re.compile(
    r"(?<![\w-])([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\s\d[ABCEGHJ-NPRSTV-Z]\d"
    r"|(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?)\s\d[ABD-HJLNP-UW-Z]{2})(?![\w-])"
)
# A line closing an address block: a few words and a code ("Sweden 99178", "ASKER nan 1386", "53650" alone).
_BLOCK_END_LINE = re.compile(rf"[ \t>?]*(?:[^\W\d_][\w.,]*[ \t]+){{0,3}}({_POSTAL_VALUE})[ \t]*")
_LINE = re.compile(r"[^\n]+")


class ZipCodeRecognizer:
    """ZIP and postal codes after a cue word or a state, in a postcode's own shape, or closing an address block."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every postal code in ``text``."""
        if not _DIGIT.search(text):
            return
        for pattern in (_CUED_ZIP, _STATE_ZIP, _SHAPED_POSTCODE):
            for match in pattern.finditer(text):
                yield PiiSpan(*match.span(1), ZIP_CODE)
        if "\n" in text:
            yield from _block_end_zips(text)


def _block_end_zips(text: str) -> Iterator[PiiSpan]:
    """Codes closing the lines after an address's street line (a unit, box or street line itself is not one)."""
    after_street = False
    for line in _LINE.finditer(text):
        if has_street_address(line.group()):
            after_street = True
            continue
        match = _BLOCK_END_LINE.fullmatch(line.group()) if after_street else None
        if match is not None:
            yield PiiSpan(line.start() + match.start(1), line.start() + match.end(1), ZIP_CODE)
