"""The engine's speed pieces: worker threads, memory switches, the analytic FLOP count and MFU, decoding ahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_worker_trains_with_as_many_threads_as_cpus_it_holds(restore_threads):
    from fas.engine.speed import set_worker_threads

    assert set_worker_threads(2.0) == 2 and torch.get_num_threads() == 2
    assert set_worker_threads(0.5) == 1 and torch.get_num_threads() == 1  # a CPU fraction still trains


def test_flops_are_counted_forward_and_backward_and_mfu_is_their_rate_over_the_peak():
    from fas.engine.speed import counted, mfu

    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)
    out, forward = counted(lambda: layer(x))
    assert forward == 2 * 8 * 64 * 32 and out.shape == (8, 32)
    _, both = counted(lambda: layer(x).sum().backward())
    assert both == 2 * forward  # the weight gradient (x is no leaf: no input gradient)
    assert mfu(1e12, 10.0, peak=100.0) == pytest.approx(0.1)
    assert mfu(1e12, 10.0, peak=None) is None and mfu(0.0, 10.0, peak=100.0) is None


def test_the_peak_comes_from_the_config_or_the_gpu_name_and_a_cpu_has_none():
    from fas.engine.speed import PEAK_TFLOPS, peak_tflops

    assert peak_tflops(torch.device("cpu"), None) is None
    assert peak_tflops(torch.device("cpu"), "fp16", override=42.0) == 42.0
    assert PEAK_TFLOPS["T4"] == (65.0, 8.1)  # fp16 tensor cores, fp32: what the papers' GPUs give


def test_gradient_checkpointing_switches_on_in_clip_and_recomputes_in_backward():
    from fas.engine.speed import apply_memory_options, counted
    from fas.methods.clipc8.model import create_clipc8

    torch.manual_seed(0)
    model, meta = create_clipc8("clipc8-tiny", None)
    x = torch.randn(2, 3, meta["image_size"], meta["image_size"])
    _, plain = counted(lambda: model(x).sum().backward())
    apply_memory_options(model, grad_checkpointing=True, channels_last=False)
    assert model.visual.transformer.grad_checkpointing
    _, checkpointed = counted(lambda: model(x).sum().backward())
    assert checkpointed > plain  # the blocks' forward runs again in backward


def test_a_module_without_a_checkpointing_switch_is_refused_with_the_fix():
    from fas.engine.speed import apply_memory_options

    with pytest.raises(ValueError, match="no gradient-checkpointing switch.*set grad_checkpointing false"):
        apply_memory_options(torch.nn.Linear(2, 2), grad_checkpointing=True, channels_last=False)
    conv = torch.nn.Conv2d(3, 4, 3)
    apply_memory_options(conv, grad_checkpointing=False, channels_last=True)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_clipc8_decodes_ahead_of_its_step_what_its_predictor_would_read(class8_cache):
    from fas.data.cache import read_cache_table
    from fas.methods.base import WorkerContext
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.task import CLIPC8Task, category_index

    table = read_cache_table(class8_cache / "cache", columns=["image", "attack"]).slice(0, 4).to_pydict()
    cfg = CLIPC8Config(model="clipc8-tiny", pretrained=None)
    ctx = WorkerContext(rank=0, world_size=1, device=torch.device("cpu"), dtype=torch.float,
                        rng=np.random.default_rng(0), open_stream=lambda name, size: iter(()))
    task = CLIPC8Task(cfg, ctx)
    batch = task.prepare_batch({"image": np.array(table["image"], dtype=object),
                                "attack": np.array(table["attack"], dtype=object)})
    assert torch.equal(batch["image"], task.transform(table["image"]))
    assert torch.equal(batch["category"], category_index(table["attack"], cfg))


def test_prefetch_depth_is_checked_before_any_worker_starts():
    from fas.engine.config import EngineConfig

    with pytest.raises(ValueError, match="prefetch_batches must be >= 0"):
        EngineConfig(epochs=1, prefetch_batches=-1).check()


def test_one_worker_runs_zero_stages_one_and_two_as_stage_zero():
    """ZeRO-1/2 partition across ranks: one rank runs stage 0 (no flat copies); stage 3 and many ranks as asked."""
    from fas.engine.backends import effective_zero_stage

    assert [effective_zero_stage(stage, 1) for stage in (0, 1, 2, 3)] == [0, 0, 0, 3]
    assert [effective_zero_stage(stage, 2) for stage in (0, 1, 2, 3)] == [0, 1, 2, 3]
