"""What the engine does for speed, apart from the loop: worker threads from the worker's CPUs, memory options
(gradient checkpointing, channels_last), an analytic FLOP count of one step (torch's ``FlopCounterMode``) and
the device's peak, from which the loop reports model FLOPs utilisation (MFU).
"""

from __future__ import annotations

import torch

# Dense peak TFLOP/s per GPU by name fragment: (fp16/bf16 tensor cores, fp32). Vendor data sheets (SXM parts);
# T4 has no fast bf16. Unknown devices (and CPUs) report no MFU unless the config gives ``peak_tflops``.
PEAK_TFLOPS = {
    "H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5), "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3), "A10G": (70.0, 31.2), "A10": (125.0, 31.2), "V100": (125.0, 15.7), "T4": (65.0, 8.1),
}


def set_worker_threads(cpus: float) -> int:
    """Torch intra-op threads = the CPUs the worker holds (at least 1). Ray starts workers with one thread, so a
    worker given 2 CPUs trained on one of them."""
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    return threads


def apply_memory_options(module: torch.nn.Module, *, grad_checkpointing: bool, channels_last: bool) -> None:
    """Switch on gradient checkpointing (timm/open_clip ``set_grad_checkpointing``, diffusers
    ``enable_gradient_checkpointing``) and NHWC weights; a module without a checkpointing switch is an error."""
    if grad_checkpointing:
        if hasattr(module, "set_grad_checkpointing"):
            module.set_grad_checkpointing(True)
        elif hasattr(module, "enable_gradient_checkpointing"):
            module.enable_gradient_checkpointing()
        else:
            raise ValueError(f"{type(module).__name__} has no gradient-checkpointing switch "
                             "(set_grad_checkpointing or enable_gradient_checkpointing); set grad_checkpointing false")
    if channels_last:
        module.to(memory_format=torch.channels_last)


def counted(fn):
    """``(fn(), FLOPs)``: every matmul/conv FLOP that ``fn`` runs, forward and backward (analytic, not timed)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, int(counter.get_total_flops())


def peak_tflops(device: torch.device, half: str | None, override: float | None = None) -> float | None:
    """The device's dense peak in TFLOP/s for the precision trained in, or None when unknown (CPU, new GPUs)."""
    if override:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, (half_peak, fp32_peak) in PEAK_TFLOPS.items():
        if fragment in name:
            return half_peak if half else fp32_peak
    return None


def mfu(flops_per_row: float, rows_per_s_per_device: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s per device over the device's peak."""
    if not peak or not flops_per_row:
        return None
    return flops_per_row * rows_per_s_per_device / (peak * 1e12)
