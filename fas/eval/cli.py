"""``fas metrics SCORES.csv [--dev DEV.csv] [--threshold RULE_OR_NUMBER] [--video-level] [--json F] [--markdown F]``.

Output: the metrics JSON goes to stdout, or to ``--json FILE``. The Markdown summary goes to stdout when the JSON went
to a file, and to stderr otherwise, so ``fas metrics ... | jq`` always sees pure JSON. ``--markdown FILE`` also
writes the full Markdown report (without the ROC image: ``fas.eval.report.write_results`` writes a whole folder).
Errors are ``fas.eval.errors.EvalError`` (a ``ValueError``) with a message saying what to do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from fas.eval.aggregate import HOW
from fas.eval.errors import MetricsInputError, ThresholdRuleError
from fas.eval.frames import require_columns
from fas.eval.report import evaluate_scores, metrics_json, render_markdown
from fas.eval.thresholds import RULE_HELP

DESCRIPTION = ("Evaluate liveness scores (CSV with columns score,label and optionally attack,video,domain; label 1 = "
               "bona fide, 0 = attack; higher score = more likely real; accepted as real iff score >= threshold).")


def add_metrics_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``metrics`` subcommand; sets ``func=run_metrics``."""
    p = subparsers.add_parser("metrics", help="compute FAS metrics (AUC, EER, HTER, APCER/BPCER/ACER) from a score CSV",
                              description=DESCRIPTION)
    p.add_argument("scores", metavar="SCORES.csv", help="test scores")
    p.add_argument("--dev", metavar="DEV.csv", help="dev/validation scores, for dev-based threshold rules")
    p.add_argument("--threshold", metavar="RULE_OR_NUMBER",
                   help="a number, dev_eer (default with --dev), dev_bpcer:0.05, or test_eer (chosen on the test set)")
    p.add_argument("--video-level", action="store_true", help="aggregate frame scores per video first")
    p.add_argument("--video-agg", choices=HOW, default="mean", help="how to combine a video's frames (default mean)")
    p.add_argument("--json", metavar="FILE", help="write the metrics JSON here instead of stdout")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown report here")
    p.set_defaults(func=run_metrics)
    return p


def read_scores(path: str | Path, where: str, video_level: bool) -> pd.DataFrame:
    """Read a score CSV and check the columns up front, naming any that are missing."""
    path = Path(path)
    if not path.is_file():
        raise MetricsInputError(f"{where} file {path} does not exist")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MetricsInputError(f"{where} file {path} is not a readable CSV: {exc}") from None
    require_columns(df, ("score", "label") + (("video",) if video_level else ()), f"{where} file {path}")
    return df


def _rule(args) -> str:
    if args.threshold is not None:
        return args.threshold
    if args.dev is not None:
        return "dev_eer"
    raise ThresholdRuleError(f"no threshold rule: without --dev there is no honest default. Use --threshold to "
                             f"{RULE_HELP.removeprefix('give a threshold rule: ')}; or pass --dev DEV.csv")


def run_metrics(args: argparse.Namespace) -> int:
    rule = _rule(args)
    test = read_scores(args.scores, "scores", args.video_level)
    dev = read_scores(args.dev, "dev scores", args.video_level) if args.dev else None
    metrics = evaluate_scores(test, dev, threshold_rule=rule, video_level=args.video_level, video_how=args.video_agg)
    text = metrics_json(metrics)
    markdown = render_markdown(metrics, title=f"FAS metrics: {Path(args.scores).name}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
        print(markdown, end="")
    else:
        print(text, end="")
        print(markdown, end="", file=sys.stderr)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown)
    return 0
