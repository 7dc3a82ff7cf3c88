"""Evaluate a score table and write a results folder that reports honestly.

"Honestly" means: the headline HTER uses a threshold fixed before looking at the test labels (dev set or a fixed
number), and the figure that public FAS code bases print as "HTER" (the threshold at the test set's own EER point)
is shown next to it, labelled as chosen on the test set, so results compare with papers without pretending to be
deployable. JSON holds fractions in [0, 1]; report.md shows percentages.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from fas.eval.aggregate import aggregate_by_video
from fas.eval.categories import CLIPC8_CATEGORIES, category_report, letters
from fas.eval.errors import MetricsInputError
from fas.eval.frames import as_score_set, require_columns
from fas.eval.errors import UndefinedMetricError
from fas.eval.metrics import (APCER_TARGETS, FPR_TARGETS, compute_metrics, eer_interval, percent_key,
                             thin_figures)
from fas.eval.plots import measured_scores, plot_roc
from fas.eval.thresholds import TEST_EER_LABEL, select_threshold
from fas.provenance import package_versions, training_summary

PAPER_STYLE_NOTE = ("what public FAS code bases report as 'HTER': the threshold is the EER point of the test set "
                    "itself (chosen on the test set), so it equals the test EER; for comparison with papers only")
FOLD_KEYS = ("auc", "eer", "hter", "apcer", "bpcer", "acer", "accuracy")


def _paper_style(metrics: Mapping) -> dict:
    block = {"hter": metrics["eer"], "threshold": metrics["eer_threshold"], "threshold_rule": TEST_EER_LABEL,
             "threshold_on_test": True, "note": PAPER_STYLE_NOTE}
    if metrics["eer"] is None:
        block["undefined"] = metrics["undefined"].get("eer")
    return block


def _prepare(df: pd.DataFrame | None, where: str, video_level: bool, how: str) -> pd.DataFrame | None:
    if df is None:
        return None
    require_columns(df, ("score", "label") + (("video",) if video_level else ()), where)
    return aggregate_by_video(df, how) if video_level else df


def _category_block(df: pd.DataFrame, categories: Sequence[str], real_index: int) -> dict | None:
    if not {"category", "pred_category"} <= set(df.columns):
        return None
    domains = df["domain"].to_numpy() if "domain" in df.columns else None
    return category_report(df["category"].to_numpy(), df["pred_category"].to_numpy(), domains, categories, real_index)


def bootstrap_units(df: pd.DataFrame) -> tuple[str, np.ndarray]:
    """What the EER interval resamples: subjects where the table names at least two, else videos, else samples
    (keyed by domain too, since ids repeat across datasets)."""
    domain = df["domain"].astype(str).to_numpy() if "domain" in df.columns else np.full(len(df), "")
    for column, unit in (("subject", "subject"), ("video", "video")):
        if column in df.columns and df[column].notna().all():
            keys = np.char.add(np.char.add(domain.astype(str), "/"), df[column].astype(str).to_numpy().astype(str))
            if len(set(keys)) >= 2:
                return unit, keys
    return "sample", np.arange(len(df))


def _eer_interval(test: pd.DataFrame, undefined: dict) -> dict | None:
    unit, keys = bootstrap_units(test)
    try:
        return {**eer_interval(test["score"].to_numpy(), test["label"].to_numpy(), keys), "unit": unit}
    except UndefinedMetricError as exc:
        undefined["eer_interval"] = str(exc)
        return None


def evaluate_scores(test_df: pd.DataFrame, dev_df: pd.DataFrame | None = None, threshold_rule="dev_eer",
                    video_level: bool = False, video_how: str = "mean",
                    categories: Sequence[str] = CLIPC8_CATEGORIES, real_index: int = 0, interval: bool = True) -> dict:
    """All metrics of ``test_df`` (score, label[, attack, video, domain, category, pred_category]) as a JSON-able dict.

    ``threshold_rule``: see ``fas.eval.thresholds``. With ``video_level`` both sets are first aggregated per video.
    Adds ``paper_style`` unless the threshold already came from the test set, ``categories`` when the table has
    ``category`` and ``pred_category`` columns, and (``interval``) the EER's bootstrap interval: seconds on large
    tables, so blocks that do not show it skip it.
    """
    test = _prepare(test_df, "test scores", video_level, video_how)
    dev = _prepare(dev_df, "dev scores", video_level, video_how)
    test_set = as_score_set(test, "test scores")
    choice = select_threshold(threshold_rule, dev=dev, test=test_set)
    metrics = compute_metrics(test_set.scores, test_set.labels, choice.value, test_set.attacks)
    result = {**choice.as_dict(), **metrics}  # the rule comes first in the JSON
    result["level"] = "video" if video_level else "sample"
    result["video_aggregation"] = video_how if video_level else None
    result["n_samples"] = int(len(test))
    if dev is not None and not choice.on_test:
        result["n_dev_samples"] = int(len(dev))
    result["paper_style"] = None if choice.on_test else _paper_style(metrics)
    result["categories"] = _category_block(test, categories, real_index)
    result["eer_interval"] = (_eer_interval(test, result["undefined"]) if interval and result["eer"] is not None
                              else None)
    result["thin"] = thin_figures(result["n_real"], result["n_per_attack"])
    return result


def summarize_folds(results: Sequence[Mapping], keys: Sequence[str] = FOLD_KEYS) -> dict:
    """Mean ± std over folds (OULU-NPU protocols 3/4); std is the population std (ddof=0), as np.std gives."""
    if not results:
        raise MetricsInputError("no fold results to summarize")
    out = {"n_folds": len(results)}
    for key in keys:
        values = [r.get(key) for r in results]
        if any(v is None for v in values):
            out[key] = {"mean": None, "std": None, "values": values, "undefined": "undefined in some folds"}
        else:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
    rules = {r.get("threshold_rule") for r in results}
    out["threshold_rule"] = rules.pop() if len(rules) == 1 else sorted(map(str, rules))
    out["threshold_on_test"] = any(r.get("threshold_on_test") for r in results)
    return out


# --- Markdown ---------------------------------------------------------------------------------------------------------


def _pct(x) -> str:
    return "undefined" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt: str = ".4f") -> str:
    return "undefined" if x is None else format(x, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _summary_rows(m: Mapping) -> list[tuple[str, str]]:
    rows = [("Threshold rule", f"`{m['threshold_rule']}`"),
            ("Threshold", f"{m['threshold']:.6g} ({m['decision_rule']})"),
            ("HTER (at this threshold)", _pct(m["hter"]))]
    if m.get("paper_style"):
        rows.append(("HTER as papers report it (threshold at the test EER, chosen on the test set)",
                     _pct(m["paper_style"]["hter"])))
    rows += [("AUC", _num(m["auc"])), ("EER (test)", _pct(m["eer"])), ("APCER (worst attack type)", _pct(m["apcer"])),
             ("APCER (all attacks pooled)", _pct(m["apcer_all"])), ("BPCER", _pct(m["bpcer"])),
             ("ACER", _pct(m["acer"])), ("Accuracy", _pct(m["accuracy"]))]
    for name, targets, label in (("bpcer_at_apcer", APCER_TARGETS, "BPCER @ APCER={}"),
                                 ("tpr_at_fpr", FPR_TARGETS, "TPR @ FPR={}")):
        for key in map(percent_key, targets):
            value = m[name][key] if m[name] else None
            rows.append((label.format(key), _pct(value) + (" (flagged)" if f"{name}.{key}" in m["flags"] else "")))
    level = m.get("level", "sample")
    rows.append((f"Bona fide / attack {level}s", f"{m['n_real']} / {m['n_attack']}"))
    return rows


def _notes(m: Mapping) -> list[str]:
    lines = []
    if m["undefined"]:
        lines += ["", "Undefined metrics (the input does not define them):", ""]
        lines += [f"- `{k}`: {v}" for k, v in m["undefined"].items()]
    if m["flags"]:
        lines += ["", "Flagged (computable, but the sample counts cannot resolve the target):", ""]
        lines += [f"- `{k}`: {v}" for k, v in m["flags"].items()]
    return lines


def per_domain_metrics(test_df: pd.DataFrame, dev_df: pd.DataFrame | None, domains: Sequence[str],
                       **options) -> dict:
    """One block per test domain, each at the threshold the protocol's rule gives (a protocol with several unseen
    test sets reports each, as AG-FAS's unseen-data table does, not only their pool)."""
    blocks = {}
    for domain in domains:
        part = test_df[test_df["domain"].astype(str) == domain].reset_index(drop=True)
        if part.empty:
            continue
        m = evaluate_scores(part, dev_df, interval=False, **options)
        blocks[domain] = {k: m[k] for k in ("hter", "auc", "eer", "apcer", "bpcer", "threshold", "n_real",
                                            "n_attack")}
    return blocks


