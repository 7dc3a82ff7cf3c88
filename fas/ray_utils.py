"""Where a job finds its Ray cluster: an existing one (``--address`` / ``RAY_ADDRESS``) or an embedded local one."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

# Ray Train's placement-group cleaner asks the State API, served by the dashboard, whether the controller lives;
# an embedded cluster starts no dashboard, so it logs one warning a second for the whole run (and keeps working:
# the controller cleans up its own placement group when it ends normally).
SILENCED_IN_WORKERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def quiet_ray_worker() -> None:
    """``worker_process_setup_hook`` of the embedded cluster: silence the loggers of ``SILENCED_IN_WORKERS``, and
    name this cluster to the State API client (which otherwise looks the cluster up by process list, and fails
    when a second Ray instance runs on the machine, killing the cleaner's thread with a traceback)."""
    import ray

    for name in SILENCED_IN_WORKERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True):
    """Join ``address`` (or ``$RAY_ADDRESS``) when given, else start a local cluster bound to 127.0.0.1.

    The local cluster is kept on loopback so that no Ray process dials the machine's LAN address.
    Calling it when Ray is already initialised (inside a ``ray job submit`` driver, a test fixture) is a no-op.
    """
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = {"logging_level": logging.WARNING} if quiet else {}
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if quiet:  # Ray Data's per-operator progress bars would flood a terminal (they run inside workers too)
            os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
            kwargs["runtime_env"] = {"env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1"},
                                     "worker_process_setup_hook": "fas.ray_utils.quiet_ray_worker"}
        ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
        if quiet:
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = False
    return ray.get_runtime_context()


def storage_uri(storage_path: str) -> str:
    """Ray Train storage: a URI (s3://, gs://, ...) as is, a local folder made absolute (every node must see it)."""
    from pathlib import Path

    return storage_path if "://" in storage_path else str(Path(storage_path).resolve())
