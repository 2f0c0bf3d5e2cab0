"""Recall and false positives of the secret scanner (`repo.secrets`) on a generated, labelled corpus.

    python bench/secret_scan_corpus.py [--seeds 1,2,3,4,5] [--misses]

The corpus is `tests/secret_corpus.py` (the one the tests score): credentials of every kind planted in
realistic files (.env, .py, .yaml, .json, .sh, Dockerfile, .md…), values drawn at run time from each seed,
plus look-alikes that must stay quiet. Prints, per kind, planted / found / recall for credentials and
samples / reported / rate for look-alikes, then the overall figures beside the anchors (recall >= 95 %,
false positives <= 5 %). `--misses` lists the file and kind of every miss and false alarm (never a value).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `tests` is a package

from tests.secret_corpus import build_corpus, detected, hits_for, overall, score

MIN_RECALL = 0.95
MAX_FALSE_POSITIVES = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1,2,3,4,5)")
    parser.add_argument("--misses", action="store_true", help="list every miss and false alarm")
    args = parser.parse_args()
    samples = [s for seed in args.seeds.split(",") for s in build_corpus(random.Random(int(seed)))]
    table = score(samples)
    print(f"{len(samples)} samples from seeds {args.seeds}\n")
    print(f"{'credential kind':32} {'planted':>8} {'found':>6} {'recall':>7}")
    for kind, (positive, total, count) in table.items():
        if positive:
            print(f"{kind:32} {total:8} {count:6} {count / total:7.1%}")
    print(f"\n{'look-alike kind':32} {'samples':>8} {'FP':>6} {'rate':>7}")
    for kind, (positive, total, count) in table.items():
        if not positive:
            print(f"{kind:32} {total:8} {count:6} {count / total:7.1%}")
    recall, false_positives = overall(table)
    planted = sum(t for p, t, _ in table.values() if p)
    negatives = sum(t for p, t, _ in table.values() if not p)
    print(f"\noverall recall          {recall:7.2%}  of {planted:5}   anchor >= 95%")
    print(f"overall false positives {false_positives:7.2%}  of {negatives:5}   anchor <= 5%")
    if args.misses:
        print()
        for sample in samples:
            hits = hits_for(sample)
            if detected(sample, hits) != sample.positive:
                rules = ", ".join(sorted({h.rule for h in hits}))
                what = "missed" if sample.positive else f"reported as {rules}"
                print(f"{sample.kind:32} {sample.path}:{sample.line} {what}")
    return 0 if recall >= MIN_RECALL and false_positives <= MAX_FALSE_POSITIVES else 1


if __name__ == "__main__":
    sys.exit(main())
