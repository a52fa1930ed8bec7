"""Token-level PII scores: per type, and PII found under any type."""

from __future__ import annotations

from streamtune_anonymizer.synthetic.scoring import token_scores


def test_recall_and_precision_per_type_and_for_any_pii():
    gold = [["B-PERSON", "I-PERSON", "O", "B-LOCATION", "B-CREDIT_CARD"]]
    predicted = [["B-PERSON", "B-LOCATION", "B-PERSON", "O", "B-PERSON"]]
    scores = token_scores(gold, predicted, ("PERSON", "LOCATION"))
    assert scores["types"]["PERSON"] == {"recall": 0.5, "precision": 1 / 3, "found": 1.0, "support": 2}
    assert scores["types"]["LOCATION"] == {"recall": 0.0, "precision": 0.0, "found": 0.0, "support": 1}
    # 2 of 3 gold PII tokens found (any type); 3 of 4 predicted tokens are PII (the card counts).
    assert scores["any"] == {"recall": 2 / 3, "precision": 3 / 4, "support": 3}
