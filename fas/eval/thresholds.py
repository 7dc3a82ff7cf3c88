"""Explicit threshold rules, recorded with every result so a number can always be traced to how it was chosen.

Rules are written as strings in configs and on the command line:

- a number, ``fixed:0.5`` or ``fixed(0.5)``: that threshold.
- ``dev_eer``: the EER threshold on the dev (validation) scores (see ``fas.eval.metrics`` for the EER convention).
- ``dev_bpcer:0.05`` or ``dev_bpcer(0.05)``: on dev, the highest threshold whose BPCER <= the target, i.e. the one
  that rejects the most attacks while rejecting at most that fraction of bona fide samples. Needs only dev reals.
- ``test_eer``: the EER threshold of the test set itself. This is what many public FAS code bases call "HTER", and
  it is optimistic: the threshold sees the labels it is scored on. It is only used when asked for by this exact
  name, and is then labelled ``"test_eer (chosen on the test set)"`` with ``threshold_on_test: true``.

The decision rule is the same everywhere: accept as real iff ``score >= threshold``.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from fas.eval.errors import ThresholdRuleError, UndefinedMetricError
from fas.eval.frames import as_score_set
from fas.eval.metrics import ScoreSet, _eer, candidate_thresholds

TEST_EER = "test_eer"
TEST_EER_LABEL = "test_eer (chosen on the test set)"
KINDS = ("fixed", "dev_eer", "dev_bpcer", "test_eer")
RULE_HELP = ("give a threshold rule: a number (e.g. 0.5), 'dev_eer' (EER threshold on a dev set), "
             "'dev_bpcer:0.05' (threshold on a dev set at 5% BPCER), or 'test_eer' to choose it on the test set "
             "itself (optimistic; labelled as such in every output)")
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


@dataclasses.dataclass(frozen=True)
class ThresholdRule:
    """A parsed rule: ``kind`` is one of KINDS; ``param`` is the fixed value or the dev BPCER target."""

    kind: str
    param: float | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}({self.param:g})" if self.param is not None else self.kind

    @property
    def label(self) -> str:
        """What outputs record as ``threshold_rule``."""
        return TEST_EER_LABEL if self.kind == TEST_EER else self.name

    @property
    def needs_dev(self) -> bool:
        return self.kind in ("dev_eer", "dev_bpcer")

    @property
    def on_test(self) -> bool:
        return self.kind == TEST_EER


def fixed(value: float) -> ThresholdRule:
    value = float(value)
    if not math.isfinite(value):
        raise ThresholdRuleError(f"a fixed threshold must be a finite number, got {value}")
    return ThresholdRule("fixed", value)


def dev_eer() -> ThresholdRule:
    return ThresholdRule("dev_eer")


def dev_bpcer(target: float) -> ThresholdRule:
    target = float(target)
    if not 0.0 <= target <= 1.0:
        raise ThresholdRuleError(f"dev_bpcer target is a fraction in [0, 1] (0.05 = 5%), got {target}")
    return ThresholdRule("dev_bpcer", target)


def test_eer() -> ThresholdRule:
    return ThresholdRule(TEST_EER)


test_eer.__test__ = False  # not a pytest test, even when imported into a test module


def parse_rule(rule) -> ThresholdRule:
    """Parse a rule string (or number, or ThresholdRule); ``test_eer`` is accepted only by its exact name."""
    if isinstance(rule, ThresholdRule):
        return rule
    if isinstance(rule, (int, float, np.number)) and not isinstance(rule, bool):
        return fixed(rule)
    if not isinstance(rule, str):
        raise ThresholdRuleError(f"threshold rule must be a string or a number, got {rule!r}; {RULE_HELP}")
    if rule in (TEST_EER, "dev_eer"):
        return test_eer() if rule == TEST_EER else dev_eer()
    if m := re.fullmatch(rf"(?:fixed[:(])?{_NUMBER}\)?", rule.strip()):
        return fixed(m.group(1))
    if m := re.fullmatch(rf"dev_bpcer[:(]{_NUMBER}\)?", rule.strip()):
        return dev_bpcer(m.group(1))
    if rule.strip().startswith("dev_bpcer"):
        raise ThresholdRuleError(f"{rule!r}: give the target BPCER as a fraction, e.g. 'dev_bpcer:0.05'")
    if "test" in rule.lower() or "eer" in rule.lower():
        raise ThresholdRuleError(f"unknown threshold rule {rule!r}: choosing the threshold on the test set must be "
                                 f"asked for by its exact name 'test_eer'; the dev-set rule is 'dev_eer'")
    raise ThresholdRuleError(f"unknown threshold rule {rule!r}; {RULE_HELP}")


@dataclasses.dataclass(frozen=True)
class ThresholdChoice:
    """The threshold used, the rule that produced it (as labelled in outputs), and whether it saw the test set."""

    value: float
    rule: str
    on_test: bool

    def as_dict(self) -> dict:
        return {"threshold": self.value, "threshold_rule": self.rule, "threshold_on_test": self.on_test}


def _eer_threshold(data: ScoreSet, rule: ThresholdRule, where: str) -> float:
    try:
        return _eer(data).threshold
    except UndefinedMetricError as exc:
        raise ThresholdRuleError(f"{rule.name} needs both bona fide and attack samples in the {where} set: {exc}") \
            from None


def bpcer_threshold(data: ScoreSet, target: float) -> float:
    """Highest candidate threshold whose BPCER <= ``target`` (the lowest threshold always qualifies: BPCER 0)."""
    if data.n_real == 0:
        raise ThresholdRuleError("dev_bpcer needs bona fide samples (label 1) in the dev set; it has none")
    t = candidate_thresholds(data.scores)
    rejected = np.searchsorted(np.sort(data.real_scores), t, side="left") / data.n_real
    return float(t[np.flatnonzero(rejected <= target)[-1]])


def select_threshold(rule, dev=None, test=None) -> ThresholdChoice:
    """Apply a rule; ``dev``/``test`` are DataFrames (score, label) or (scores, labels) tuples."""
    parsed = parse_rule(rule)
    if parsed.kind == "fixed":
        return ThresholdChoice(parsed.param, parsed.label, False)
    if parsed.needs_dev and dev is None:
        raise ThresholdRuleError(f"threshold rule {parsed.name!r} needs dev (validation) scores and none were given; "
                                 "pass a dev set (e.g. --dev DEV.csv), or use a fixed number, or ask for 'test_eer' "
                                 "explicitly")
    if parsed.on_test:
        if test is None:
            raise ThresholdRuleError("threshold rule 'test_eer' needs the test scores; none were given")
        return ThresholdChoice(_eer_threshold(as_score_set(test, "test scores"), parsed, "test"), parsed.label, True)
    data = as_score_set(dev, "dev scores")
    if parsed.kind == "dev_eer":
        return ThresholdChoice(_eer_threshold(data, parsed, "dev"), parsed.label, False)
    return ThresholdChoice(bpcer_threshold(data, parsed.param), parsed.label, False)
