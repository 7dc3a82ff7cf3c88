"""evaluate_scores, per-video aggregation, CLIPC8 tables, the results folder and the `fas metrics` command."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import confusion_matrix

from fas.eval import categories as C
from fas.eval import metrics as M
from fas.eval.aggregate import aggregate_by_video
from fas.eval.cli import add_metrics_parser
from fas.eval.errors import EvalError, MetricsInputError, ThresholdRuleError
from fas.eval.report import evaluate_scores, per_domain_metrics, render_markdown, summarize_folds, write_results

REQUIRED_KEYS = {"auc", "eer", "threshold", "threshold_rule", "threshold_on_test", "hter", "apcer", "apcer_per_attack",
                 "bpcer", "acer", "accuracy", "bpcer_at_apcer", "tpr_at_fpr", "n_real", "n_attack", "undefined"}


def _scores(seed=0, videos=60, frames=3, with_categories=False):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, videos)
    attack = np.where(label == 1, "real", np.array(["print", "replay"])[rng.integers(0, 2, videos)])
    df = pd.DataFrame({"video": np.repeat([f"v{i}" for i in range(videos)], frames), "label": np.repeat(label, frames),
                       "attack": np.repeat(attack, frames), "domain": "synth-cam-a"})
    df["score"] = rng.normal(df["label"] * 1.5, 1.0)
    if with_categories:
        cat = np.where(label == 1, 0, rng.integers(1, 8, videos))
        df["category"] = np.repeat(cat, frames)
        df["pred_category"] = np.where(rng.random(len(df)) < 0.7, df["category"], rng.integers(0, 8, len(df)))
    return df


def test_evaluate_with_dev_threshold_and_paper_style():
    test, dev = _scores(1), _scores(2)
    m = evaluate_scores(test, dev)
    assert REQUIRED_KEYS <= set(m) and list(m)[:3] == ["threshold", "threshold_rule", "threshold_on_test"]
    assert (m["threshold_rule"], m["threshold_on_test"]) == ("dev_eer", False)
    assert m["threshold"] == M.eer(dev.score, dev.label).threshold
    assert m["hter"] == pytest.approx(M.hter(test.score, test.label, m["threshold"]))
    ps = m["paper_style"]
    assert ps["hter"] == pytest.approx(M.eer(test.score, test.label).eer) and ps["threshold_on_test"] is True
    assert ps["threshold_rule"] == "test_eer (chosen on the test set)" and "HTER" in ps["note"]
    json.dumps(m, allow_nan=False)


def test_test_eer_only_on_request_and_labelled():
    test = _scores(3)
    with pytest.raises(ThresholdRuleError, match="needs dev"):
        evaluate_scores(test)  # default dev_eer, no dev: refused rather than silently using the test set
    m = evaluate_scores(test, threshold_rule="test_eer")
    assert m["threshold_rule"] == "test_eer (chosen on the test set)" and m["threshold_on_test"] is True
    assert m["paper_style"] is None and m["hter"] == pytest.approx(m["eer"])


def test_video_level_aggregation():
    df = _scores(4, videos=10, frames=4)
    for how, fn in (("mean", np.mean), ("median", np.median), ("max", np.max)):
        agg = aggregate_by_video(df, how)
        assert len(agg) == 10 and set(agg["n_frames"]) == {4}
        expected = df.groupby("video", sort=False)["score"].apply(lambda s: fn(s.to_numpy()))
        assert agg.set_index("video")["score"].to_numpy() == pytest.approx(expected.to_numpy())
        assert {"label", "attack", "domain"} <= set(agg.columns)
    m = evaluate_scores(df, _scores(5, videos=10, frames=4), video_level=True)
    assert (m["n_samples"], m["level"], m["n_real"] + m["n_attack"]) == (10, "video", 10)


def test_video_aggregation_errors():
    df = _scores(6, videos=3, frames=2)
    df.loc[0, "label"] = 1 - df.loc[0, "label"]
    with pytest.raises(MetricsInputError, match="mixed 'label'"):
        aggregate_by_video(df)
    with pytest.raises(MetricsInputError, match="lacks required columns \\['video'\\]"):
        aggregate_by_video(df.drop(columns="video"))
    with pytest.raises(MetricsInputError, match="unknown video aggregation"):
        aggregate_by_video(_scores(6), how="mode")
    two = pd.concat([_scores(7, videos=2).assign(domain="a"), _scores(7, videos=2).assign(domain="b")])
    assert len(aggregate_by_video(two)) == 4  # same video ids in two datasets stay separate videos


def test_category_tables_against_hand_and_sklearn():
    true = [0, 0, 0, 1, 1, 2, 2, 2, 5]
    pred = [0, 3, 0, 1, 0, 4, 2, 0, 5]
    rates = C.detection_rates(true, pred)
    assert rates["real"] == pytest.approx(2 / 3)  # reals predicted real
    assert rates["id_card"] == pytest.approx(1 / 2)  # one of two spoofs predicted as an attack class
    assert rates["face_mask"] == pytest.approx(2 / 3)  # predicted 'personal_id' still counts as detected
    assert rates["recaptured"] == 1.0 and rates["photoshopped"] is None
    table = C.category_table(true, pred)
    assert list(table["letter"]) == list("abcdefgh") and list(table["count"]) == [3, 2, 3, 0, 0, 1, 0, 0]
    manual = np.zeros((8, 8), int)
    for t, p in zip(true, pred):
        manual[t, p] += 1
    assert (C.category_confusion(true, pred) == manual).all()
    assert (manual == confusion_matrix(true, pred, labels=range(8))).all()
    per_domain = C.domain_rates(true, pred, ["x"] * 5 + ["y"] * 4).set_index("domain")
    assert per_domain.loc["x", "real_rate"] == pytest.approx(2 / 3) and per_domain.loc["x", "fake_rate"] == 0.5
    assert per_domain.loc["y", "n_real"] == 0 and per_domain.loc["y", "real_rate"] is None
    assert per_domain.loc["y", "fake_rate"] == pytest.approx(3 / 4)
    json.dumps(C.category_report(true, pred, ["x"] * 5 + ["y"] * 4), allow_nan=False)  # undefined rates are null
    names = ["real", "print", "replay"]
    assert C.detection_rates(["real", "print"], ["print", "replay"], names) == {"real": 0.0, "print": 1.0,
                                                                                "replay": None}
    with pytest.raises(MetricsInputError, match="outside 0..7"):
        C.detection_rates([0, 8], [0, 0])


def test_write_results_folder(tmp_path):
    test = _scores(8, with_categories=True)
    m = evaluate_scores(test, _scores(9))
    paths = write_results(tmp_path / "run", test, m, {"protocol": "intra:synth-cam-a", "out": tmp_path})
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "scores.csv", "metrics.json", "report.md", "report.html", "roc.png", "det.png", "scores.png", "apcer.png",
        "confusion.png", "config.yaml"}
    assert json.loads(paths["metrics.json"].read_text())["threshold_rule"] == "dev_eer"
    assert len(pd.read_csv(paths["scores.csv"])) == len(test)
    assert paths["roc.png"].read_bytes()[:4] == b"\x89PNG"
    config = yaml.safe_load(paths["config.yaml"].read_text())
    assert config["protocol"] == "intra:synth-cam-a" and "fas" in config["package_versions"]
    report = paths["report.md"].read_text()
    order = [report.index(s) for s in ("Threshold rule", "HTER (at this threshold)", "HTER as papers report it",
                                       "## ISO/IEC 30107-3", "## Per category", "## Confusion matrix",
                                       "![ROC curve](roc.png)")]
    assert order == sorted(order)
    assert m["categories"]["confusion_matrix"] and "| a real |" in report


def test_report_labels_test_set_threshold(tmp_path):
    test = _scores(10)
    m = evaluate_scores(test, threshold_rule="test_eer")
    report = write_results(tmp_path, test, m, {})["report.md"].read_text()
    assert "Threshold chosen on the test set" in report and "`test_eer (chosen on the test set)`" in report
    assert "HTER as papers report it" not in report


def test_undefined_metrics_in_report(tmp_path):
    reals = _scores(11).query("label == 1")
    m = evaluate_scores(reals, threshold_rule=0.5)
    assert m["auc"] is None and "auc" in m["undefined"] and m["paper_style"]["hter"] is None
    report = write_results(tmp_path, reals, m, {})["report.md"].read_text()
    assert "Undefined metrics" in report and "| AUC | undefined |" in report


def test_summarize_folds():
    folds = [{"auc": 0.9, "eer": 0.1, "hter": 0.2, "apcer": 0.1, "bpcer": 0.3, "acer": 0.2, "accuracy": 0.8,
              "threshold_rule": "dev_eer", "threshold_on_test": False},
             {"auc": 0.8, "eer": 0.3, "hter": 0.4, "apcer": 0.3, "bpcer": 0.1, "acer": 0.2, "accuracy": None,
              "threshold_rule": "dev_eer", "threshold_on_test": False}]
    s = summarize_folds(folds)
    assert s["acer"] == {"mean": pytest.approx(0.2), "std": pytest.approx(0.0), "values": [0.2, 0.2]}
    assert s["hter"]["mean"] == pytest.approx(0.3) and s["hter"]["std"] == pytest.approx(0.1)
    assert s["accuracy"]["mean"] is None and s["threshold_rule"] == "dev_eer"


# --- the `fas metrics` command ------------------------------------------------------------------------------------


def _run(argv):
    parser = argparse.ArgumentParser(prog="fas")
    add_metrics_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_json_to_stdout_markdown_to_stderr(tmp_path, capsys):
    _scores(12).to_csv(tmp_path / "test.csv", index=False)
    _scores(13).to_csv(tmp_path / "dev.csv", index=False)
    assert _run(["metrics", str(tmp_path / "test.csv"), "--dev", str(tmp_path / "dev.csv")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["threshold_rule"] == "dev_eer" and "| HTER (at this threshold) |" in err


def test_cli_files_and_explicit_rules(tmp_path, capsys):
    _scores(14).to_csv(tmp_path / "test.csv", index=False)
    args = ["metrics", str(tmp_path / "test.csv"), "--threshold", "test_eer", "--video-level",
            "--json", str(tmp_path / "out/m.json"), "--markdown", str(tmp_path / "out/m.md")]
    assert _run(args) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out/m.json").read_text())
    assert m["threshold_on_test"] is True and m["threshold_rule"] == "test_eer (chosen on the test set)"
    assert m["level"] == "video" and "| Threshold rule | `test_eer (chosen on the test set)` |" in out
    assert (tmp_path / "out/m.md").read_text().startswith("# FAS metrics")
    assert _run(["metrics", str(tmp_path / "test.csv"), "--threshold", "0.5", "--json", str(tmp_path / "f.json")]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["threshold_rule"] == "fixed(0.5)"


def test_cli_refuses_without_rule_and_names_missing_columns(tmp_path):
    _scores(15).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ThresholdRuleError) as info:
        _run(["metrics", str(tmp_path / "test.csv")])
    for option in ("a number", "dev_eer", "--dev", "dev_bpcer:0.05", "test_eer"):
        assert option in str(info.value)
    _scores(15).drop(columns=["label"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(MetricsInputError, match=r"lacks required columns \['label'\]"):
        _run(["metrics", str(tmp_path / "bad.csv"), "--threshold", "0.5"])
    with pytest.raises(MetricsInputError, match=r"lacks required columns \['video'\]"):
        _scores(15).drop(columns=["video"]).to_csv(tmp_path / "nov.csv", index=False)
        _run(["metrics", str(tmp_path / "nov.csv"), "--threshold", "0.5", "--video-level"])
    with pytest.raises(EvalError, match="does not exist"):
        _run(["metrics", str(tmp_path / "missing.csv"), "--threshold", "0.5"])


def test_per_domain_blocks_are_each_domains_own_metrics_at_the_shared_threshold():
    from fas.eval.protocols import PUBLISHED

    a, b, dev = _scores(3), _scores(4), _scores(5)
    b["domain"], b["video"] = "wffd", "w" + b["video"]
    a["domain"] = "siw"
    test = pd.concat([a, b], ignore_index=True)
    blocks = per_domain_metrics(test, dev, ["siw", "wffd", "wmca"], threshold_rule="dev_eer", video_level=True)
    assert list(blocks) == ["siw", "wffd"]  # a domain without test rows has no block
    for domain, part in (("siw", a), ("wffd", b)):
        alone = evaluate_scores(part, dev, threshold_rule="dev_eer", video_level=True)
        assert blocks[domain] == {k: alone[k] for k in blocks[domain]}
    assert blocks["siw"]["threshold"] == blocks["wffd"]["threshold"]
    metrics = {**evaluate_scores(test, dev, video_level=True), "per_domain": blocks,
               "published": PUBLISHED["agfas_unseen"]}
    text = render_markdown(metrics)
    assert "| method | siw | wffd |" in text
    assert "| AG-FAS (published) | 3.18% / 99.50% | 35.44% / 67.23% |" in text
    assert f"| ours (this run) | {100 * blocks['siw']['hter']:.2f}% / {100 * blocks['siw']['auc']:.2f}% |" in text


def test_iso_block_reports_species_bpcer_n_and_the_eer_interval_over_subjects(tmp_path):
    """The ISO/IEC 30107-3 block: APCER per species and APCER_AP, BPCER10/20/100, the EER with an interval from
    resampling subjects (frames of a person are not independent), and the species too small to read closely."""
    test = _scores(4, videos=30)
    test["subject"] = test["video"].str[1:].astype(int).floordiv(6).map("s{}".format)  # 6 videos a subject
    m = evaluate_scores(test, _scores(5))
    ci = m["eer_interval"]
    units = test["domain"] + "/" + test["subject"]
    assert ci == {**M.eer_interval(test.score, test.label, units.to_numpy()), "unit": "subject"}
    assert ci["n_units"] == 5 and ci["low"] <= m["eer"] <= ci["high"]
    thin_species = [t.split(" attacks of ")[1].split(":")[0] for t in m["thin"] if " attacks of " in t]
    assert thin_species == [repr(k) for k, n in m["n_per_attack"].items() if n < 30] != []
    assert (m["n_real"] < 30) == any("bona fide" in t for t in m["thin"])
    report = write_results(tmp_path, test, m, {})["report.md"].read_text()
    at = m["bpcer_at_apcer"]
    assert (f"| {100 * m['bpcer']:.2f}% of {m['n_real']} bona fide | {100 * at['10%']:.2f}% | {100 * at['5%']:.2f}% "
            f"| {100 * at['1%']:.2f}% |") in report
    assert f"| **APCER_AP** (worst species) | {m['n_attack']} | {100 * m['apcer']:.2f}% |" in report
    assert (f"EER: {100 * m['eer']:.2f}% (95% interval {100 * ci['low']:.2f}% to {100 * ci['high']:.2f}%: bootstrap "
            f"over 5 subjects, {ci['replicates']} replicates).") in report
    assert "Statistically thin (fewer than 30 presentations): " in report


def test_eer_interval_falls_back_to_videos_then_samples():
    test = _scores(6)
    assert evaluate_scores(test, threshold_rule=0.5)["eer_interval"]["unit"] == "video"
    assert evaluate_scores(test.drop(columns="video"), threshold_rule=0.5)["eer_interval"]["n_units"] == len(test)


def test_report_html_is_the_markdown_with_every_picture_inlined(tmp_path):
    """One file to mail: the report's tables as HTML tables, each PNG as a data URI (no reference to a file)."""
    import base64
    import re

    test = _scores(7, with_categories=True)
    paths = write_results(tmp_path, test, evaluate_scores(test, _scores(8)), {})
    html, report = paths["report.html"].read_text(), paths["report.md"].read_text()
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert pictures == ["det.png", "scores.png", "apcer.png", "confusion.png", "roc.png"]
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert [base64.b64decode(b) for b in inlined] == [paths[p].read_bytes() for p in pictures]
    assert "<table>" in html and "<td>APCER_AP" not in html and "<strong>APCER_AP</strong>" in html
    assert not re.search(r'src="(?!data:)', html)


def test_the_gallery_takes_the_lowest_scored_bona_fide_and_the_highest_scored_attacks():
    from fas.eval.gallery import worst_frames

    scores = pd.DataFrame({"frame_id": list("abcdefgh"), "label": [1, 1, 1, 1, 0, 0, 0, 0],
                           "score": [0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.4, 0.95]})
    assert worst_frames(scores, per_class=2)["frame_id"].tolist() == ["b", "d", "h", "f"]
