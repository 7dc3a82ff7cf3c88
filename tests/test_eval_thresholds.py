"""Threshold rules: parsing, dev-set selection checked by brute force, and test-set thresholds only on request."""

import numpy as np
import pandas as pd
import pytest

from fas.eval import metrics as M
from fas.eval import thresholds as T
from fas.eval.errors import ThresholdRuleError


def _frame(seed=0, n=300, tied=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 1.5, 1.0)
    if tied:
        scores = np.round(scores * 2) / 2
    return pd.DataFrame({"score": scores, "label": labels})


@pytest.mark.parametrize("rule, kind, param, label", [
    ("0.5", "fixed", 0.5, "fixed(0.5)"),
    (0.25, "fixed", 0.25, "fixed(0.25)"),
    ("fixed:-1e-3", "fixed", -0.001, "fixed(-0.001)"),
    ("fixed(2)", "fixed", 2.0, "fixed(2)"),
    ("dev_eer", "dev_eer", None, "dev_eer"),
    ("dev_bpcer:0.05", "dev_bpcer", 0.05, "dev_bpcer(0.05)"),
    ("dev_bpcer(0.1)", "dev_bpcer", 0.1, "dev_bpcer(0.1)"),
    ("test_eer", "test_eer", None, "test_eer (chosen on the test set)"),
])
def test_parse_rules(rule, kind, param, label):
    parsed = T.parse_rule(rule)
    assert (parsed.kind, parsed.param, parsed.label) == (kind, param, label)


@pytest.mark.parametrize("rule", ["TEST_EER", "test-eer", "test_eer ", "eer", "test", "testeer"])
def test_test_set_rule_only_by_exact_name(rule):
    with pytest.raises(ThresholdRuleError, match="exact name 'test_eer'"):
        T.parse_rule(rule)


@pytest.mark.parametrize("rule, message", [
    ("dev_bpcer", "give the target BPCER"), ("dev_bpcer:5", r"fraction in \[0, 1\]"), ("banana", "unknown threshold"),
    ("nan", "unknown threshold"), (True, "string or a number"),
])
def test_bad_rules(rule, message):
    with pytest.raises(ThresholdRuleError, match=message) as info:
        T.parse_rule(rule)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("rule", ["dev_eer", "dev_bpcer:0.05"])
def test_dev_rules_refused_without_dev(rule):
    with pytest.raises(ThresholdRuleError, match="needs dev"):
        T.select_threshold(rule, dev=None, test=_frame())


@pytest.mark.parametrize("tied", [False, True])
def test_dev_eer_is_the_eer_threshold_of_dev(tied):
    dev, test = _frame(1, tied=tied), _frame(2, tied=tied)
    choice = T.select_threshold("dev_eer", dev=dev, test=test)
    assert choice.value == M.eer(dev.score, dev.label).threshold
    assert (choice.rule, choice.on_test) == ("dev_eer", False)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_dev_bpcer_is_the_highest_threshold_within_target(tied, target):
    dev = _frame(3, tied=tied)
    reals = dev.score[dev.label == 1].to_numpy()
    candidates = np.append(np.unique(dev.score), np.inf)
    best = max(t for t in candidates if (reals < t).mean() <= target)
    choice = T.select_threshold(f"dev_bpcer:{target}", dev=dev)
    assert (reals < choice.value).mean() <= target
    if np.isfinite(best):
        assert choice.value == pytest.approx(best, abs=1e-12)
    else:  # reject-all: reported as the finite threshold just above the largest score
        assert choice.value > dev.score.max() and np.isfinite(choice.value)


def test_test_eer_is_labelled_and_flagged():
    test = _frame(4)
    choice = T.select_threshold("test_eer", test=test)
    assert choice.on_test is True
    assert choice.as_dict() == {"threshold": M.eer(test.score, test.label).threshold,
                                "threshold_rule": "test_eer (chosen on the test set)", "threshold_on_test": True}
    with pytest.raises(ThresholdRuleError, match="needs the test scores"):
        T.select_threshold("test_eer")


def test_rule_objects_and_fixed():
    assert T.select_threshold(T.fixed(0.3)).as_dict() == {"threshold": 0.3, "threshold_rule": "fixed(0.3)",
                                                          "threshold_on_test": False}
    assert T.parse_rule(T.test_eer()).on_test and T.parse_rule(T.dev_bpcer(0.05)).needs_dev
    with pytest.raises(ThresholdRuleError, match="finite"):
        T.fixed(float("inf"))


def test_dev_eer_needs_both_classes_in_dev():
    dev = pd.DataFrame({"score": [0.1, 0.5], "label": [1, 1]})
    with pytest.raises(ThresholdRuleError, match="both bona fide and attack"):
        T.select_threshold("dev_eer", dev=dev)
    with pytest.raises(ThresholdRuleError, match="bona fide samples"):
        T.select_threshold("dev_bpcer:0.1", dev=pd.DataFrame({"score": [0.1], "label": [0]}))