def _domain_lines(blocks: Mapping, published: Mapping | None) -> list[str]:
    domains = list(blocks)
    lines = ["", "## Per test dataset (HTER % / AUC %)", ""]
    rows = [["ours (this run)"] + [f"{_pct(blocks[d]['hter'])} / {_pct(blocks[d]['auc'])}" for d in domains]]
    if published:
        for method, cells in published["rows"].items():
            rows.append([f"{method} (published)"] + [
                "{:.2f}% / {:.2f}%".format(*cells[d]) if d in cells else "n/a" for d in domains])
    lines += _table(["method"] + domains, rows)
    lines += ["", "Bona fide / attack per dataset: " + ", ".join(
        f"{d} {blocks[d]['n_real']} / {blocks[d]['n_attack']}" for d in domains)]
    if published:
        lines += ["", f"Published: {published['source']}. Ours is this run's threshold rule; the published figures are "
                      "the papers' own, on the real datasets."]
    return lines


def _category_lines(block: Mapping) -> list[str]:
    names = block["categories"]
    marks = letters(len(names))
    lines = ["", "## Per category (CLIPC8)", ""]
    lines += _table(["", "Category", "Count", "U"],
                    [(r["letter"], r["category"], r["count"], _pct(r["U"])) for r in block["per_category"]])
    if block.get("per_domain"):
        lines += ["", "## Real / fake rates per dataset", ""]
        lines += _table(["Dataset", "Bona fide", "Real rate", "Attacks", "Fake rate"],
                        [(r["domain"], r["n_real"], _pct(r["real_rate"]), r["n_fake"], _pct(r["fake_rate"]))
                         for r in block["per_domain"]])
    lines += ["", "## Confusion matrix (rows: true category, columns: predicted)", ""]
    lines += _table(["true \\ predicted"] + marks,
                    [[f"{marks[i]} {names[i]}"] + row for i, row in enumerate(block["confusion_matrix"])])
    return lines


