"""Write the synthetic PII set (or presidio-research's training split) as JSONL rows.

    python -m streamtune_anonymizer.synthetic --rows 5000 --seed 1 --out pii.jsonl
    python -m streamtune_anonymizer.synthetic --from-presidio dev.jsonl --out presidio-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .generator import DEFAULT_LOCALES, generate
from .presidio import from_presidio


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m streamtune_anonymizer.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000, help="synthetic rows to generate")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows")
    parser.add_argument("--locales", default=",".join(DEFAULT_LOCALES), help="comma-separated Faker locales")
    parser.add_argument("--pattern-labels", action="store_true",
                        help="also tag e-mails, phones, cards, dates... (default: only the NER types)")
    parser.add_argument("--from-presidio", type=Path, metavar="PATH",
                        help="convert presidio-research JSONL instead (its training split only)")
    parser.add_argument("--dataset", default=None, help="the rows' dataset name")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the rows; returns the exit status."""
    args = parse_args(argv)
    extra = {"dataset": args.dataset} if args.dataset else {}
    if args.from_presidio:
        lines = args.from_presidio.read_text(encoding="utf-8").splitlines()
        rows = from_presidio([json.loads(line) for line in lines if line.strip()], "train",
                             pattern_labels=args.pattern_labels, **extra)
    else:
        locales = [name.strip() for name in args.locales.split(",") if name.strip()]
        rows = generate(args.rows, args.seed, locales, pattern_labels=args.pattern_labels, **extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
