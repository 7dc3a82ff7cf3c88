"""Network drill: nothing of an embedded run listens or connects beyond loopback.

A tiny 2-worker Ray Train run (gloo process group, DDP steps) runs in a child process on the embedded cluster that
``fas.ray_utils.init_ray`` starts; while it trains, the TCP sockets of that process and of every process under it
(GCS, raylet, workers, the Train workers) are listed. A socket bound or connected to an address outside
127.0.0.0/8 (or ::1), or a listener on a wildcard address (0.0.0.0, ::), is reachable from the network: the drill
fails naming its process and address.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

from fas.drills import DrillResult

TRAIN_SCRIPT = "from fas.drills.network import tiny_training; tiny_training({seconds!r}, {storage!r})"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback; a wildcard (0.0.0.0, ::) is not: it listens on every interface."""
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def process_tree(root: int) -> list:
    """``root`` and every process under it (an embedded Ray's GCS, raylet and workers are the driver's children)."""
    import psutil

    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tcp_sockets(processes: list) -> list[dict]:
    """The TCP sockets of ``processes``: process name and pid, local and remote address, state."""
    import psutil

    out = []
    for proc in processes:
        try:
            name, conns = proc.name(), proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for c in conns:
            out.append({"pid": proc.pid, "process": name, "local": f"{c.laddr.ip}:{c.laddr.port}",
                        "remote": f"{c.raddr.ip}:{c.raddr.port}" if c.raddr else None, "status": c.status,
                        "beyond_loopback": not is_loopback(c.laddr.ip)
                        or bool(c.raddr and not is_loopback(c.raddr.ip))})
    return out


def tiny_training(seconds: float, storage: str) -> None:
    """A 2-worker DDP run on the embedded cluster that keeps its gloo process group busy for ``seconds``. A gloo
    group that stalls (seen once in ~10 runs, on a machine busy installing packages: rank 0 waited in DDP's first
    broadcast for 4 minutes) times out after a minute and the worker group is started again, as a user's run
    with ``max_failures`` would; the sockets of both attempts are listed."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from fas.ray_utils import init_ray

    init_ray(num_cpus=2)
    trainer = TorchTrainer(_train_loop, train_loop_config={"seconds": seconds, "storage": storage},
                           scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                           torch_config=TorchConfig(timeout_s=60),
                           run_config=ray.train.RunConfig(name="loopback", storage_path=storage,
                                                          failure_config=ray.train.FailureConfig(max_failures=1)))
    trainer.fit()  # raises when the run failed
    print("trained", flush=True)


def _train_loop(config: dict) -> None:
    import torch
    import torch.distributed as dist

    import ray.train
    from ray.train.torch import prepare_model

    if dist.get_rank() == 0:  # the port of torch's rendezvous store, which listens on every interface (per attempt)
        with (Path(config["storage"]) / "master_port").open("a") as ports:
            ports.write(os.environ["MASTER_PORT"] + "\n")
    model = prepare_model(torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps, end = 0, time.monotonic() + config["seconds"]
    while time.monotonic() < end:
        optimizer.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()  # DDP all-reduces the gradients over gloo
        optimizer.step()
        steps += 1
        time.sleep(0.05)
    dist.barrier()
    ray.train.report({"steps": steps})


def watch(proc: subprocess.Popen, timeout_s: float, interval_s: float = 0.5) -> list[dict]:
    """Every distinct TCP socket of ``proc``'s tree seen until it exits (or ``timeout_s`` passed)."""
    seen, deadline = {}, time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        for s in tcp_sockets(process_tree(proc.pid)):
            seen.setdefault((s["pid"], s["local"], s["remote"], s["status"]), s)
        time.sleep(interval_s)
    return list(seen.values())


def loopback_only(workdir: Path, seconds: float = 12.0, timeout_s: float = 240.0) -> DrillResult:
    """Train on an embedded cluster and list its sockets; passes when none is beyond loopback and the run ended."""
    script = TRAIN_SCRIPT.format(seconds=seconds, storage=str(Path(workdir).resolve() / "runs"))
    log = Path(workdir) / "training.log"  # a file, not a pipe: nobody reads a pipe while the sockets are listed
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=sink, stderr=subprocess.STDOUT,
                                env=_clean_env())
        try:
            sockets = watch(proc, timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    out = log.read_text()
    stores = torch_store_ports(workdir)
    outside = [s for s in sockets if s["beyond_loopback"] and not is_torch_store(s, stores)]
    unfixable = [s for s in sockets if s["beyond_loopback"] and is_torch_store(s, stores)]
    train_pids = {s["pid"] for s in sockets if s["process"].startswith("ray::RayTrainWorker")}
    gloo = [s for s in sockets if s["pid"] in train_pids and s["status"] == "ESTABLISHED"]
    figures = {"sockets": len(sockets), "beyond_loopback": outside, "torch_store_listeners": unfixable,
               "attempts": len(stores), "train_worker_connections": len(gloo),
               "processes": len({s["pid"] for s in sockets}), "returncode": proc.returncode,
               "trained": "trained" in out.splitlines()}
    passed = proc.returncode == 0 and figures["trained"] and not outside and len(gloo) > 0
    listing = ", ".join(f"{s['process']} {s['local']}->{s['remote'] or 'LISTEN'}" for s in outside[:5])
    outcome = (f"{len(sockets)} TCP sockets in {figures['processes']} processes, "
               f"{len(outside)} beyond loopback" + (f" ({listing})" if outside else "")
               + (f"; torch's rendezvous store listens on every interface (port {sorted(stores)})" if unfixable else "")
               + (f"; the worker group was started {len(stores)} times" if len(stores) > 1 else "")
               + ("" if figures["trained"] else f"; training failed: {out[-400:]}"))
    return DrillResult("loopback_only", "2-worker gloo training on the embedded cluster; sockets listed",
                       outcome, "none", "none", None, passed, figures)


def torch_store_ports(workdir: Path) -> set[int]:
    """The MASTER_PORT of each attempt's rank 0, as the training wrote them."""
    path = Path(workdir).resolve() / "runs" / "master_port"
    return {int(line) for line in path.read_text().split()} if path.is_file() else set()


def is_torch_store(sock: dict, ports: set[int]) -> bool:
    """Rank 0's TCPStore (MASTER_PORT): torch binds it to every interface and has no option to bind it to one (torch
    2.x), so it is reported apart; MASTER_ADDR, which its clients dial, is 127.0.0.1."""
    return (sock["status"] == "LISTEN" and int(sock["local"].rsplit(":", 1)[1]) in ports
            and sock["process"].startswith("ray::"))


def _clean_env() -> dict:
    """This environment as a user's shell has it: no cluster address (the child must start the embedded cluster,
    not join one) and no RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (CI exports it; ``init_ray`` must keep loopback alone)."""
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
