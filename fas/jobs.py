"""The job entry points ``jobs/*.py`` call: embedded (a local Ray cluster on 127.0.0.1) or under
``ray job submit -- python jobs/train.py METHOD --config FILE``. Each parses a config dataclass (``--config``
plus one flag per field) and runs it."""

from __future__ import annotations

import argparse
import json


def train_main(argv: list[str] | None = None) -> dict:
    """``jobs/train.py METHOD [--config FILE] [--FIELD VALUE ...]``: any registered method, one engine."""
    from fas.config import add_config_flags, config_from_args
    from fas.engine import train
    from fas.methods import get_method, method_names

    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("method", nargs="?")
    known, _ = first.parse_known_args(argv)
    if known.method is None or known.method.startswith("-"):
        raise SystemExit(f"usage: jobs/train.py METHOD [--config FILE] [flags]; METHOD: {', '.join(method_names())}")
    method = get_method(known.method)
    parser = argparse.ArgumentParser(prog=f"jobs/train.py {known.method}",
                                     description=f"Train {method.name}: {method.summary}. Every config field is a "
                                                 f"flag; default config: {method.default_config}.")
    parser.add_argument("method")
    add_config_flags(parser, method.config)
    cfg = config_from_args(method.config, parser.parse_args(argv), default=method.default_config)
    run = train(cfg)
    out = {"metrics": run.metrics, "checkpoint": run.checkpoint.path if run.checkpoint else None}
    print(json.dumps(out, default=str))
    return out


def run_job(config_cls, run, report, description: str, argv: list[str] | None = None):
    """Parse ``config_cls`` from ``argv`` (``--config`` + flags), ``run`` it and print ``report(result)``."""
    import logging

    from fas.config import add_config_flags, config_from_args

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, config_cls)
    cfg = config_from_args(config_cls, parser.parse_args(argv))
    logging.basicConfig(level=logging.WARNING)
    result = run(cfg)
    print(report(cfg, result))
    return result