def _interval_text(m: Mapping) -> str:
    ci = m.get("eer_interval")
    if not ci:
        return _pct(m["eer"])
    return (f"{_pct(m['eer'])} ({ci['level']:.0%} interval {_pct(ci['low'])} to {_pct(ci['high'])}: bootstrap over "
            f"{ci['n_units']} {ci['unit']}s, {ci['replicates']} replicates)")


def _iso_lines(m: Mapping) -> list[str]:
    """ISO/IEC 30107-3's figures: APCER per PAI species and APCER_AP at the threshold, BPCER there and at fixed
    APCER_AP (BPCER10/20/100), the EER with its interval, the presentation counts and which figures are thin."""
    level = m.get("level", "sample")
    lines = ["", "## ISO/IEC 30107-3 (APCER per attack type)", ""]
    lines += _table(["PAI species (attack type)", f"Attack {level}s", "APCER"],
                    [(k, m["n_per_attack"][k], _pct(v)) for k, v in m["apcer_per_attack"].items()]
                    + [("**APCER_AP** (worst species)", m["n_attack"], _pct(m["apcer"]))])
    at = m["bpcer_at_apcer"] or {}
    lines += [""] + _table(["BPCER at the threshold", "BPCER10", "BPCER20", "BPCER100"], [
        [f"{_pct(m['bpcer'])} of {m['n_real']} bona fide"] + [_pct(at.get(percent_key(x))) for x in (0.10, 0.05, 0.01)]])
    lines += ["", "BPCER*N*: the BPCER at the lowest threshold where APCER_AP is at most 1/*N*.",
              "", f"EER: {_interval_text(m)}."]
    if m.get("thin"):
        lines += ["", "Statistically thin (fewer than 30 presentations): " + "; ".join(m["thin"]) + "."]
    return lines


def render_markdown(metrics: Mapping, roc_image: str | None = None, title: str = "FAS evaluation",
                    pictures: Mapping[str, str] | None = None, provenance: Sequence[str] = ()) -> str:
    """Summary table first (rule on top, honest HTER, then the paper-style figure), then detail tables, then ROC."""
    lines = [f"# {title}", ""]
    if provenance:
        lines += [f"Evaluated: {line}" for line in provenance] + [""]
    if metrics["threshold_on_test"]:
        lines += [f"> **Threshold chosen on the test set** (`{TEST_EER_LABEL}`): optimistic, not a deployable "
                  "operating point.", ""]
    lines += _table(["Metric", "Value"], _summary_rows(metrics)) + _notes(metrics)
    if metrics["apcer_per_attack"]:
        lines += _iso_lines(metrics)
    if metrics.get("categories"):
        lines += _category_lines(metrics["categories"])
    if metrics.get("per_domain"):
        lines += _domain_lines(metrics["per_domain"], metrics.get("published"))
    if pictures:
        lines += ["", "## Pictures"]
        for caption, name in pictures.items():
            lines += ["", f"![{caption}]({name})"]
    if roc_image:
        lines += ["", "## ROC", "", f"![ROC curve]({roc_image})"]
    return "\n".join(lines) + "\n"


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:0.5rem 0}}td,th{{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:left}}
th{{background:#f3f3f3}}img{{max-width:100%;display:block;margin:0.5rem 0}}blockquote{{background:#fff4e0;margin:0;
padding:0.3rem 1rem}}</style></head><body>
{body}
</body></html>
"""


def render_html(markdown_text: str, folder: Path, title: str = "FAS evaluation") -> str:
    """report.md as one self-contained page: the same text, its PNGs inlined (the file can be mailed alone)."""
    import base64
    import re

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])

    def inline(match: re.Match) -> str:
        png = folder / match.group(1)
        if not png.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"'

    return HTML_PAGE.format(title=title, body=re.sub(r'src="([^"/]+\.png)"', inline, body))


# --- files ------------------------------------------------------------------------------------------------------------


def _plain(obj):
    """Config values as YAML/JSON-friendly builtins (paths, numpy scalars, tuples, dataclasses)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _write(path: Path, text: str) -> Path:
    """Write via a temp file and rename, so a half-written file never sits under the final name; a full disk or a
    read-only folder raises ``fas.integrity.StorageError`` naming ``path``."""
    from fas.integrity import write_text

    return write_text(path, text)


