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

    summary = generate(Path(args.out), seed=args.seed, size=args.size)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_manifest(args) -> int:
    from fas.data.manifest import format_summary, summarize, write_manifest
    from fas.data.readers import read_dataset

    table = read_dataset(args.dataset, args.root, protocol=args.protocol)
    write_manifest(table, args.out)
    print(format_summary(summarize(table), title=f"{args.dataset} manifest -> {args.out}"))
    return 0


def cmd_prepare(args) -> int:
    from fas.data.cache import PrepareConfig, format_prepare_summary, prepare

    cfg = _load(PrepareConfig, args, {"manifest": args.manifest_path})
    if not cfg.out:
        raise SystemExit("fas prepare: --out CACHE_DIR is required (or `out:` in the config)")
    print(format_prepare_summary(prepare(cfg)))
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


def cmd_bench_data(args) -> int:
    from fas.data.bench import run_benchmark

    print(json.dumps(run_benchmark(Path(args.out), frames=args.frames, detector=args.detector), indent=2))
    return 0


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
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("manifest", help="read a dataset root into a manifest Parquet file")
    p.add_argument("dataset", help="reader name, e.g. oulu_npu, casia_fasd, replay_attack, msu_mfsd, class8")
    p.add_argument("root")
    p.add_argument("--out", required=True)
    p.add_argument("--protocol", default=None, help="dataset protocol, e.g. OULU-NPU 1, 2, 3_1 .. 4_6")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("prepare", help="sample frames, crop faces, write the Parquet frame cache")
    p.add_argument("manifest_path", metavar="MANIFEST", nargs="?")
    _add_config_flags(p, PrepareConfig, skip=("manifest",))
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("methods", help="list the registered methods and their configs")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("train", help="train a method (the same as jobs/train.py METHOD ...)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    for name in method_names(with_aliases=False):  # a method's own subcommands (CLIPC8: zero-shot)
        for command in get_method(name).commands:
            resolve(command)(sub)

    p = sub.add_parser("bench-data", help="data-plane throughput: Ray Data pipeline vs a single-process loop")
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--detector", default="haar")
    p.set_defaults(func=cmd_bench_data)

    from fas.eval.cli import add_metrics_parser

    add_metrics_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # user errors: say what is wrong, no traceback
        print(f"fas {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
