"""Evaluation harness: metrics, threshold rules, per-video aggregation, CLIPC8 tables, protocols and reports.

Conventions: label 1 = bona fide, 0 = attack; higher score = more likely real; accept as real iff score >= threshold.
"""

from fas.eval.aggregate import aggregate_by_video
from fas.eval.categories import (CLIPC8_CATEGORIES, category_confusion, category_report, category_table,
                                 detection_rates, domain_rates)
from fas.eval.errors import EvalError, MetricsInputError, ProtocolError, ThresholdRuleError, UndefinedMetricError
from fas.eval.metrics import (DECISION_RULE, acer, accuracy, apcer, apcer_per_attack, auc, bpcer, bpcer_at_apcer,
                              compute_metrics, eer, hter, tpr_at_fpr)
from fas.eval.protocols import PROTOCOLS, Protocol, get_protocol, leave_one_out, split_for_protocol
from fas.eval.report import evaluate_scores, render_markdown, summarize_folds, write_results
from fas.eval.thresholds import ThresholdChoice, ThresholdRule, parse_rule, select_threshold

__all__ = [
    "CLIPC8_CATEGORIES", "DECISION_RULE", "PROTOCOLS", "EvalError", "MetricsInputError", "Protocol", "ProtocolError",
    "ThresholdChoice", "ThresholdRule", "ThresholdRuleError", "UndefinedMetricError", "acer", "accuracy",
    "aggregate_by_video", "apcer", "apcer_per_attack", "auc", "bpcer", "bpcer_at_apcer", "category_confusion",
    "category_report", "category_table", "compute_metrics", "detection_rates", "domain_rates", "eer",
    "evaluate_scores", "get_protocol", "hter", "leave_one_out", "parse_rule", "render_markdown", "select_threshold",
    "split_for_protocol", "summarize_folds", "tpr_at_fpr", "write_results",
]
