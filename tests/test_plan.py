"""``fas plan``: ZeRO's per-GPU accounting, activations measured on the CPU, and the papers' configs on the
cluster that ``cluster.yaml`` describes."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fas.methods import get_method
from fas.plan import Probe, measure_step, model_state_bytes, plan_run, probe, run_plan, source_domains

PROBE = Probe(trainable=1000, frozen=100, batch_field="batch_size", activations=(50.0, 10.0), flops=(0.0, 1e12))


def test_model_states_follow_zeros_accounting():
    # mixed precision: 2 bytes of weights, 2 of gradients, 12 of optimizer state per trainable parameter
    assert model_state_bytes(PROBE, "deepspeed", 2, half=True, world=4) == {
        "weights": 2200.0, "gradients": 500.0, "optimizer": 3000.0}  # frozen weights are never partitioned
    assert model_state_bytes(PROBE, "deepspeed", 1, half=True, world=4) == {
        "weights": 2200.0, "gradients": 2000.0, "optimizer": 3000.0}
    assert model_state_bytes(PROBE, "deepspeed", 3, half=True, world=4) == {
        "weights": 700.0, "gradients": 500.0, "optimizer": 3000.0}
    # one rank partitions nothing: the engine runs ZeRO-1/2 as stage 0
    assert model_state_bytes(PROBE, "deepspeed", 2, half=True, world=1) == {
        "weights": 2200.0, "gradients": 2000.0, "optimizer": 12000.0}
    assert model_state_bytes(PROBE, "deepspeed", 2, half=False, world=2) == {
        "weights": 4400.0, "gradients": 2000.0, "optimizer": 6000.0}
    assert model_state_bytes(PROBE, "ddp", 0, half=False, world=4) == {
        "weights": 4400.0, "gradients": 8000.0, "optimizer": 8000.0}


def test_measured_activations_and_flops_scale_with_the_batch():
    method = get_method("pdle")
    cfg = method.load_config("pdle_tiny.yaml")
    found = probe(method, cfg)
    assert found.trainable == sum(p.numel() for p in method_model_parameters(method, cfg))
    domains = source_domains(cfg)
    saved, flops, _, _ = measure_step(method, dataclasses.replace(cfg, domains=domains), 4, domains)
    assert saved == pytest.approx(found.activations[0] + 4 * found.activations[1], rel=0.02)
    assert flops == pytest.approx(found.flops[0] + 4 * found.flops[1], rel=1e-6)
    assert found.activations[1] > 0 and found.flops[1] > 0


def method_model_parameters(method, cfg):
    from fas.methods.pdle.model import create_pdle

    return [p for p in create_pdle(cfg.model, None, cfg.k + 1, 3).parameters() if p.requires_grad]


def test_a_plan_that_does_not_fit_exits_non_zero():
    lines = []
    assert run_plan("pdle_tiny.yaml", gpus=2, gpu_memory="0.5GiB", out=lines.append) == 1
    assert "DOES NOT FIT" in lines[0] and "2 x T4 (0.5 GiB)" in lines[0]
    plan = plan_run(get_method("pdle"), get_method("pdle").load_config("pdle_tiny.yaml"), PROBE, gpus=2,
                    gpu="A100", rows=1000)
    # 8 epochs of 1000 rows at batch 32 on 2 GPUs = 8 x 16 steps of 32 x 1e12 FLOP, A100 fp32 (DDP) at 30 % MFU
    assert (plan.batch, plan.steps) == (32, 128)
    assert plan.hours == pytest.approx(128 * 32e12 / (19.5e12 * 0.3) / 3600)


@pytest.mark.paper
def test_the_paper_configs_fit_the_clusters_t4_nodes():
    """cluster.yaml's GPU workers (4 x T4 each) hold every paper config at its paper batch, one rank per GPU."""
    from pathlib import Path

    cluster = yaml.safe_load((Path(__file__).parent.parent / "cluster.yaml").read_text())
    node = cluster["available_node_types"]["gpu_worker"]
    gpus_per_node, gpu = node["resources"]["GPU"], next(k for k in node["resources"] if k not in ("CPU", "GPU"))
    for name in ("clipc8", "pdle", "oanet", "dfg"):
        method = get_method(name)
        cfg = method.load_config()
        assert cfg.engine.use_gpu and cfg.engine.num_workers <= gpus_per_node * node["max_workers"]
        plan = plan_run(method, cfg, probe(method, cfg), gpus=cfg.engine.num_workers, gpu=gpu)
        assert plan.fits, (name, plan.memory_gib)
        assert plan.memory_gib["total"] <= 15.0


def test_a_star_row_plans_with_its_extra_real_faces():
    """SSDG-R* reads the extra real-face stream: the plan's measured step feeds it (it has no cache to read) and
    measures the same balanced batch as SSDG-R (extra faces replace half of the bona fide rows), with one more domain
    for the discriminator."""
    method = get_method("oanet")
    cfg = method.load_config("ssdg_r_tiny.yaml")
    domains = source_domains(cfg)
    plain = measure_step(method, dataclasses.replace(cfg, domains=domains), 2, domains)
    star = measure_step(method, dataclasses.replace(cfg, domains=domains, extra_real="extra"), 2, domains)
    assert star[2] - plain[2] == 512 + 1  # the discriminator's one more domain: a row of its last layer
    assert star[1] > plain[1]
