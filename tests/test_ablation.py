"""`fas ablation`: every table's rows resolve to shipped configs, the table files say ours and published apart, and
a run on the generated data trains each row through the engine (SSDG-R and SSDG-R* with the extra real faces)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from fas.ablation import TABLES, AblationConfig, row_config, slug, table_lines, write_table
from fas.methods import get_method


@pytest.mark.parametrize("key", sorted(TABLES))
@pytest.mark.parametrize("size", ["tiny", "paper"])
def test_every_row_of_every_table_has_its_configs(key, size):
    for row in TABLES[key].rows:
        cfg = row_config(get_method(row.method), size, row.fields, AblationConfig())
        for name, value in row.fields.items():
            if name != "config":
                assert getattr(cfg, name) == value, (key, row.label, name)
        if row.generator:
            generator = row_config(get_method(row.generator), size, row.generator_fields, AblationConfig())
            assert get_method(row.generator).cue_maker is not None
            assert all(getattr(generator, k) == v for k, v in row.generator_fields.items() if k != "config")
        if size == "tiny":
            assert cfg.engine.use_gpu is False and cfg.engine.num_workers <= 2


def test_tiny_rows_are_capped_and_paper_rows_are_not():
    method = get_method("oanet")
    capped = row_config(method, "tiny", {"config": "ssdg_r"}, AblationConfig(steps=7))
    paper = row_config(method, "paper", {"config": "ssdg_r"}, AblationConfig(steps=7))
    assert (capped.engine.steps, capped.model, paper.engine.steps, paper.model) == (7, "oanet-resnet-tiny", 4000,
                                                                                  "oanet-resnet18")



def test_a_shortened_deep_svdd_run_keeps_both_phases_in_proportion():
    cfg = row_config(get_method("deepsvdd"), "tiny", {}, AblationConfig(steps=15))  # the tiny run is 40 + 20 steps
    assert (cfg.engine.steps, cfg.pretrain_steps, cfg.pretrain_lr_milestone, cfg.lr_milestone) == (15, 10, 8, 2)


def test_the_table_files_put_ours_beside_the_published_figures(tmp_path):
    results = {"SSDG-R": {"a->b": {"hter": 0.125, "auc": 0.9}, "c->d": {"hter": 0.25, "auc": 0.8}},
               "New row": {"a->b": {"hter": 0.5, "auc": 0.5}, "c->d": {"hter": 0.0, "auc": 1.0}}}
    from fas.ablation import published

    table = {"table": "agfas_viii", "title": "T", "cache": "C", "size": "tiny", "protocols": ["a->b", "c->d"],
             "rows": results, "published": published("agfas_viii"), "threshold_rule": "EER on dev"}
    lines = table_lines(table)
    assert lines[0] == ["row", "ours a->b (HTER / AUC)", "ours c->d (HTER / AUC)", "ours mean (HTER / AUC)",
                        "published (HTER %)"]
    assert lines[1] == ["SSDG-R", "12.50% / 90.00%", "25.00% / 80.00%", "18.75% / 85.00%", "mean 11.29"]
    assert lines[2] == ["New row", "50.00% / 50.00%", "0.00% / 100.00%", "25.00% / 75.00%", "—"]
    paths = write_table(table, tmp_path)
    md = paths["md"].read_text()
    assert "| SSDG-R | 12.50% / 90.00% | 25.00% / 80.00% | 18.75% / 85.00% | mean 11.29 |" in md
    assert "Published: " in md and "the paper's own data" in md and "threshold: EER on dev" in md
    assert "<td>mean 11.29</td>" in paths["html"].read_text()
    assert json.loads(paths["json"].read_text())["rows"] == results


def test_unknown_tables_and_rows_are_refused_with_the_known_ones(capsys):
    from fas.ablation import main

    assert main(["agfas_xx"]) == 2
    assert "unknown table 'agfas_xx'" in capsys.readouterr().err
    assert main(["agfas_viii", "--row", "SSDG-X"]) == 2
    assert "has no rows ['SSDG-X']" in capsys.readouterr().err
    assert main(["--list"]) == 0
    assert "agfas_iv: AG-FAS Table IV" in capsys.readouterr().out


def test_inverse_frequency_class_weights_over_the_training_rows(class8_cache):
    from fas.data.cache import read_cache_table
    from fas.methods.clipc8.task import category_index, class_weight_values

    method = get_method("clipc8")
    cfg = method.load_config("clipc8_weighted.yaml", {"cache": str(class8_cache / "cache")})
    rows = read_cache_table(cfg.cache, columns=["attack", "split"]).to_pandas()
    counts = Counter(category_index(rows[rows.split == "train"].attack, cfg).tolist())
    total = sum(counts.values())
    expected = [total / (len(counts) * counts[c]) if counts[c] else 0.0 for c in range(len(cfg.categories))]
    assert np.allclose(class_weight_values(cfg), expected, rtol=1e-12)
    assert class_weight_values(method.load_config("clipc8.yaml", {"cache": cfg.cache})) == []
    with pytest.raises(ValueError, match="give 8 non-negative weights"):
        class_weight_values(method.load_config("clipc8.yaml", {"cache": cfg.cache, "class_weights": [1.0, 2.0]}))


def test_ssdg_r_and_its_star_row_train_and_score_on_the_generated_data(tmp_path, ray_local):
    """`fas ablation agfas_viii --row SSDG-R --row SSDG-R*`: the quickstart's data and an extra real-face cache
    made under OUT/data, one leave-one-camera-out protocol, both rows trained and evaluated; the table holds the
    evaluation's own figures and the published means."""
    from fas.ablation import main

    assert main(["agfas_viii", "--row", "SSDG-R", "--row", "SSDG-R*", "--steps", "40",
                 "--out", str(tmp_path)]) == 0
    table = json.loads((tmp_path / "agfas_viii" / "ablation.json").read_text())
    (protocol,) = table["protocols"]
    assert protocol.endswith("->synth-cam-c") and set(table["rows"]) == {"SSDG-R", "SSDG-R*"}
    for label, results in table["rows"].items():
        result = results[protocol]
        folder = tmp_path / "agfas_viii" / "eval" / slug(f"{label}_{protocol}")
        metrics = json.loads((folder / "metrics.json").read_text())
        assert (result["hter"], result["auc"]) == (metrics["hter"], metrics["auc"])
        assert metrics["auc"] > 0.5  # it learns: better than chance on the unseen camera
    assert table["rows"]["SSDG-R"][protocol]["fields"] == {}
    assert table["rows"]["SSDG-R*"][protocol]["fields"] == {"extra_real": str(tmp_path / "data" / "cache" / "extra")}
    md = (tmp_path / "agfas_viii" / "ablation.md").read_text()
    assert "mean 11.29" in md and "mean 11.06" in md
