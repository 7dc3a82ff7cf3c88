"""Every shipped YAML loads with the loader that reads it, and carries what it says it does: the method configs
the paper's defaults (or the CPU-sized ones), the data and quickstart configs their documented settings, the
search spaces a method, a base config and parameters that a trial can set. No file under fas/configs or
tune_spaces is left without a loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from fas.config import CONFIG_DIR, load_config
from fas.data.cache import PrepareConfig
from fas.methods import get_method, method_names
from fas.quickstart import QuickstartConfig
from fas.tune.sweep import SweepConfig, read_space, trial_overrides

ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = ROOT / "tune_spaces"
METHODS = ("clipc8", "pdle", "dfg", "oanet", "ssan", "safas", "memae", "deepsvdd")


def field(cfg, name: str):
    """A config field by its flat name: the method's own, else its engine section's (``epochs``, ``zero_stage``)."""
    return getattr(cfg, name) if hasattr(cfg, name) else getattr(cfg.engine, name)


def method_config_files() -> dict[str, tuple[str, str]]:
    """File name under fas/configs -> (method, 'paper' | 'tiny'), from the method records."""
    out = {}
    for name in METHODS:
        method = get_method(name)
        out[method.default_config] = (name, "paper")
        out[method.tiny_config] = (name, "tiny")
    return out


# what each file must carry (flat field names): the paper's settings, or the CPU-sized ones of the tiny configs
EXPECTED = {
    "clipc8.yaml": {"model": "ViT-L-14", "pretrained": "openai", "lr": 4e-6, "batch_size": 16, "epochs": 100,
                    "steps": None, "zero_stage": 2, "backend": "deepspeed", "weight_decay": 0.05,
                    "num_workers": 4, "use_gpu": True},
    "pdle.yaml": {"model": "pdle-resnet18", "pretrained": "imagenet", "k": 10, "alpha": 0.5, "batch_size": 32,
                  "epochs": 200, "steps": None, "lr": 1e-4, "weight_decay": 2e-4, "lr_gamma": 0.99,
                  "image_size": 256, "crop_size": 224, "backend": "ddp", "num_workers": 4, "use_gpu": True},
    "dfg.yaml": {"model": "dfg-sd15", "condition": "identity", "steps": 150_000, "epochs": None, "batch_size": 32,
                 "lr": 1e-5, "weight_decay": 0.01, "backend": "deepspeed", "zero_stage": 2, "num_workers": 4,
                 "use_gpu": True, "identity": "weights/arcface_w600k_r50.onnx"},
    "oanet.yaml": {"model": "oanet-vitb16", "pretrained": "in21k", "cue_pretrained": "imagenet", "mode": "oanet",
                   "steps": 4000, "epochs": None, "lr": 1e-4, "lambda_adv": 0.1, "lambda_triplet": 2.0,
                   "margin": 0.1, "backend": "ddp", "protocol": "O&C&I->M", "num_workers": 4, "use_gpu": True},
    "clipc8_tiny.yaml": {"model": "clipc8-tiny", "pretrained": None, "epochs": 10, "steps": None, "lr": 3e-4,
                         "backend": "deepspeed", "zero_stage": 2, "num_workers": 2, "use_gpu": False},
    "pdle_tiny.yaml": {"model": "pdle-tiny", "pretrained": None, "k": 10, "epochs": 8, "steps": None,
                       "image_size": 64, "crop_size": 56, "backend": "ddp", "num_workers": 2, "use_gpu": False},
    "dfg_tiny.yaml": {"model": "dfg-tiny", "steps": 100, "epochs": None, "vae_fit_steps": 100, "backend": "deepspeed",
                      "zero_stage": 2, "num_workers": 2, "use_gpu": False},
    "oanet_tiny.yaml": {"model": "oanet-tiny", "pretrained": None, "cue_pretrained": None, "steps": 200,
                        "epochs": None, "ddim_steps": 5, "backend": "ddp", "num_workers": 2, "use_gpu": False},
    "ssan.yaml": {"model": "ssan-resnet18", "pretrained": "imagenet", "steps": 120_000, "lr": 1e-4,
                  "weight_decay": 5e-5, "backend": "ddp", "num_workers": 1, "use_gpu": True, "extra_real": None},
    "ssan_tiny.yaml": {"model": "ssan-tiny", "pretrained": None, "steps": 40, "backend": "ddp", "num_workers": 2,
                       "use_gpu": False},
    "safas.yaml": {"model": "safas-resnet18", "pretrained": "imagenet", "steps": 2500, "lr": 0.005, "per_group": 16,
                   "align_start": 500, "backend": "ddp", "num_workers": 1, "use_gpu": True, "extra_real": None},
    "safas_tiny.yaml": {"model": "safas-tiny", "pretrained": None, "steps": 40, "backend": "ddp", "num_workers": 2,
                        "use_gpu": False},
    "memae.yaml": {"model": "memae", "entropy_weight": 0.0002, "lr": 1e-4, "weight_decay": 0.0, "batch_size": 32,
                   "steps": 100_000, "epochs": None, "backend": "deepspeed", "zero_stage": 2, "num_workers": 4,
                   "use_gpu": True},
    "memae_tiny.yaml": {"model": "memae-tiny", "steps": 60, "epochs": None, "backend": "deepspeed", "zero_stage": 2,
                        "num_workers": 2, "use_gpu": False},
    "deepsvdd.yaml": {"model": "deepsvdd", "steps": 95_000, "pretrain_steps": 65_000, "ae_lr": 1e-4, "lr": 1e-4,
                      "weight_decay": 0.5e-6, "batch_size": 50, "center_eps": 0.1, "backend": "deepspeed",
                      "zero_stage": 2, "num_workers": 4, "use_gpu": True},
    "deepsvdd_tiny.yaml": {"model": "deepsvdd-tiny", "steps": 60, "pretrain_steps": 40, "epochs": None,
                           "backend": "deepspeed", "zero_stage": 2, "num_workers": 2, "use_gpu": False},
}

# configs of a method other than its paper and tiny ones (baselines and ablations of `fas ablation`): file ->
# (method, paper | tiny, what it must carry)
VARIANTS = {
    "ssdg_r.yaml": ("oanet", "paper", {"model": "oanet-resnet18", "pretrained": "imagenet", "mode": "image_only",
                                       "optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4, "steps": 4000,
                                       "lambda_adv": 0.1, "lambda_triplet": 2.0, "extra_real": None}),
    "ssdg_r_tiny.yaml": ("oanet", "tiny", {"model": "oanet-resnet-tiny", "pretrained": None, "mode": "image_only",
                                           "optimizer": "sgd", "num_workers": 2, "use_gpu": False}),
    "clipc8_digits.yaml": ("clipc8", "paper", {"prompts": [str(i) for i in range(1, 9)], "lr": 4e-6,
                                               "epochs": 100, "model": "ViT-L-14", "class_weights": None}),
    "clipc8_weighted.yaml": ("clipc8", "paper", {"class_weights": "inverse_frequency", "lr": 4e-6, "epochs": 100}),
    "anoddpm.yaml": ("dfg", "paper", {"model": "anoddpm", "condition": "none", "identity": None, "steps": 150_000,
                                      "batch_size": 32, "zero_stage": 2, "num_workers": 4, "use_gpu": True}),
    "anoddpm_tiny.yaml": ("dfg", "tiny", {"model": "anoddpm-tiny", "condition": "none", "identity": None,
                                          "num_workers": 2, "use_gpu": False}),
}

SPACES = {  # file -> (method, base config, {param: its values})
    "clipc8_lr.yaml": ("clipc8", "clipc8.yaml", {"lr": [1e-6, 2e-6, 4e-6, 8e-6, 1.6e-5]}),
    "dfg_steps.yaml": ("oanet", "oanet.yaml", {"noise_step": [250, 500, 1000]}),
    "pdle_k.yaml": ("pdle", "pdle.yaml", {"k": list(range(2, 18))}),
    "pdle_k_tiny.yaml": ("pdle", "pdle_tiny.yaml", {"k": [2, 5, 10]}),
    "agfas_real_faces.yaml": ("oanet", "oanet.yaml", {"real_face_fraction": [0.25, 0.5, 1.0]}),
}


def loader_of(path: Path) -> str:
    """Which loader reads a shipped YAML; a file that maps to none fails the test that lists it."""
    if path.parent == SPACE_DIR:
        return "space"
    if path.name in method_config_files() or path.name in VARIANTS:
        return "method"
    return {"prepare_oulu_npu.yaml": "prepare", "quickstart.yaml": "quickstart"}.get(path.name, "none")


ALL_YAML = sorted(CONFIG_DIR.glob("*.yaml")) + sorted(SPACE_DIR.glob("*.yaml"))


def test_the_glob_sees_every_file_of_the_config_folders():
    """A config saved as .yml (or anything else) would escape the parametrized test below: there is none."""
    for folder in (CONFIG_DIR, SPACE_DIR):
        assert sorted(p for p in folder.iterdir() if p.is_file()) == sorted(folder.glob("*.yaml")), folder
    assert ALL_YAML


def test_every_method_record_names_configs_that_ship():
    # the package's own records (a test may have registered one from outside the package before this one runs)
    builtin = {n for n in method_names(with_aliases=False) if get_method(n).module.startswith("fas.methods.")}
    assert builtin == set(METHODS)
    files = method_config_files()
    assert len(files) == 2 * len(METHODS) and all((CONFIG_DIR / name).is_file() for name in files)
    assert set(EXPECTED) == set(files)


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_yaml_loads_with_its_loader(path):
    kind = loader_of(path)
    assert kind != "none", f"{path} maps to no known loader; add it to tests/test_configs.py"
    if kind == "method":
        name, size, *variant = VARIANTS.get(path.name) or method_config_files()[path.name]
        expected = variant[0] if variant else EXPECTED[path.name]
        method = get_method(name)
        cfg = method.load_config(path.name)
        assert type(cfg) is method.config
        assert {key: field(cfg, key) for key in expected} == expected
        assert field(cfg, "name") == path.stem  # each run writes to its own folder
        cfg.engine.check()  # exactly one of epochs / steps, a known backend: no error a user would meet at launch
        if size == "tiny":  # the CPU-sized configs train on the quickstart's generated data, on CPU workers
            assert cfg.cache.startswith("runs/quickstart/") and field(cfg, "storage_path") == "runs/quickstart"
    elif kind == "prepare":
        cfg = load_config(PrepareConfig, path)
        assert (cfg.frames, cfg.detector, cfg.margin, cfg.size, cfg.no_face, cfg.image_format, cfg.face_workers) == \
            (10, "haar", 0.2, 256, "drop", "jpg", 2)
        assert (cfg.manifest, cfg.out) == ("manifests/oulu_p1.parquet", "cache/oulu_p1")
    elif kind == "quickstart":
        cfg = load_config(QuickstartConfig, path)
        assert cfg == QuickstartConfig(method="clipc8", out="runs/quickstart", seed=0, size="quickstart", frames=10,
                                       detector="haar", image_size=128)
        assert get_method(cfg.method).name == "clipc8"
    else:
        method_name, base, params = SPACES[path.name]
        space = read_space(path)  # what jobs/sweep.py and fas.tune.sweep.run_sweep read
        assert (space["method"], space["base_config"], space["metric"], space["mode"]) == \
            (method_name, base, "val_auc", "max")
        assert {k: spec["grid"] for k, spec in space["params"].items()} == params
        method = get_method(space["method"])
        overrides = trial_overrides(space, SweepConfig(space=str(path)))
        assert overrides == space.get("fixed", {})
        upstream = space.get("upstream") or {}
        for name, values in params.items():  # each trial's config: base + fixed + its parameter value
            for value in values:
                if name in upstream.get("params", []):  # configures the run trained first in each trial
                    first = get_method(upstream["method"])
                    cfg = first.load_config(upstream["base_config"], {**upstream.get("fixed", {}), name: value})
                    assert type(cfg) is first.config and field(cfg, name) == value
                    continue
                cfg = method.load_config(space["base_config"], {**overrides, name: value})
                assert type(cfg) is method.config and field(cfg, name) == value
                assert all(field(cfg, k) == v for k, v in overrides.items())
