"""``fas compare``: evaluation folders side by side, runs under one label as mean ± std, published beside ours."""

import json

import numpy as np
import pytest

from fas.eval.compare import compare, main
from fas.eval.errors import MetricsInputError
from fas.eval.report import evaluate_scores, write_results
from tests.test_eval_report import _scores


@pytest.fixture
def runs(tmp_path):
    """Three evaluation folders: two seeds of method A, one of method B (protocol agfas_unseen for all)."""
    folders = []
    for seed in (1, 2, 3):
        test = _scores(seed)
        folder = tmp_path / f"eval_{seed}"
        write_results(folder, test, evaluate_scores(test, _scores(seed + 10)),
                      {"evaluate": {"protocol": "agfas_unseen", "checkpoint": f"ckpt{seed}"}})
        folders.append(folder)
    return folders


def test_same_label_runs_are_mean_and_std_and_each_run_has_a_curve(runs, tmp_path):
    out = tmp_path / "cmp"
    result = compare([str(f) for f in runs], ["A", "A", "B"], out)
    metrics = [json.loads((f / "metrics.json").read_text()) for f in runs]
    a, b = result["rows"]
    assert (a["label"], a["runs"], b["label"], b["runs"]) == ("A", 2, "B", 1)
    hters = [m["hter"] for m in metrics[:2]]
    assert a["hter"]["mean"] == pytest.approx(np.mean(hters)) and a["hter"]["std"] == pytest.approx(np.std(hters))
    assert a["bpcer20"]["values"] == [m["bpcer_at_apcer"]["5%"] for m in metrics[:2]]
    text = (out / "compare.md").read_text()
    assert (f"| A | 2 | {100 * np.mean(hters):.2f} ± {100 * np.std(hters):.2f}% |") in text
    assert f"| B | 1 | {100 * metrics[2]['hter']:.2f}% |" in text
    assert "| AG-FAS (published) | 17.98 / 90.43 |" in text  # the protocol's published figures, labelled
    assert {p.name for p in out.iterdir()} == {"compare.md", "compare.html", "compare.json", "det.png", "roc.png"}
    assert 'src="data:image/png;base64,' in (out / "compare.html").read_text()


def test_bad_arguments_are_named(runs, tmp_path, capsys):
    with pytest.raises(MetricsInputError, match="2 labels for 3 runs"):
        compare([str(f) for f in runs], ["A", "B"], tmp_path / "x")
    with pytest.raises(SystemExit, match=r"not an evaluation folder: metrics.json, scores.csv missing"):
        main([str(tmp_path), "--out", str(tmp_path / "y")])
    from fas.cli import main as fas

    assert fas(["compare", str(runs[0]), "--out", str(tmp_path / "z")]) == 0
    assert "| eval_1 | 1 |" in capsys.readouterr().out