def metrics_json(metrics: Mapping) -> str:
    """Strict JSON (no NaN/Infinity): every undefined metric is already ``None``."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON-serializable")
    return json.dumps(_plain(metrics), indent=2, allow_nan=False, default=default) + "\n"


def _provenance_lines(config: Mapping) -> list[str]:
    """The report's first lines: the checkpoint evaluated and the training it came from (``training``)."""
    lines = []
    checkpoint = (config.get("evaluate") or {}).get("checkpoint")
    if checkpoint:
        lines.append(f"checkpoint `{checkpoint}`")
    summary = training_summary(config.get("training"))
    if summary:
        lines.append(f"trained as {summary}")
    return [f"{line}  " for line in lines]  # Markdown line breaks


def write_pictures(folder: Path, scores_df: pd.DataFrame, metrics: Mapping,
                   measured: pd.DataFrame | None = None) -> dict[str, str]:
    """The report's PNGs (caption -> file name): DET, score histograms, APCER per species, CLIPC8's confusion.
    ``measured``: ``measured_scores(scores_df, metrics)`` when the caller has it already."""
    from fas.eval import plots

    df = measured_scores(scores_df, metrics) if measured is None else measured
    made = {"DET curve": plots.plot_det(df, metrics, folder / "det.png"),
            "Score distributions": plots.plot_score_histograms(df, metrics, folder / "scores.png")}
    if metrics["apcer_per_attack"]:
        made["APCER per attack type"] = plots.plot_apcer_bars(metrics, folder / "apcer.png")
    if metrics.get("categories"):
        made["CLIPC8 confusion matrix"] = plots.plot_confusion(metrics["categories"], folder / "confusion.png")
    return {caption: path.name for caption, path in made.items()}


def write_results(folder, scores_df: pd.DataFrame, metrics: Mapping, config: Mapping,
                  pictures: Mapping[str, str] | None = None,
                  model_pictures: Callable[[Path, float], Mapping[str, str]] | None = None) -> dict[str, Path]:
    """Write scores.csv, metrics.json, report.md and report.html, the pictures (roc.png, det.png, scores.png,
    apcer.png, confusion.png; ``pictures``: more, caption -> a file already in ``folder``; ``model_pictures(folder,
    threshold)``: those drawn with the evaluated model, which this layer does not load) and config.yaml (config
    + package versions) to ``folder``."""
    from fas.integrity import storage_errors, write_atomic

    folder = Path(folder)
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("scores.csv", "metrics.json", "report.md", "report.html", "roc.png",
                                              "config.yaml")}
    write_atomic(paths["scores.csv"], lambda tmp: scores_df.to_csv(tmp, index=False))
    _write(paths["metrics.json"], metrics_json(metrics))
    measured = measured_scores(scores_df, metrics)  # the rows the metrics counted (per video at video level)
    plot_roc(measured, metrics, paths["roc.png"])
    pictures = {**write_pictures(folder, scores_df, metrics, measured), **(pictures or {})}  # + the caller's
    if model_pictures is not None:  # the evaluated model's attention maps / cue gallery
        pictures.update(model_pictures(folder, metrics["threshold"]))
    curves = Path((config.get("training") or {}).get("path", "")).parent / "curves.png"
    if config.get("training") and curves.is_file():  # the evaluated run's training curves, beside its results
        shutil.copyfile(curves, folder / "training_curves.png")
        pictures["Training curves (the evaluated run)"] = "training_curves.png"
    paths.update({name: folder / name for name in pictures.values()})
    report = render_markdown(metrics, roc_image=paths["roc.png"].name, pictures=pictures,
                             provenance=_provenance_lines(config))
    _write(paths["report.md"], report)
    _write(paths["report.html"], render_html(report, folder))
    full_config = {**_plain(dict(config)), "package_versions": package_versions()}
    _write(paths["config.yaml"], yaml.safe_dump(full_config, sort_keys=False))
    return paths
