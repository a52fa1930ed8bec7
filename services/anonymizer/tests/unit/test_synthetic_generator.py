"""The synthetic PII generator: aligned BIO tags in every locale, determinism, look-alikes labeled O."""

from __future__ import annotations

import json

import pytest
from streamtune_anonymizer.synthetic import DEFAULT_LOCALES, generate
from streamtune_anonymizer.synthetic.__main__ import main
from streamtune_anonymizer.synthetic.templates import packaged_templates, parse_templates
from streamtune_shared.schemas import Event


def _entities(row: dict) -> dict[str, str]:
    """Word -> entity type of the row's tagged words."""
    return {w: t[2:] for w, t in zip(row["text"].split(), row["label"], strict=True) if t != "O"}


@pytest.mark.parametrize("locale", DEFAULT_LOCALES)
def test_every_row_of_every_locale_is_a_valid_event_with_one_tag_per_word(locale):
    rows = generate(300, seed=3, locales=[locale])
    for row in rows:
        assert row["text"].strip()
        assert len(row["text"].split()) == len(row["label"])
        Event.model_validate(row)  # the ingestion contract: BIO tags, one per whitespace token
    tagged = {t[2:] for row in rows for t in row["label"] if t != "O"}
    assert {"PERSON", "LOCATION", "STREET_ADDRESS", "ORGANIZATION"} <= tagged


def test_the_same_seed_gives_the_same_rows_and_another_seed_others():
    assert generate(50, seed=7) == generate(50, seed=7)
    assert [r["text"] for r in generate(50, seed=7)] != [r["text"] for r in generate(50, seed=8)]


def test_a_tag_starts_with_b_and_continues_with_i():
    templates = parse_templates("Contact {{PERSON}} at {{STREET_ADDRESS}} today")
    for row in generate(40, seed=1, locales=["en_US"], templates=templates):
        tags = row["label"]
        assert tags[0] == "O" and tags[1] == "B-PERSON" and tags[-1] == "O"
        address = [t for t in tags if t.endswith("STREET_ADDRESS")]
        assert address[0] == "B-STREET_ADDRESS" and set(address[1:]) == {"I-STREET_ADDRESS"}


def test_a_full_address_labels_its_street_part_and_its_places_each_as_its_own_type():
    templates = parse_templates("Ship to: {{FULL_ADDRESS}}")
    rows = generate(60, seed=4, templates=templates, pattern_labels=True)
    for row in rows:
        tags = [t for t in row["label"] if t != "O"]
        assert tags[0] == "B-STREET_ADDRESS"  # every layout opens with the street line
        assert row["label"][-1] != "O"  # the last part (city, country or code) is labeled too
    # The city, state and country are places; the code inside an address is taught as part of the address.
    assert {t[2:] for row in rows for t in row["label"] if t != "O"} == {"STREET_ADDRESS", "LOCATION"}


def test_firms_named_after_people_are_organizations_in_every_locale():
    # "Hughes, Park and Reyes", "Lindqvist-Berg", "Berger & Sohn": persons' names, labeled by their context.
    templates = parse_templates("Shares of {{ORGANIZATION}} fell")
    rows = generate(400, seed=5, templates=templates)
    firms = [" ".join(row["text"].split()[2:-1]) for row in rows]
    assert all(set(row["label"][2:-1]) <= {"B-ORGANIZATION", "I-ORGANIZATION"} for row in rows)
    assert sum(" and " in f and "," in f for f in firms) >= 15
    assert sum("-" in f and len(f.split()) == 1 for f in firms) >= 10
    locales = {row["meta"]["locale"] for row, firm in zip(rows, firms, strict=True) if " & " in firm}
    assert len(locales) >= 10  # not only the locales whose Faker makes such names


def test_eponyms_weekdays_and_dishes_are_labeled_outside():
    templates = parse_templates("Dr. {{LAST_NAME}} says {{EPONYM}} {{WEEKDAY}} {{MONTH}} {{LOOKALIKE}}")
    for row in generate(60, seed=2, locales=["en_GB", "de_DE"], templates=templates):
        says = row["text"].split().index("says")  # some last names are two words ("von Lindner")
        assert row["label"][1] == "B-PERSON"
        assert set(row["label"][says:]) == {"O"}


def test_pattern_values_are_tagged_only_when_asked():
    templates = parse_templates("mail {{EMAIL_ADDRESS}}")
    assert generate(5, seed=1, templates=templates)[0]["label"] == ["O", "O"]
    assert generate(5, seed=1, templates=templates, pattern_labels=True)[0]["label"] == ["O", "B-EMAIL_ADDRESS"]


def test_a_template_with_an_unknown_placeholder_is_refused_naming_its_line():
    with pytest.raises(ValueError, match="line 2"):
        parse_templates("# comment\nHello {{NICKNAME}}")


def test_the_packaged_templates_are_many_and_some_hold_no_pii():
    templates = packaged_templates()
    assert len(templates) >= 100
    no_pii = [t for t in templates if not {"PERSON", "FIRST_NAME", "LAST_NAME", "CITY"} & set(t.placeholders())]
    assert len(no_pii) >= 20
    assert any("\n" in t.text for t in templates)


def test_rows_name_a_person_in_some_sentences_and_none_in_others():
    rows = generate(400, seed=5)
    with_person = [r for r in rows if "PERSON" in _entities(r).values()]
    assert 0.3 * len(rows) < len(with_person) < 0.9 * len(rows)


def test_the_command_writes_the_asked_rows_as_jsonl(tmp_path):
    out = tmp_path / "pii.jsonl"
    assert main(["--rows", "25", "--seed", "1", "--locales", "fi_FI,hu_HU", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 25
    assert {r["meta"]["locale"] for r in rows} <= {"fi_FI", "hu_HU"}
    assert rows == generate(25, seed=1, locales=["fi_FI", "hu_HU"])
