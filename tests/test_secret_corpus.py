"""The secret scanner against a generated, labelled corpus: recall >= 95 % and false positives <= 5 %.

The corpus (`tests/secret_corpus.py`) plants credentials of every kind in realistic files and mixes in
look-alikes; `bench/secret_scan_corpus.py` prints the same figures per kind.
"""

from __future__ import annotations

import random

import pytest

from tests.secret_corpus import build_corpus, overall, score

SEEDS = (1, 2, 3, 20250101)
MIN_RECALL = 0.95
MAX_FALSE_POSITIVES = 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_recall_and_false_positives_on_the_corpus(seed):
    table = score(build_corpus(random.Random(seed)))
    recall, false_positives = overall(table)
    missed = {kind: (total, n) for kind, (positive, total, n) in table.items() if positive and n < total}
    noisy = {kind: (total, n) for kind, (positive, total, n) in table.items() if not positive and n}
    assert recall >= MIN_RECALL, f"recall {recall:.1%}; kinds with misses (planted, found): {missed}"
    assert false_positives <= MAX_FALSE_POSITIVES, f"false positives {false_positives:.1%}: {noisy}"


def test_every_kind_is_mostly_found_and_no_look_alike_is_mostly_reported():
    samples = [s for seed in SEEDS for s in build_corpus(random.Random(seed))]
    for kind, (positive, total, count) in score(samples).items():
        if positive:
            assert count / total >= 0.8, f"{kind}: {count} of {total} found"
        else:
            assert count / total <= 0.2, f"{kind}: {count} of {total} reported"


def test_the_corpus_is_the_same_for_a_seed_and_holds_both_labels():
    first, again = build_corpus(random.Random(7)), build_corpus(random.Random(7))
    assert first == again
    assert {s.positive for s in first} == {True, False}
    kinds = {s.kind for s in first if s.positive}, {s.kind for s in first if not s.positive}
    assert len(kinds[0]) >= 20 and len(kinds[1]) >= 15
    # every planted value is on its sample's line, except a PEM body, which is below its header
    planted = [s for s in first if s.positive and s.kind != "private-key-pem"]
    assert all(s.secret in s.text.split("\n")[s.line - 1] for s in planted)
