"""Shared fixtures: an embedded Ray cluster on loopback, tiny media files, offline Hugging Face."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray cluster bound to 127.0.0.1 for the whole session."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def write_video(path: Path, num_frames: int = 12, size: int = 64, seed: int = 0, codec: str = "mpeg4") -> Path:
    """A small decodable video whose frame i has mean brightness that grows with i (frames are identifiable)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            base = np.full((size, size, 3), 10 + i * (200 // max(1, num_frames - 1)), np.uint8)
            img = np.clip(base.astype(int) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_truncated(path: Path, good: Path, keep: float = 0.3) -> Path:
    """A copy of ``good`` cut to ``keep`` of its bytes: a truncated download."""
    data = good.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture
def astronaut_rgb():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def class8_cache(tmp_path_factory, ray_local):
    """The tiny generated CLASS-8 data (3 camera domains) as a whole-frame 112 px cache; shared by the methods."""
    from fas.data.cache import PrepareConfig, prepare
    from fas.data.manifest import write_manifest
    from fas.data.readers import read_dataset
    from fas.data.synth import generate

    root = tmp_path_factory.mktemp("class8")
    generate(root / "data", seed=0, size="tiny")
    manifest = write_manifest(read_dataset("class8", root / "data" / "class8"), root / "class8.parquet")
    prepare(PrepareConfig(manifest=str(manifest), out=str(root / "cache"), detector="none", size=112,
                          face_workers=1, progress=False))
    return root


@pytest.fixture(scope="session")
def dfg_run(class8_cache, tmp_path_factory):
    """A tiny generator trained for 12 steps by 2 DeepSpeed workers (stand-in VAE fitted first)."""
    from fas.config import from_dict
    from fas.engine import train
    from fas.methods.dfg.config import DFGConfig

    storage = tmp_path_factory.mktemp("dfg_runs")
    cfg = from_dict(DFGConfig, dict(cache=str(class8_cache / "cache"), storage_path=str(storage), name="dfg",
                                    model="dfg-tiny", steps=12, batch_size=8, lr=1e-3, checkpoint_every=4,
                                    log_every=4, vae_fit_steps=20, vae_fit_images=64, engine="deepspeed",
                                    zero_stage=2, num_workers=2, use_gpu=False, cpus_per_worker=0.5))
    return cfg, train(cfg)

