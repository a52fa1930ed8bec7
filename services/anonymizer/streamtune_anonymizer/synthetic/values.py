"""Fake values for template placeholders, per Faker locale, and the entity type each one is labeled with.

Three kinds of value: NER values (what the model learns), pattern values (e-mail, phone, card...: the
pattern recognizers' job, labeled only when asked) and look-alikes (eponyms, weekdays, months: always "O").
A fourth kind, a shape, is a snippet of other placeholders (a whole postal address), filled in its turn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from faker import Faker

Kind = Literal["ner", "pattern", "lookalike", "shape"]
Factory = Callable[[Faker, random.Random], str]


@cache
def vocabulary() -> dict[str, list[str]]:
    """The word lists of ``vocab.json`` (nationalities, religions, titles, eponyms, ...)."""
    return json.loads(resources.files(__package__).joinpath("vocab.json").read_text(encoding="utf-8"))


def _pick(name: str) -> Factory:
    return lambda fake, rng: rng.choice(vocabulary()[name])


def _first_of(fake: Faker, methods: tuple[str, ...]) -> str:
    # Locales differ in what they provide (state, region, administrative unit...).
    for method in methods:
        value = getattr(fake, method, None)
        if callable(value):
            result = value()
            if result:
                return str(result)
    return fake.city()


def _untitled(name: str) -> str:
    # Some locales' names start with "Dr." or "Univ.Prof.": that part is a TITLE, not the PERSON.
    words = name.split()
    while len(words) > 1 and (words[0].endswith(".") or words[0] in vocabulary()["titles"]):
        words.pop(0)
    return " ".join(words)


def _person(fake: Faker, rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.55:
        return _untitled(fake.name()) if rng.random() < 0.5 else f"{fake.first_name()} {fake.last_name()}"
    if shape < 0.7:
        return f"{fake.first_name()} {fake.first_name()[0]}. {fake.last_name()}"
    if shape < 0.8:
        return f"{fake.first_name()} {fake.first_name()[0]} {fake.last_name()}"
    if shape < 0.9:
        return f"{fake.last_name()}, {fake.first_name()}"
    return f"{fake.first_name()} {fake.last_name()}-{fake.last_name()}"


def _organization(fake: Faker, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.33:
        return fake.company()
    if roll < 0.4:
        return _surname_firm(fake, rng)
    if roll < 0.52:
        return rng.choice(vocabulary()["organizations"])
    if roll < 0.7:
        # Brand-like names ("Rapid Cycle Solutions", "Paxata"), which Faker's company() never makes.
        words = [rng.choice(vocabulary()["org_words"]) for _ in range(rng.randint(1, 2))]
        suffix = rng.choice(vocabulary()["org_suffixes"]) if rng.random() < 0.6 else ""
        return " ".join([*words, suffix]).strip()
    if roll < 0.85:
        return _invented_brand(rng)
    return _phrase_organization(fake, rng)


def _surname_firm(fake: Faker, rng: random.Random) -> str:
    """A firm named after people, in any locale: "Hughes, Park and Reyes", "Lindqvist-Berg", "Berger & Sohn".

    Faker's company() makes these only in a few locales; the model must learn them from context, since the
    names alone are persons' names.
    """
    a, b, c = (fake.last_name() for _ in range(3))
    shapes = (lambda: f"{a}, {b} and {c}", lambda: f"{a}-{b}", lambda: f"{a} & {b}",
              lambda: f"{a} {rng.choice(vocabulary()['org_suffixes'])}", lambda: f"{a} {rng.choice(_FIRM_ENDINGS)}")
    return rng.choices(shapes, cum_weights=(0.3, 0.55, 0.7, 0.85, 1.0))[0]()


_FIRM_ENDINGS = ("and Sons", "& Co.", "Brothers", "and Partners", "& Associates")


def _phrase_organization(fake: Faker, rng: random.Random) -> str:
    """A name made of title-cased business words: "Scalable Data Partners", "Markets And Metrics Inc"."""
    words = [w for w in _english(rng).bs().replace("-", " ").split() if w.isalpha()]
    rng.shuffle(words)
    picked = [w.capitalize() for w in words[:rng.randint(1, 3)]] or [fake.last_name()]
    if len(picked) >= 2 and rng.random() < 0.3:
        picked.insert(rng.randint(1, len(picked) - 1), rng.choice(("And", "&", "of")))
    if rng.random() < 0.5:
        picked.append(rng.choice(vocabulary()["org_descriptors"] + vocabulary()["org_suffixes"]))
    return " ".join(picked)


@cache
def _english_faker() -> Faker:
    return Faker("en_US")


def _english(rng: random.Random) -> Faker:
    """An English Faker seeded from ``rng`` (job titles and business words fit the English templates)."""
    fake = _english_faker()
    fake.seed_instance(rng.randrange(2**32))
    return fake


def _job_title(fake: Faker, rng: random.Random) -> str:
    """A job title as written in running text: "Technical author", "air broker", "Chief Financial Officer"."""
    title = _english(rng).job().split(",")[0].split("(")[0].strip()
    roll = rng.random()
    if roll < 0.3:
        return title.lower()
    if roll < 0.6:
        return " ".join(w.capitalize() for w in title.split())
    return title


def _invented_brand(rng: random.Random) -> str:
    """A made-up company name, one word or two: "Costlist", "Geoquest Analytics", "CloudWorks Inc."."""
    stem, ending = rng.choice(vocabulary()["brand_stems"]), rng.choice(vocabulary()["brand_endings"])
    brand = stem.capitalize() + (ending.capitalize() if rng.random() < 0.25 else ending)
    shape = rng.random()
    if shape < 0.45:
        return brand
    if shape < 0.85:
        return f"{brand} {rng.choice(vocabulary()['org_descriptors'])}"
    return f"{brand} {rng.choice(vocabulary()['org_suffixes'])}"


def _state_abbreviation(fake: Faker, rng: random.Random) -> str:
    if hasattr(fake, "state_abbr"):
        return fake.state_abbr()
    return _first_of(fake, ("state", "administrative_unit", "region"))[:2].upper()


def _secondary(fake: Faker, rng: random.Random) -> str:
    if hasattr(fake, "secondary_address") and rng.random() < 0.5:
        return fake.secondary_address()
    return f"{rng.choice(vocabulary()['unit_words'])} {rng.randint(1, 999)}"


# A whole postal address, in the layouts letters, forms and chats use. Each part keeps its own type, as
# presidio-research labels addresses written part by part: the street part (number, street, unit) is a
# STREET_ADDRESS, the city, state and country are places (LOCATION). The postal code inside an address is
# taught to the model as part of the address (POSTCODE: a STREET_ADDRESS), so that a code no pattern
# recognizer vouches for ("Poland 52096 last night") is still covered; where the ZIP pattern finds it, its
# ZIP_CODE wins the overlap.
_ADDRESS_SHAPES = (
    "{{STREET_ADDRESS}}, {{CITY}}, {{STATE_ABBR}} {{POSTCODE}}",
    "{{STREET_ADDRESS}}\n{{CITY}}, {{STATE_ABBR}} {{POSTCODE}}",
    "{{STREET_ADDRESS}}, {{POSTCODE}} {{CITY}}",
    "{{STREET_ADDRESS}}, {{POSTCODE}} {{CITY}}, {{COUNTRY}}",
    "{{STREET_ADDRESS}}\n{{POSTCODE}} {{CITY}}\n{{COUNTRY}}",
    "{{STREET_ADDRESS}} {{SECONDARY_ADDRESS}}\n{{CITY}}\n{{COUNTRY}} {{POSTCODE}}",
    "{{STREET_ADDRESS}}\n{{SECONDARY_ADDRESS}}\n{{CITY}}\n{{STATE}}\n{{POSTCODE}}",
    "{{STREET_ADDRESS}}, {{CITY}}",
    "{{STREET_ADDRESS}}, {{CITY}}, {{COUNTRY}}",
    "{{STREET_ADDRESS}}, {{SECONDARY_ADDRESS}}, {{CITY}} {{POSTCODE}}",
)


def _address_shape(fake: Faker, rng: random.Random) -> str:
    return rng.choice(_ADDRESS_SHAPES)


def _nrp(fake: Faker, rng: random.Random) -> str:
    group = rng.choice(("nationalities", "nationalities", "religions", "political_groups"))
    return rng.choice(vocabulary()[group])


def _date(fake: Faker, rng: random.Random) -> str:
    formats = ("%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %B %Y", "%B %d, %Y", "%d/%m/%y")
    return fake.date_of_birth(minimum_age=1, maximum_age=95).strftime(rng.choice(formats))


def _card(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if rng.random() < 0.3 else number


@dataclass(frozen=True, slots=True)
class Placeholder:
    """What a ``{{NAME}}`` in a template becomes, and how it is labeled."""

    entity_type: str
    kind: Kind
    factory: Factory


def _ner(entity_type: str, factory: Factory) -> Placeholder:
    return Placeholder(entity_type, "ner", factory)


def _pattern(entity_type: str, factory: Factory) -> Placeholder:
    return Placeholder(entity_type, "pattern", factory)


def _lookalike(factory: Factory) -> Placeholder:
    return Placeholder("O", "lookalike", factory)


PLACEHOLDERS: dict[str, Placeholder] = {
    "PERSON": _ner("PERSON", _person),
    "FIRST_NAME": _ner("PERSON", lambda fake, rng: fake.first_name()),
    "LAST_NAME": _ner("PERSON", lambda fake, rng: fake.last_name()),
    "TITLE": _ner("TITLE", _pick("titles")),
    "JOB_TITLE": _ner("TITLE", _job_title),
    "ORGANIZATION": _ner("ORGANIZATION", _organization),
    "CITY": _ner("LOCATION", lambda fake, rng: fake.city()),
    "COUNTRY": _ner("LOCATION", lambda fake, rng: fake.country() if rng.random() < 0.6
                    else rng.choice(vocabulary()["countries"])),
    "STATE": _ner("LOCATION", lambda fake, rng: _first_of(fake, ("state", "administrative_unit", "region"))),
    "STATE_ABBR": _ner("LOCATION", _state_abbreviation),
    "STREET_ADDRESS": _ner("STREET_ADDRESS", lambda fake, rng: fake.street_address()),
    "FULL_ADDRESS": Placeholder("O", "shape", _address_shape),
    "STREET_NAME": _ner("STREET_ADDRESS", lambda fake, rng: fake.street_name()),
    "BUILDING_NUMBER": _ner("STREET_ADDRESS", lambda fake, rng: fake.building_number()),
    "SECONDARY_ADDRESS": _ner("STREET_ADDRESS", _secondary),
    "POSTCODE": _ner("STREET_ADDRESS", lambda fake, rng: fake.postcode()),
    "NRP": _ner("NRP", _nrp),
    "EMAIL_ADDRESS": _pattern("EMAIL_ADDRESS", lambda fake, rng: fake.email()),
    "PHONE_NUMBER": _pattern("PHONE_NUMBER", lambda fake, rng: fake.phone_number()),
    "CREDIT_CARD": _pattern("CREDIT_CARD", _card),
    "DATE": _pattern("DATE_TIME", _date),
    "ZIP_CODE": _pattern("ZIP_CODE", lambda fake, rng: fake.postcode()),
    "IBAN_CODE": _pattern("IBAN_CODE", lambda fake, rng: fake.iban()),
    "US_SSN": _pattern("US_SSN", lambda fake, rng: f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"),
    "IP_ADDRESS": _pattern("IP_ADDRESS", lambda fake, rng: fake.ipv4() if rng.random() < 0.8 else fake.ipv6()),
    "AGE": _pattern("AGE", lambda fake, rng: str(rng.randint(1, 99))),
    "URL": _pattern("URL", lambda fake, rng: fake.url()),
    "EPONYM": _lookalike(_pick("eponyms")),
    "WEEKDAY": _lookalike(_pick("weekdays")),
    "MONTH": _lookalike(_pick("months")),
    "LOOKALIKE": _lookalike(_pick("lookalikes")),
}
