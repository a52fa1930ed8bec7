"""presidio-research records to whitespace-token BIO rows, and the fixed validation split."""

from __future__ import annotations

import json

from streamtune_anonymizer.synthetic import from_presidio, is_validation_template, spans_to_bio
from streamtune_anonymizer.synthetic.__main__ import main
from streamtune_anonymizer.synthetic.bio import Span

ADDRESS = "6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay"
TEXT = f"The address of Persint is {ADDRESS}, says Faina D. Yefremova's son from Canada"
RECORD = {
    "full_text": TEXT,
    "spans": [  # not sorted by position, as upstream
        {"entity_type": "PERSON", "entity_value": "Faina D. Yefremova",
         "start_position": TEXT.index("Faina"), "end_position": TEXT.index("'s")},
        {"entity_type": "STREET_ADDRESS", "entity_value": ADDRESS,
         "start_position": 26, "end_position": 26 + len(ADDRESS)},
        {"entity_type": "ORGANIZATION", "entity_value": "Persint", "start_position": 15, "end_position": 22},
        {"entity_type": "GPE", "entity_value": "Canada",
         "start_position": TEXT.index("Canada"), "end_position": len(TEXT)},
    ],
    "template_id": 81,
}


def test_a_record_becomes_one_tag_per_whitespace_token():
    (row,) = from_presidio([RECORD])
    assert list(zip(row["text"].split(), row["label"], strict=True)) == [
        ("The", "O"), ("address", "O"), ("of", "O"), ("Persint", "B-ORGANIZATION"), ("is", "O"),
        ("6750", "B-STREET_ADDRESS"), ("Koskikatu", "I-STREET_ADDRESS"), ("25", "I-STREET_ADDRESS"),
        ("Apt.", "I-STREET_ADDRESS"), ("864", "I-STREET_ADDRESS"), ("Artilleros", "I-STREET_ADDRESS"),
        (",", "I-STREET_ADDRESS"), ("CO", "I-STREET_ADDRESS"), ("Uruguay,", "I-STREET_ADDRESS"), ("says", "O"),
        ("Faina", "B-PERSON"), ("D.", "I-PERSON"), ("Yefremova's", "I-PERSON"), ("son", "O"), ("from", "O"),
        ("Canada", "B-LOCATION"),
    ]


def test_pattern_types_are_outside_unless_asked():
    record = {"full_text": "card 4111111111111111 ok", "template_id": 1,
              "spans": [{"entity_type": "CREDIT_CARD", "entity_value": "4111111111111111",
                         "start_position": 5, "end_position": 21}]}
    assert from_presidio([record])[0]["label"] == ["O", "O", "O"]
    assert from_presidio([record], pattern_labels=True)[0]["label"] == ["O", "B-CREDIT_CARD", "O"]


def test_the_training_split_leaves_out_templates_ending_in_0_3_and_7():
    records = [{**RECORD, "template_id": t} for t in range(20)]
    train = {r["meta"]["template"] for r in from_presidio(records, "train")}
    validation = {r["meta"]["template"] for r in from_presidio(records, "validation")}
    assert validation == {0, 3, 7, 10, 13, 17}
    assert train == set(range(20)) - validation
    assert is_validation_template(130) and not is_validation_template(131)


def test_two_spans_in_one_token_keep_the_first_and_a_token_between_spans_stays_outside():
    assert spans_to_bio("Anna/Ben and Carl", [Span(5, 8, "PERSON"), Span(0, 4, "ORGANIZATION"),
                                              Span(13, 17, "PERSON")]) == ["B-ORGANIZATION", "O", "B-PERSON"]


def test_the_command_converts_only_the_training_split(tmp_path):
    source, out = tmp_path / "dev.jsonl", tmp_path / "train.jsonl"
    source.write_text("\n".join(json.dumps({**RECORD, "template_id": t}) for t in (3, 4)), encoding="utf-8")
    assert main(["--from-presidio", str(source), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["meta"]["template"] for r in rows] == [4]
