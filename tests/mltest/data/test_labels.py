"""Confident learning on synthetic data with a known set of flipped labels."""

from __future__ import annotations

import pytest

from mltest.errors import MLCheckFailure, MLUsageError

np = pytest.importorskip("numpy")

from mltest.data import check_label_issues, find_label_issues  # noqa: E402

CLASSES = ["business", "sport", "tech", "politics"]


def noisy_dataset(
    seed: int, n: int = 2000, flip_rate: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian classes; probabilities are the exact posterior (an ideal held-out model)."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    angles = 2 * np.pi * np.arange(k) / k
    means = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    true = rng.integers(0, k, n)
    x = means[true] + rng.normal(0, 1, (n, 2))
    logits = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    flipped = rng.random(n) < flip_rate
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    return given, probs, flipped, true


def precision_recall(issues_rows: list[int], flipped: np.ndarray) -> tuple[float, float]:
    found = np.zeros(flipped.size, dtype=bool)
    found[issues_rows] = True
    hits = (found & flipped).sum()
    return hits / max(found.sum(), 1), hits / flipped.sum()


def test_flipped_labels_are_found_with_good_precision_and_recall() -> None:
    scores = []
    for seed in range(5):
        given, probs, flipped, true = noisy_dataset(seed)
        issues = find_label_issues(given, probs)
        scores.append(precision_recall(issues.rows, flipped))
        assert issues.noise_rate == pytest.approx(flipped.mean(), abs=0.04)
        rows = np.array(issues.rows)
        real = flipped[rows]
        suspected = np.array(issues.suspected)[real]
        assert (suspected == true[rows[real]]).mean() >= 0.85  # the suspected label is right
    precision, recall = np.mean(scores, axis=0)
    assert precision >= 0.75
    assert recall >= 0.85


def test_suspects_are_ranked_by_self_confidence() -> None:
    given, probs, _, _ = noisy_dataset(7)
    issues = find_label_issues(given, probs, class_names=CLASSES)
    assert issues.self_confidence == sorted(issues.self_confidence)
    assert set(issues.given) <= set(CLASSES)
    cj = np.array(issues.confident_joint)
    assert cj.shape == (4, 4)
    assert np.trace(cj) > 0.8 * cj.sum()


def test_both_is_the_intersection_of_the_two_methods() -> None:
    given, probs, flipped, _ = noisy_dataset(3)
    pbnr = find_label_issues(given, probs)
    both = find_label_issues(given, probs, method="both")
    cj = find_label_issues(given, probs, method="confident_joint")
    assert set(both.rows) == set(pbnr.rows) & set(cj.rows)
    assert precision_recall(both.rows, flipped)[0] >= 0.8


def test_tiny_example_by_hand() -> None:
    # thresholds: class 0 = mean(.9, .95) = .925, class 1 = mean(.8, .05) = .425
    # row 2 is labelled 1 but p(0) = .95 >= .925: confident joint C[1][0] = 1
    issues = find_label_issues([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.95, 0.05]])
    assert issues.thresholds == pytest.approx([0.925, 0.425])
    assert issues.confident_joint == [[1, 0], [1, 1]]
    assert issues.rows == [2]
    assert issues.suspected == [0]
    assert issues.noise_rate == pytest.approx(0.25)


def test_check_fails_above_the_limit_and_lists_top_suspects() -> None:
    given, probs, _, _ = noisy_dataset(0, n=400)
    names = np.array(CLASSES)[given]
    texts = [f"headline {i}" for i in range(400)]
    check_label_issues(names, probs, class_names=CLASSES, max_noise_rate=0.5)
    with pytest.raises(MLCheckFailure) as info:
        check_label_issues(names, probs, class_names=CLASSES, texts=texts, top=3)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("estimated label noise ")
    assert "exceeds the limit 5.0% (confident learning: " in lines[0]
    assert lines[2] == "    row  given         suspected      p(given) p(susp.)  text"
    assert len(lines[3:6]) == 3
    assert lines[3].split()[1].strip("'") in CLASSES
    assert lines[3].endswith("'headline " + lines[3].split()[0] + "'")
    assert lines[6].startswith("... and ")
    assert lines[-1].startswith("Review the top suspects and relabel or drop them")


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        ([0, 1], [[0.5, 0.5]], r"labels has shape \(2,\) but pred_probs has 1 rows"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], r"label 2 at row 1 is not a class index in \[0, 2\)"),
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], "pred_probs has negative, NaN or infinite values"),
        ([0, 1], [[3.0, 1.0], [0.5, 0.5]], "rows must sum to 1 .row 0 sums to 4.0000.: pass"),
        ([0, 1], [0.5, 0.5], r"pred_probs has shape \(2,\): give one row per example"),
        (["a", "z"], [[0.5, 0.5], [0.5, 0.5]], "label 'z' is not in class_names"),
    ],
)
def test_bad_label_input_is_one_line(labels: object, probs: object, message: str) -> None:
    with pytest.raises(MLUsageError, match=message):
        find_label_issues(labels, probs, class_names=["a", "b"] if labels == ["a", "z"] else None)
