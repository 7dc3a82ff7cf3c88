"""The ``fas`` command line. Each subcommand fills a config dataclass (``--config FILE`` plus flags) and runs it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _add_config_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    from fas.config import add_config_flags

    add_config_flags(parser, cls, skip)


def _load(cls, args: argparse.Namespace, positional: dict | None = None):
    from fas.config import config_from_args

    return config_from_args(cls, args, positional)


def cmd_synth(args) -> int:
    from fas.data.synth import generate

    summary = generate(Path(args.out), seed=args.seed, size=args.size, public=args.public)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_manifest(args) -> int:
    from fas.data.manifest import format_summary, summarize, write_manifest
    from fas.data.readers import read_dataset

    if (args.dataset == "pattern") != (args.spec is not None):
        raise SystemExit("fas manifest: --spec goes with the dataset name 'pattern' (fas manifest pattern ROOT --spec "
                         "layout.yaml --out FILE), and 'pattern' needs it")
    if args.spec is not None:
        from fas.data.readers.pattern import read_pattern

        table, read = read_pattern(args.root, args.spec)
        skipped = ", ".join(f"{n} {why}" for why, n in read["skipped"].items()) or "none"
        print(f"{read['read']} files read with {args.spec}; skipped: {skipped}")
    else:
        table = read_dataset(args.dataset, args.root, protocol=args.protocol)
    write_manifest(table, args.out)
    print(format_summary(summarize(table), title=f"{args.dataset} manifest -> {args.out}"))
    return 0


def cmd_prepare(args) -> int:
    from fas.data.cache import PrepareConfig, format_prepare_summary, prepare

    paths = args.manifest_path or []
    cfg = _load(PrepareConfig, args, {"manifest": paths[0] if len(paths) == 1 and "=" not in paths[0] else None})
    if not cfg.out:
        raise SystemExit("fas prepare: --out CACHE_DIR is required (or `out:` in the config)")
    sources = None
    if len(paths) > 1 or (paths and "=" in paths[0]):  # several datasets into one cache
        from fas.config import replace
        from fas.data.manifest import merge_manifests, parse_source, write_manifest

        merged, sources = merge_manifests([parse_source(p) for p in paths])
        cfg = replace(cfg, manifest=str(write_manifest(merged, Path(cfg.out) / "manifest.parquet")))
    print(format_prepare_summary(prepare(cfg, sources=sources)))
    return 0


def cmd_protocols(args) -> int:
    from fas.eval.protocols import describe_protocols, format_protocols

    rows = describe_protocols()
    print(json.dumps(rows, indent=2) if args.json else format_protocols(rows))
    return 0


def cmd_quickstart(args) -> int:
    from fas.quickstart import QuickstartConfig, run_quickstart

    return run_quickstart(_load(QuickstartConfig, args))


def cmd_train(args) -> int:
    from fas.jobs import train_main

    train_main(args.rest)
    return 0


def cmd_methods(args) -> int:
    from fas.methods import get_method, method_names

    for name in method_names(with_aliases=False):
        m = get_method(name)
        aliases = f" (alias {', '.join(m.aliases)})" if m.aliases else ""
        print(f"{name:<8}{aliases}: {m.summary}\n          configs: {m.default_config} (paper), {m.tiny_config} (tiny)")
    return 0


def cmd_ablation(args) -> int:
    from fas.ablation import main as ablation_main

    return ablation_main(args.rest)


def cmd_compare(args) -> int:
    from fas.eval.compare import main as compare_main

    return compare_main(args.rest)


def cmd_bench(args) -> int:
    from fas.bench.run import main as bench_main

    return bench_main(args.rest)


def cmd_drill(args) -> int:
    from fas.drills import DRILLS, drill_table, run_drills, write_json

    if args.list:
        print("\n".join(DRILLS))
        return 0
    names = args.only or list(DRILLS)
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        raise ValueError(f"no drill {', '.join(unknown)}; `fas drill --list` names them")
    import os
    import platform
    import tempfile

    from fas.ray_utils import init_ray

    init_ray(num_cpus=args.num_cpus)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fas_drill_"))
    results = run_drills(names, workdir)
    print(drill_table(results))
    print(f"work folders: {workdir}")
    if args.json:
        write_json(results, Path(args.json), f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}")
    return 0 if all(r.passed for r in results) else 1


def cmd_bench_data(args) -> int:
    from fas.data.bench import run_benchmark

    print(json.dumps(run_benchmark(Path(args.out), frames=args.frames, detector=args.detector), indent=2))
    return 0


def cmd_doctor(args) -> int:
    from fas.doctor import run_doctor

    return run_doctor(args.config, args.address)


def cmd_plan(args) -> int:
    from fas.plan import run_plan

    return run_plan(args.config, args.gpus, args.gpu, args.gpu_memory, args.peak_tflops, args.mfu, args.rows)


def cmd_predict(args) -> int:
    from fas.predict import format_report, run_predict

    report = run_predict(predict_config(args))
    print(format_report(report, args.format))
    return 0 if report["read"] else 1  # 1 only when no file at all could be read


def predict_config(args):
    import dataclasses

    from fas.predict import PredictConfig
    from fas.quality import QualityConfig
    from fas.serve.config import FaceConfig

    quality = QualityConfig(**{f.name: getattr(args, f"quality_{f.name}") for f in dataclasses.fields(QualityConfig)
                               if getattr(args, f"quality_{f.name}") is not None})
    face = {k: getattr(args, k) for k in ("detector", "detector_weights", "margin", "size")
            if getattr(args, k) is not None}
    return PredictConfig(model=args.model, paths=args.paths, format=args.format, threshold=args.threshold,
                         operating_point=args.operating_point, dev_scores=args.dev_scores, frames=args.frames,
                         aggregation=args.aggregation, input=args.input, explain=args.explain, onnx=args.onnx,
                         device=args.device, face=FaceConfig(**face) if face else None, quality=quality)


def add_predict_parser(sub) -> None:
    import dataclasses

    from fas.quality import QualityConfig

    p = sub.add_parser("predict", help="liveness of local images, videos, folders or globs (no Ray cluster)")
    p.add_argument("model", metavar="MODEL_DIR", help="a model folder (model.pt, model_config.json, metrics.json)")
    p.add_argument("paths", metavar="PATH", nargs="+", help="image or video files, folders (recursed), globs")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", dest="format", action="store_const", const="json", help="JSON report")
    out.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV, one line per row")
    p.set_defaults(format="table")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--threshold", type=float, default=None, help="decision threshold (default: metrics.json's)")
    when.add_argument("--operating-point", default=None, metavar="bpcer=FRACTION",
                      help="the threshold at this BPCER on the evaluation's dev scores (MODEL_DIR/scores.csv)")
    p.add_argument("--dev-scores", default=None, help="the evaluation's scores.csv, when not in MODEL_DIR")
    p.add_argument("--frames", type=int, default=10, help="frames sampled per video (default 10)")
    p.add_argument("--aggregation", default="mean", help="per-video score from the frames': mean|median|max|min")
    p.add_argument("--input", default=None, choices=("face", "frame"), help="crop scored (default: face)")
    p.add_argument("--explain", default=None, metavar="DIR", help="write explanation PNGs per scored frame here")
    p.add_argument("--onnx", default=None, metavar="FILE", help="score with this `fas export` ONNX file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--detector", default=None, help="face detector: none | haar | yunet (default haar)")
    p.add_argument("--detector-weights", default=None)
    p.add_argument("--margin", type=float, default=None, help="face crop margin (default 0.2)")
    p.add_argument("--size", type=int, default=None, help="crop side (default 128: the training cache's --size)")
    for field in dataclasses.fields(QualityConfig):
        flag = "--quality-" + field.name.replace("_", "-")
        if field.name == "uncertain_band":
            p.add_argument(flag, type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                           help="scores inside [LOW, HIGH] are decided 'uncertain'")
        else:
            p.add_argument(flag, type=type(field.default), default=None, help=f"(default {field.default})")
    p.set_defaults(func=cmd_predict)


def cmd_export(args) -> int:
    from fas.export import ExportConfig, export_onnx, format_export

    cfg = ExportConfig(model=args.model, onnx=args.onnx, opset=args.opset)
    print(format_export(cfg, export_onnx(cfg)))
    return 0


def add_export_parser(sub) -> None:
    from fas.export import OPSET

    p = sub.add_parser("export", help="a model folder as ONNX (CLIPC8, PDLE, OA-Net) + a sidecar JSON")
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file (sidecar: OUT.json)")
    p.add_argument("--opset", type=int, default=OPSET)
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    from fas.data.cache import PrepareConfig
    from fas.methods import get_method, method_names
    from fas.methods.base import resolve
    from fas.quickstart import QuickstartConfig

    parser = argparse.ArgumentParser(prog="fas", description="Face anti-spoofing on Ray")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quickstart", help="generate data, prepare it, train, evaluate (embedded Ray cluster)")
    _add_config_flags(p, QuickstartConfig)
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("synth", help="write the generated (synthetic) dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="quickstart", choices=["tiny", "quickstart"])
    p.add_argument("--public", action="store_true", help="also write stand-ins of the public datasets in their own "
                   "layouts under OUT/public (MSU-MFSD, CASIA-FASD, Replay-Attack, NUAA, HKBU-MARs, WFFD, Rose-Youtu, "
                   "SiW, WMCA)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("manifest", help="read a dataset root into a manifest Parquet file")
    p.add_argument("dataset", help="reader name (e.g. oulu_npu, casia_fasd, replay_attack, msu_mfsd, class8, "
                   "rose_youtu), or 'pattern' with --spec")
    p.add_argument("root")
    p.add_argument("--out", required=True)
    p.add_argument("--protocol", default=None, help="dataset protocol, e.g. OULU-NPU 1, 2, 3_1 .. 4_6")
    p.add_argument("--spec", default=None, help="with the dataset 'pattern': a YAML layout of globs, a regex with "
                   "named groups and value maps (see fas/data/specs/*.yaml)")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("prepare", help="sample frames, crop faces, write the Parquet frame cache")
    p.add_argument("manifest_path", metavar="MANIFEST[=DOMAIN]", nargs="*",
                   help="one manifest, or several merged into one cache (each optionally renamed to DOMAIN)")
    _add_config_flags(p, PrepareConfig, skip=("manifest",))
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("protocols", help="every evaluation protocol: what it trains, thresholds and tests on")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_protocols)

    p = sub.add_parser("methods", help="list the registered methods and their configs")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("doctor", help="what the configs need (weights, frame cache, GPUs, cluster): found or missing")
    p.add_argument("--config", action="append", default=[], metavar="[METHOD=]FILE",
                   help="a method config (repeatable); default: every method's paper config")
    p.add_argument("--address", default=None, help="a Ray cluster to reach (default: $RAY_ADDRESS)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("plan", help="per-GPU memory (weights, gradients, optimizer, activations), fit, and run time")
    p.add_argument("--config", required=True, metavar="[METHOD=]FILE")
    p.add_argument("--gpus", type=int, default=4, help="ranks, one per GPU (default 4, as in the papers)")
    p.add_argument("--gpu", default="T4", help="GPU model for its memory and peak (default T4, the papers')")
    p.add_argument("--gpu-memory", default=None, help="memory per GPU, e.g. 16GiB (default: the GPU model's)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense peak for the precision trained in")
    p.add_argument("--mfu", type=float, default=0.3, help="model FLOPs utilisation assumed for the wall time")
    p.add_argument("--rows", type=int, default=None, help="training rows per epoch (epoch runs; default: the cache's)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="train a method (the same as jobs/train.py METHOD ...)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    for name in method_names(with_aliases=False):  # a method's own subcommands (CLIPC8: zero-shot)
        for command in get_method(name).commands:
            resolve(command)(sub)

    p = sub.add_parser("bench", help="every distributed path beside its plain loop: a table of rates and ratios "
                                     "(fas bench --help)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("ablation", help="a paper table's rows on one cache: ours beside the published figures "
                                        "(fas ablation --list)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_ablation)

    p = sub.add_parser("compare", help="evaluation folders side by side: metrics, mean ± std per label, DET and "
                                       "ROC (fas compare --help)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("drill", help="fault drills on the generated data: kill, fill, tamper; one table of what the "
                                      "system did and what each fault cost")
    p.add_argument("--only", nargs="+", metavar="NAME", help="these drills (default: all; --list names them)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--workdir", help="where the drills build their data and runs (default: a new temporary folder)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded Ray cluster")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("bench-data", help="data-plane throughput: Ray Data pipeline vs a single-process loop")
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--detector", default="haar")
    p.set_defaults(func=cmd_bench_data)

    add_predict_parser(sub)
    add_export_parser(sub)

    from fas.label.cli import add_label_parser

    add_label_parser(sub)

    from fas.eval.cli import add_metrics_parser

    add_metrics_parser(sub)
    return parser


PASSED_ON = {"train": cmd_train, "bench": cmd_bench, "ablation": cmd_ablation}  # subcommands that parse their own flags (--help too)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in PASSED_ON:
        return int(PASSED_ON[argv[0]](argparse.Namespace(rest=argv[1:])) or 0)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # user errors: say what is wrong, no traceback
        print(f"fas {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
