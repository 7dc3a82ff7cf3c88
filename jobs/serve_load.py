"""Load-test the liveness endpoint on loopback: p50/p99 and req/s with Serve vs the same work in-process.

    python jobs/serve_load.py --serve-config serve/config.yaml --requests 200 --concurrency 8 [--kill clipc8]

Starts a local Ray cluster on 127.0.0.1 (or joins --address), deploys the application of the Serve config under
its own name and route, runs the bounded phases of ``fas.serve.load`` and prints the report as JSON.
"""

import argparse
import json
import logging

from fas.config import add_config_flags, config_from_args
from fas.serve.load import LoadConfig, format_report, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, LoadConfig)
    cfg = config_from_args(LoadConfig, parser.parse_args())
    logging.basicConfig(level=logging.WARNING)
    report = run_load(cfg)
    print(json.dumps(report, indent=2))
    print(format_report(report))


if __name__ == "__main__":
    main()
