"""``fas label retrain CLASS8_ROOT --init-from RUN --out DIR``: the grown tree's next model, and whether it helped.

The tree (as the CLASS-8 reader reads it) becomes a manifest and a frame cache named after its version
(``DIR/cache-<version>``: whole frames, as CLIPC8 trains on them); CLIPC8 is fine-tuned from the previous model
(``engine.init_from``) with the cross-entropy weighted by inverse class frequency (``class_weights``, unless the
config sets it: CLASS-8's categories are uneven, and review adds to them unevenly); the new model and the previous
one are then compared on the frozen held-out set (``fas.label.compare``) into ``DIR/compare``.
"""

from __future__ import annotations

from pathlib import Path


def prepare_tree(root: Path, out: Path, size: int) -> tuple[str, Path]:
    """(version, frame cache) of the tree as it is now; an existing cache of the same version is reused."""
    from fas.data.cache import PrepareConfig, prepare
    from fas.data.manifest import write_manifest
    from fas.data.readers import read_dataset
    from fas.label.dataset import tree_manifest, version_of

    version = version_of(tree_manifest(root))
    cache = out / f"cache-{version}"
    if not (cache / "cache.json").is_file():
        manifest = write_manifest(read_dataset("class8", root), out / f"manifest-{version}.parquet")
        prepare(PrepareConfig(manifest=str(manifest), out=str(cache), frames=1, detector="none", size=size,
                              no_face="keep"))
    return version, cache


def retrain(root: str | Path, cfg, out: str | Path, size: int = 256) -> dict:
    """Train ``cfg`` (a CLIPC8 config with ``engine.init_from`` set) on the tree; returns the comparison."""
    from fas.config import replace
    from fas.engine import train
    from fas.engine.loop import init_folder
    from fas.label.compare import compare_models
    from fas.label.dataset import check_heldout, freeze

    root, out = Path(root), Path(out)
    if not cfg.engine.init_from:
        raise ValueError("fas label retrain needs --init-from RUN: the previous model's run or model folder")
    previous = init_folder(cfg.engine.init_from, "clipc8")
    freeze(root)
    check_heldout(root)
    out.mkdir(parents=True, exist_ok=True)
    version, cache = prepare_tree(root, out, size)
    cfg = replace(cfg, cache=str(cache), class_weights=cfg.class_weights or "inverse_frequency",
                  init_from=str(previous))
    new = Path(train(cfg).checkpoint.path)
    result = compare_models(str(previous), str(new), str(root), out=str(out / "compare"))
    return {**result, "version": version, "cache": str(cache)}
