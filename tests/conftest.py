"""Shared fixtures: an embedded Ray cluster on loopback, tiny media files, an offline Hugging Face cache of its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Before any library reads them (huggingface_hub fixes its cache path at import): the tests use a hub cache of
# their own, empty until `paper_stores` fabricates the paper-size repositories in it, never the user's.
HUB_ROOT = Path(tempfile.mkdtemp(prefix="fas-tests-hub-"))
os.environ["HF_HUB_CACHE"] = str(HUB_ROOT / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(HUB_ROOT, ignore_errors=True)


def require_free_disk(path: Path, gib: float, what: str) -> None:
    """Skip, saying why, where the disk cannot hold what a test writes (free space differs between CI machines:
    a full disk fails the test halfway through a write and every test after it)."""
    free = shutil.disk_usage(path).free / 2**30
    if free < gib:
        pytest.skip(f"{what} needs {gib:.1f} GiB free under {path}; {free:.1f} GiB is free")


@pytest.fixture(scope="session")
def paper_stores():
    """Every pretrained reference of fas/configs/*.yaml, fabricated once (random tensors of the real shapes) in
    the tests' hub cache, plus the ArcFace ONNX at weights/arcface_w600k_r50.onnx under ``root``."""
    from fas.models import stores

    if not (HUB_ROOT / "hub").exists():
        require_free_disk(HUB_ROOT, 6.5, "the fabricated paper-size weight stores (5.7 GiB)")
    cache = os.environ["HF_HUB_CACHE"]
    stores.openai_vit_l14(cache)
    stores.resnet18_in1k(cache)
    stores.vit_b16_in21k(cache)
    stores.sd15(cache)
    onnx = HUB_ROOT / "weights" / "arcface_w600k_r50.onnx"
    net = stores.arcface_onnx(onnx)
    return {"cache": Path(cache), "root": HUB_ROOT, "onnx": onnx, "arcface": net}


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty hub cache for this test, whatever `paper_stores` put in the session's."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    return tmp_path / "empty_hub"


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray cluster bound to 127.0.0.1 for the whole session."""
    import ray

    from fas.ray_utils import loopback_env, loopback_node_ip

    if not ray.is_initialized():  # on loopback as init_ray keeps it: node IP and the gloo groups' interface
        with loopback_node_ip():
            ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": loopback_env()})
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
def dfg_killed(class8_cache, tmp_path_factory):
    """A tiny generator trained for 12 steps by 2 DeepSpeed workers (stand-in VAE fitted first), one of which is
    SIGKILLed in the middle of step 6 (the fault drill ``worker_killed_dfg``): (config, run, drill result)."""
    from fas.config import from_dict
    from fas.drills.fixtures import DFG_TINY
    from fas.drills.training import kill_mid_step
    from fas.methods.dfg.config import DFGConfig

    storage = tmp_path_factory.mktemp("dfg_runs")
    cfg = from_dict(DFGConfig, dict(cache=str(class8_cache / "cache"), storage_path=str(storage), name="dfg",
                                    **DFG_TINY))
    result, drill = kill_mid_step(cfg, kill_at=6)
    return cfg, result, drill


@pytest.fixture(scope="session")
def dfg_run(dfg_killed):
    """The tiny generator run (it survived a killed worker): (config, run)."""
    return dfg_killed[:2]


@pytest.fixture(scope="session")
def cue_cache(dfg_run, class8_cache, tmp_path_factory):
    """The CLASS-8 frames with the tiny generator's cues (a 5-step DDIM grid): what OA-Net trains on."""
    from fas.cues import CueConfig, make_cues

    cfg, _ = dfg_run
    out = tmp_path_factory.mktemp("cues") / "cache"
    make_cues(CueConfig(generator=str(Path(cfg.engine.storage_path) / "dfg"), cache=str(class8_cache / "cache"),
                        out=str(out), ddim_steps=5, batch_size=16, rows_per_file=128, cpus_per_actor=0.5))
    return out


def chromium_driver(*arguments: str):
    """A headless Debian chromium driven by Selenium (a fixture's body: ``yield from chromium_driver(...)``). The
    browser is a requirement, not an option: without chromium and chromedriver the tests fail (.ci/run installs them
    with apt), they do not skip."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("chromium and chromedriver are needed: apt-get install chromium chromium-driver (as .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *arguments):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield driver
    driver.quit()
