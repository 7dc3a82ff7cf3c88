"""``fas ablation TABLE``: the rows of a paper's comparison or ablation table run on one cache and set of protocols,
our figure beside the published one.

A table is a list of rows, each a registered method with config fields over its config (tiny on the generated data
by default, the paper's with ``--size paper``), and for OA-Net rows the generator method trained first on the
protocol's source real faces. Every row is trained through the engine and scored by the evaluation harness with the
same threshold rule (the EER threshold on the protocol's source-side rows), so the rows differ only in what the
table varies. Published figures (``fas.eval.published_tables``) are shown beside ours and labelled as such: they
come from the papers' data, models and budgets, ours from the given cache.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import sys
from pathlib import Path

OCIM_LOO = ("O&C&I->M", "O&M&I->C", "O&C&M->I", "I&C&M->O")


@dataclasses.dataclass(frozen=True)
class Row:
    label: str  # as the paper prints it: the key of the published row
    method: str
    fields: dict = dataclasses.field(default_factory=dict)  # config fields over the method's config
    generator: str | None = None  # OA-Net rows: the generator method trained first (on the source real faces)
    generator_fields: dict = dataclasses.field(default_factory=dict)
    extra_real: bool = False  # a "*" row: the extra real-face cache joins training


@dataclasses.dataclass(frozen=True)
class Table:
    key: str
    title: str
    rows: tuple[Row, ...]
    protocols: tuple[str, ...] = OCIM_LOO  # the paper's protocols (``--size paper``); None: train/dev/test splits


def _oanet(label: str, generator: str = "dfg", generator_fields: dict | None = None, **fields) -> Row:
    return Row(label, "oanet", fields, generator, generator_fields or {})


DG_ROWS = (Row("SSDG-R", "oanet", {"config": "ssdg_r"}), Row("SSAN-R", "ssan"), Row("SA-FAS", "safas"),
           Row("SSDG-R*", "oanet", {"config": "ssdg_r"}, extra_real=True), Row("SSAN-R*", "ssan", extra_real=True),
           Row("SA-FAS*", "safas", extra_real=True), _oanet("AG-FAS"))

TABLES = {t.key: t for t in (
    Table("agfas_iii", "AG-FAS Table III: DG baselines and AG-FAS on OCIM", DG_ROWS[:3] + DG_ROWS[-1:]),
    Table("agfas_iv", "AG-FAS Table IV: which generator gives the most useful cue", (
        _oanet("MemAE", "memae"), _oanet("Deep SVDD", "deepsvdd"), _oanet("AnoDDPM", "dfg", {"config": "anoddpm"}),
        _oanet("DFG†", cue_mask="parsing"), _oanet("DFG"))),
    Table("agfas_v", "AG-FAS Table V: OA-Net's structure", (
        Row("Image only", "oanet", {"mode": "image_only"}), _oanet("Cue only", mode="cue_only"),
        _oanet("Dual branch", mode="dual_branch"), _oanet("OA-Net", mode="oanet"))),
    Table("agfas_vi", "AG-FAS Table VI: the noising depth t of the de-faking", tuple(
        _oanet(f"t = {t}", noise_step=t) for t in (200, 400, 600, 801))),
    Table("agfas_vii", "AG-FAS Table VII: the share of real faces the generator learns from", tuple(
        _oanet(f"{round(f * 100)}%", generator_fields={"real_face_fraction": f}) for f in (0.25, 0.5, 1.0))),
    Table("agfas_viii", "AG-FAS Table VIII: DG methods with the extra real faces", DG_ROWS),
    Table("clipc8_8", "CLIPC8 Table 8: class texts against digits", (
        Row("CLIPC8", "clipc8"), Row("CLIPC8*", "clipc8", {"prompts": [str(i) for i in range(1, 9)]})),
        protocols=(None,)),
    Table("pdle_2", "PDLE Table 2: patch exchange and label encoding", (
        Row("w/o PE", "pdle", {"patch_exchange": False}), Row("w/o LE", "pdle", {"label_encoding": False}),
        Row("PDLE", "pdle")), protocols=(None,)),
)}


@dataclasses.dataclass
class AblationConfig:
    """``fas ablation`` options; every field is also a flag."""

    table: str = ""  # a key of TABLES (``fas ablation --list``)
    cache: str | None = None  # a frame cache; default: the generated data (made under OUT/data)
    protocols: list[str] = dataclasses.field(default_factory=list)  # default: the paper's, or one on generated data
    size: str = "tiny"  # tiny | paper: which config of every method
    rows: list[str] = dataclasses.field(default_factory=list)  # row labels to run (default: all)
    extra_real: str | None = None  # the extra real-face cache of the "*" rows (default on generated data: made)
    parsing_weights: str | None = None  # the face parser of the DFG† row; without it the landmark mask stands in
    out: str = "runs/ablation"
    steps: int | None = None  # caps step runs (tiny size; e.g. 20 for a smoke run)
    epochs: int | None = None  # caps epoch runs
    seed: int = 0
    address: str | None = None


def get_table(name: str) -> Table:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known: {sorted(TABLES)}")
    return TABLES[name]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text.replace("†", "dagger").replace("*", "star")).strip("_").lower()


def row_config(method, size: str, fields: dict, cfg: AblationConfig):
    """The method's tiny or paper config (or the named one) with ``fields``, capped in length at tiny size."""
    fields = dict(fields)
    path = fields.pop("config", None)
    path = f"{path}{'_tiny' if size == 'tiny' else ''}.yaml" if path else (
        method.tiny_config if size == "tiny" else method.default_config)
    loaded = method.load_config(path, {**fields, "address": cfg.address})
    length = cfg.epochs if loaded.engine.unit == "epoch" else cfg.steps
    if size != "tiny" or not length:
        return loaded
    return method.with_length(loaded, min(loaded.engine.total, length))


