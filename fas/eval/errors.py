"""User-facing errors of the evaluation harness: all are ``ValueError`` so the CLI reports them as usage errors."""

from __future__ import annotations


class EvalError(ValueError):
    """Base class: the input to an evaluation is not usable as given; the message says what to change."""


class MetricsInputError(EvalError):
    """Scores or labels are malformed (NaN, empty, wrong labels, mismatched lengths, missing columns)."""


class UndefinedMetricError(EvalError):
    """The input does not define this metric (e.g. AUC with one class); callers report it as ``None``."""


class ThresholdRuleError(EvalError):
    """A threshold rule is unknown, or needs data (a dev set, two classes) that was not given."""


class ProtocolError(EvalError):
    """A protocol name is unknown, or the manifest lacks the domains or splits the protocol needs."""
