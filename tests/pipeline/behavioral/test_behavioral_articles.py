"""Behavioural tests written in Python, on real held-out BBC articles."""

from __future__ import annotations

from typing import Any

from mltest.behavioral import DIR, INV, AddSentence, ProbabilityDirection, Typos, behavioral_test


@behavioral_test()
def test_held_out_articles_keep_their_topic_under_typos(bbc_small_splits: Any) -> INV:
    # Real articles the model never saw; three typos in a few hundred words
    # must not move the topic.
    texts = list(bbc_small_splits.test["text"])[:40]
    return INV(
        "held-out articles survive typos",
        texts,
        perturbation=Typos(n=3),
        capability="Robustness",
        seed=0,
        min_pass_rate=0.95,
    )


@behavioral_test()
def test_irrelevant_sentences_do_not_change_the_topic(bbc_small_splits: Any) -> list[Any]:
    texts = list(bbc_small_splits.test["text"])[:40]
    return [
        INV(
            "an irrelevant sentence at the end",
            texts,
            perturbation=AddSentence(position="end"),
            capability="Robustness",
            seed=0,
            min_pass_rate=0.95,
        ),
        DIR(
            "a sentence about an election pulls towards politics",
            texts[:10],
            perturbation={"name": "add_text", "text": "the party won the vote."},
            expect=ProbabilityDirection("politics", "not_decrease"),
            capability="Taxonomy",
            seed=0,
        ),
    ]
