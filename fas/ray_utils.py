"""Where a job finds its Ray cluster: an existing one (``--address`` / ``RAY_ADDRESS``) or an embedded local one."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

# Ray Train's placement-group cleaner asks the State API, served by the dashboard, whether the controller lives;
# an embedded cluster starts no dashboard, so it logs one warning a second for the whole run (and keeps working:
# the controller cleans up its own placement group when it ends normally).
SILENCED_IN_WORKERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)
# Ray Data logs three INFO lines per execution ("Starting execution of Dataset ...", its plan, "finished"): with a
# re-read every epoch and a validation pass per checkpoint that is a screen of repeats per run; warnings stay.
QUIET_TO_WARNING = ("ray.data",)
# ... and Ray Data configures its logger again in every process that runs a dataset (split coordinators): its
# own config file, with the console at WARNING, reaches them through the environment they inherit.
RAY_DATA_LOGGING = Path(__file__).parent / "ray_data_logging.yaml"


def quiet_ray_worker() -> None:
    """``worker_process_setup_hook`` of the embedded cluster: silence the loggers of ``SILENCED_IN_WORKERS``, and
    name this cluster to the State API client (which otherwise looks the cluster up by process list, and fails
    when a second Ray instance runs on the machine, killing the cleaner's thread with a traceback)."""
    import ray

    for name in SILENCED_IN_WORKERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet_ray_data()
    os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)


def quiet_ray_data() -> None:
    for name in QUIET_TO_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_train_worker() -> None:
    """In a Ray Train worker, on any cluster: no INFO lines per report ("Reporting training result N:
    TrainingReport(...)" with every metric, "Checkpoint successfully created"; the engine prints its own line) and
    no Ray Data execution lines."""
    from ray.train.v2._internal.execution import context, storage

    logging.getLogger(context.__file__).setLevel(logging.WARNING)  # that module's logger is named by its path
    logging.getLogger(storage.__name__).setLevel(logging.WARNING)  # "Checkpoint successfully created at: ..."
    quiet_ray_data()
    # DeepSpeed's ZeRO calls torch's renamed collective; torch warns on every epoch's first call (DeepSpeed's to fix)
    warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.* is deprecated", category=FutureWarning)


def say(line: str) -> None:
    """One line to the worker's stdout. Ray Train patches ``print`` in its workers to log and also tee each line,
    so a printed line reaches the driver twice."""
    import sys

    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


def actor_pool(min_size: int = 1, max_size: int | None = None):
    """Ray Data's actor pool with the model call on the actor's own thread.

    By default Ray Data runs an actor's callable in a helper thread, one call at a time; torch's intra-op threads
    scale worse from there (measured: the cue job at 0.65x its bare loop, 0.80x on the actor's thread). With one
    call in flight per actor (Ray Data's default) the call is still never concurrent."""
    import ray.data

    return ray.data.ActorPoolStrategy(min_size=min_size, max_size=max_size or min_size,
                                      enable_true_multi_threading=True)


def loopback_env() -> dict[str, str]:
    """Environment of every process of the embedded cluster, Ray Train's workers included: gloo picks its interface
    by resolving the host name (the LAN address where /etc/hosts says so) unless told; Ray Train's MASTER_ADDR is
    the node IP, 127.0.0.1 once ``loopback_node_ip`` kept it."""
    import psutil

    names = [name for name, addrs in psutil.net_if_addrs().items() if any(a.address == "127.0.0.1" for a in addrs)]
    return {"GLOO_SOCKET_IFNAME": names[0]} if names else {}


@contextmanager
def loopback_node_ip():
    """Keep ``_node_ip_address="127.0.0.1"`` while Ray starts a local cluster. Ray swaps a loopback node IP for the
    machine's LAN address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which it reads once, when ``ray`` is first
    imported (usually before ``init_ray`` runs): without this the GCS, raylet and every worker talk over eth0.
    Only for the start: a later ``ray.init(address=...)`` in this process must find its real address again."""
    from ray._private import ray_constants  # no public switch for this in Ray 2.60

    saved = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the processes the driver starts read it too
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


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
        if quiet:  # workers' Ray Data progress bars (split coordinators, validation) would interleave in the driver's
            os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
            kwargs["runtime_env"] = {"env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1"},
                                     "worker_process_setup_hook": "fas.ray_utils.quiet_ray_worker"}
        kwargs.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(loopback_env())
        with loopback_node_ip():
            ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
        if quiet:
            show_driver_progress()
            quiet_ray_data()
    return ray.get_runtime_context()


def show_driver_progress() -> None:
    """Ray Data's progress bars for the driver's own pipelines in a terminal; none in a log (no TTY), where the
    jobs print plain progress lines instead."""
    import ray.data

    from fas.progress import interactive

    ray.data.DataContext.get_current().enable_progress_bars = interactive()


def storage_uri(storage_path: str) -> str:
    """Ray Train storage: a URI (s3://, gs://, ...) as is, a local folder made absolute (every node must see it)."""
    from pathlib import Path

    return storage_path if "://" in storage_path else str(Path(storage_path).resolve())