class Runner:
    """Runs rows on one cache; a generator is trained once per (method, fields, protocol) and shared by rows."""

    def __init__(self, cfg: AblationConfig, table: Table, cache: str, extra_real: str | None):
        self.cfg, self.table, self.cache, self.extra_real = cfg, table, cache, extra_real
        self.out = Path(cfg.out).resolve() / table.key
        self.generators: dict[str, str] = {}

    def _train(self, method_name: str, fields: dict, protocol: str | None, name: str):
        from fas.engine import train
        from fas.methods import get_method

        method = get_method(method_name)
        run_cfg = row_config(method, self.cfg.size, {**fields, "cache": self.cache, "protocol": protocol,
                                                     "storage_path": str(self.out / "runs"), "name": name,
                                                     "seed": self.cfg.seed}, self.cfg)
        return train(run_cfg)

    def generator(self, row: Row, protocol: str | None) -> str:
        key = json.dumps([row.generator, row.generator_fields, protocol], sort_keys=True)
        if key not in self.generators:
            name = slug(f"{row.generator}_{json.dumps(row.generator_fields, sort_keys=True)}_{protocol}")
            self.generators[key] = self._train(row.generator, row.generator_fields, protocol, name).checkpoint.path
        return self.generators[key]

    def run(self, row: Row, protocol: str | None) -> dict:
        from fas.evaluate import EvaluateConfig, evaluate

        fields = dict(row.fields)
        if row.generator:
            fields["generator"] = self.generator(row, protocol)
        if fields.get("cue_mask") == "parsing":  # without a parser the detector's landmarks (else box) mask it
            if self.cfg.parsing_weights:
                fields["parsing_weights"] = self.cfg.parsing_weights
            else:
                fields["cue_mask"] = "landmarks"
        if row.extra_real:
            if not self.extra_real:
                raise ValueError(f"row {row.label!r} adds extra real faces: give --extra-real CACHE")
            fields["extra_real"] = self.extra_real
        name = slug(f"{row.label}_{protocol or 'splits'}")
        run = self._train(row.method, fields, protocol, name)
        metrics = evaluate(EvaluateConfig(checkpoint=run.checkpoint.path, cache=run.config.cache, protocol=protocol,
                                          out=str(self.out / "eval" / name), address=self.cfg.address))
        varied = {k: getattr(run.config, k) for k in fields if k != "config"}  # what this row set, as trained
        return {"hter": metrics["hter"], "auc": metrics["auc"], "threshold_rule": metrics["threshold_rule"],
                "fields": varied, "checkpoint": str(run.checkpoint.path),
                "report": str(self.out / "eval" / name / "report.md")}


