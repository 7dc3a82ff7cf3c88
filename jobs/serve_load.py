"""Load-test the liveness endpoint on loopback: p50/p99 and req/s with Serve vs the same work in-process.

    python jobs/serve_load.py --serve-config serve/config.yaml --requests 200 --concurrency 8 [--kill clipc8]

Starts a local Ray cluster on 127.0.0.1 (or joins --address), deploys the application of the Serve config under
its own name and route, runs the bounded phases of ``fas.serve.load`` and prints the report as JSON.
"""

import json

from fas.jobs import run_job
from fas.serve.load import LoadConfig, format_report, run_load

if __name__ == "__main__":
    run_job(LoadConfig, run_load, lambda cfg, report: json.dumps(report, indent=2) + "\n" + format_report(report),
            __doc__)
