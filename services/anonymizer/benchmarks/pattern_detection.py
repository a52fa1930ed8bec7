"""Measure the pattern recognizers on the presidio-research development texts (not in the repository).

    .venv/bin/python services/anonymizer/benchmarks/pattern_detection.py ../shared/data/pii_presidio_synth/dev.jsonl \
        [--split tuning|validation] [--phones]

The split is template-disjoint: templates with ``template_id % 10`` in (0, 3, 7) are the validation
split (look at it only to report), the rest is for tuning. Prints token/span recall and precision per
pattern type and overall, false positives in the clinical-note fixture (outside its appended contact
sentences), and texts/s of ``PiiDetector(default_recognizers()).detect`` in batches of 256.
``--phones`` also compares the hand-written phone rules with the ``phonenumbers`` library.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import phonenumbers
from streamtune_anonymizer.detection import PATTERN_TYPES, PiiDetector, default_recognizers
from streamtune_anonymizer.detection.evaluation import Figures, presidio_records, score
from streamtune_anonymizer.detection.phones import LibPhoneRecognizer, PhoneRecognizer

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
VALIDATION_TEMPLATES = (0, 3, 7)
CONTACT_MARKERS = (" Call the ward", " Results sent", " Billing card")
BATCH = 256


def _row(name: str, f: Figures) -> str:
    return (f"{name:16} token R {f.token_recall:.3f} P {f.token_precision:.3f} | span R {f.span_recall:.3f} "
            f"P {f.span_precision:.3f} | gold {f.gold_spans} predicted {f.predicted_spans}")


def _texts_per_second(detector: PiiDetector, texts: list[str], rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            detector.detect(texts[i:i + BATCH])
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


def _clinical_false_positives(detector: PiiDetector) -> Counter[str]:
    notes = [json.loads(line)["text"] for line in (FIXTURES / "clinical_notes.jsonl").read_text().splitlines()]
    found: Counter[str] = Counter()
    for text, spans in zip(notes, detector.detect(notes), strict=True):
        cut = min([text.find(m) for m in CONTACT_MARKERS if m in text], default=len(text))
        found.update(span.pii_type for span in spans if span.start < cut)
    return found


def main() -> None:
    """Print the figures for one split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev_jsonl", type=Path)
    parser.add_argument("--split", choices=("tuning", "validation"), default="tuning")
    parser.add_argument("--phones", action="store_true", help="compare phone recognizers too")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.dev_jsonl.read_text().splitlines()]
    rows = [r for r in rows if (r["template_id"] % 10 in VALIDATION_TEMPLATES) == (args.split == "validation")]
    records = presidio_records(rows)
    texts = [r.text for r in records]
    detector = PiiDetector(default_recognizers())
    scores = score(records, detector.detect(texts))
    print(f"{args.split} split: {len(records)} texts")
    print(_row("PII (all types)", scores.overall))
    for pii_type in PATTERN_TYPES:
        if pii_type in scores.per_type:
            print(_row(pii_type, scores.of(pii_type)))
    print("clinical notes, false positives outside the contact sentences:", dict(_clinical_false_positives(detector)))
    all_texts = [json.loads(line)["full_text"] for line in args.dev_jsonl.read_text().splitlines()]
    print(f"speed: {_texts_per_second(detector, all_texts):.0f} texts/s ({len(all_texts)} dev texts, batches of {BATCH})")
    if args.phones:
        for name, recognizer in (("hand-written", PhoneRecognizer()), ("phonenumbers VALID", LibPhoneRecognizer()),
                                 ("phonenumbers POSSIBLE", LibPhoneRecognizer(leniency=phonenumbers.Leniency.POSSIBLE))):
            alone = PiiDetector([recognizer])
            print(_row(f"PHONE {name}"[:16], score(records, alone.detect(texts)).of("PHONE")), f"{name},",
                  f"{_texts_per_second(alone, texts, 1):.0f} texts/s")


if __name__ == "__main__":
    main()