def generated_data(cfg: AblationConfig) -> tuple[str, str, list[str]]:
    """The quickstart's generated data under OUT/data: the CLASS-8 cache, an extra real-face cache (bona fide faces
    of other generated people, as FFHQ is to the FAS datasets) and one leave-one-camera-out protocol."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from fas.data.cache import PrepareConfig, prepare
    from fas.data.manifest import write_manifest
    from fas.data.readers import read_dataset
    from fas.data.selection import distinct_values
    from fas.data.synth import generate

    root = Path(cfg.out).resolve() / "data"
    caches = {}
    for name, seed in (("class8", cfg.seed), ("extra", cfg.seed + 1000)):
        cache = root / "cache" / name
        if not (cache / "cache.json").is_file():
            generate(root / name, seed=seed, size="tiny")
            table = read_dataset("class8", root / name / "class8")
            if name == "extra":  # bona fide faces only, under a domain of their own
                table = table.filter(pc.equal(table["label"], 1))
                table = table.set_column(table.schema.get_field_index("domain"), "domain",
                                         pa.array(["extra_real"] * table.num_rows))
            manifest = write_manifest(table, root / f"{name}.parquet")
            prepare(PrepareConfig(manifest=str(manifest), out=str(cache), detector="none", size=128,
                                  no_face="keep", progress=False, address=cfg.address))
        caches[name] = str(cache)
    domains = distinct_values(caches["class8"], "domain")
    return caches["class8"], caches["extra"], [f"{'&'.join(domains[:-1])}->{domains[-1]}"]


def run_table(cfg: AblationConfig) -> dict:
    """Every selected row on every protocol; writes OUT/<table>/ablation.{json,md,html} and returns the table."""
    table = get_table(cfg.table)
    if cfg.size not in ("tiny", "paper"):
        raise ValueError(f"size must be tiny or paper, got {cfg.size!r}")
    rows = [r for r in table.rows if not cfg.rows or r.label in cfg.rows]
    unknown = sorted(set(cfg.rows) - {r.label for r in table.rows})
    if unknown:
        raise ValueError(f"table {table.key} has no rows {unknown}; its rows: {[r.label for r in table.rows]}")
    cache, extra, protocols = cfg.cache, cfg.extra_real, list(cfg.protocols)
    if not cache:
        cache, made_extra, generated_protocols = generated_data(cfg)
        extra = extra or made_extra
        protocols = protocols or (generated_protocols if table.protocols != (None,) else [None])
    protocols = protocols or list(table.protocols)
    runner = Runner(cfg, table, cache, extra)
    results = {row.label: {str(p): runner.run(row, p) for p in protocols} for row in rows}
    out = {"table": table.key, "title": table.title, "cache": cache, "size": cfg.size,
           "protocols": [str(p) for p in protocols], "rows": results, "published": published(table.key),
           "threshold_rule": "EER threshold on the protocol's source-side (dev) rows; HTER and AUC on its test rows"}
    write_table(out, runner.out)
    return out


def published(key: str) -> dict | None:
    try:
        from fas.eval.published_tables import PUBLISHED_TABLES
    except ImportError:
        return None
    return PUBLISHED_TABLES.get(key)


def _cells(results: dict, protocols: list[str]) -> list[str]:
    """HTER % / AUC % per protocol, then their mean."""
    cells = [f"{results[p]['hter']:.2%} / {results[p]['auc']:.2%}" for p in protocols]
    if len(protocols) > 1:
        mean = [sum(results[p][k] for p in protocols) / len(protocols) for k in ("hter", "auc")]
        cells.append(f"{mean[0]:.2%} / {mean[1]:.2%}")
    return cells


def _published_cells(published: dict | None, label: str) -> str:
    if not published or published.get("rows", {}).get(label) is None:
        return "—"
    values = published["rows"][label]
    pairs = zip(published["columns"], values)
    return "; ".join(f"{column} {value}" for column, value in pairs if value is not None) or "—"


def table_lines(table: dict) -> list[list[str]]:
    """Header + one line per row: ours per protocol (+ mean), the published cells of the same row."""
    protocols, pub = table["protocols"], table["published"]
    header = ["row", *(f"ours {p} (HTER / AUC)" for p in protocols)]
    header += ["ours mean (HTER / AUC)"] if len(protocols) > 1 else []
    metric = (pub or {}).get("metric") or ", ".join((pub or {}).get("metrics", []))
    header.append(f"published ({metric})" if pub else "published")
    return [header] + [[label, *_cells(results, protocols), _published_cells(pub, label)]
                       for label, results in table["rows"].items()]


def write_table(table: dict, folder: Path) -> dict[str, Path]:
    """ablation.json, ablation.md and a self-contained ablation.html in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = table_lines(table)
    pub = table["published"]
    source = (f"Published: {pub.get('paper', '')} Table {pub.get('table', '')} ({pub.get('source', '')}), the "
              "paper's own data, models and budget." if pub else "No published figures are recorded for this table.")
    notes = [f"Ours: {table['size']} configs on {table['cache']}; threshold: {table['threshold_rule']}.", source]
    md = [f"# {table['title']}", "", "| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    md += ["| " + " | ".join(line) + " |" for line in lines[1:]] + [""] + notes
    cells = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>"
                                     for c in line) + "</tr>" for i, line in enumerate(lines))
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(table['title'])}</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #999;padding:4px 8px}"
            "table{border-collapse:collapse}</style>"
            f"<h1>{html.escape(table['title'])}</h1><table>{cells}</table>"
            + "".join(f"<p>{html.escape(n)}</p>" for n in notes))
    paths = {"json": folder / "ablation.json", "md": folder / "ablation.md", "html": folder / "ablation.html"}
    paths["json"].write_text(json.dumps(table, indent=2, default=str))
    paths["md"].write_text("\n".join(md) + "\n")
    paths["html"].write_text(page)
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    from fas.config import add_config_flags, config_from_args

    parser = argparse.ArgumentParser(prog="fas ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("table", nargs="?", help=f"one of {sorted(TABLES)}")
    parser.add_argument("--list", action="store_true", help="list the tables and their rows")
    parser.add_argument("--protocol", action="append", help="a protocol (repeatable; default: the table's, or one "
                        "leave-one-out protocol on the generated data)")
    parser.add_argument("--row", action="append", help="a row label to run (repeatable; default: every row)")
    add_config_flags(parser, AblationConfig, skip=("table",))
    args = parser.parse_args(argv)
    if args.list or not args.table:
        for table in TABLES.values():
            print(f"{table.key}: {table.title}\n    rows: {', '.join(r.label for r in table.rows)}")
        return 0
    cfg = config_from_args(AblationConfig, args, {"table": args.table, "protocols": args.protocol,
                                                  "rows": args.row})
    try:
        result = run_table(cfg)
    except ValueError as exc:
        print(f"fas ablation: error: {exc}", file=sys.stderr)
        return 2
    print((Path(cfg.out).resolve() / result["table"] / "ablation.md").read_text())
    return 0
