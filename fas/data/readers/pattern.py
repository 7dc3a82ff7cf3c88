"""The declarative reader: a YAML spec of globs, one regular expression with named groups, and value maps.

A dataset whose copy differs from the layout a shipped reader expects (renamed folders, another release) is read by
editing YAML, not Python: ``fas manifest pattern ROOT --spec my_layout.yaml --out manifest.parquet``. The layouts in
``fas/data/specs/*.yaml`` are such specs, each registered as a reader of its file's name (``fas manifest rose_youtu
ROOT``); copy one to start from.

A spec::

    domain: rose_youtu                 # the manifest's domain (default: the spec's file name)
    files: ["**/*.mp4", "**/*.mov"]    # globs under ROOT (default: every image and video under ROOT)
    pattern: '(?P<split>train|test)/(?P<subject>\\d+)/(?P<attack>G|Ps)_(?P<take>\\d+)'
    values:                            # per group: raw text -> manifest value (unlisted text is kept)
      attack: {G: real, Ps: print_still}
    set: {device: webcam}              # constant columns (any field a group does not give)
    unmatched: error                   # or 'skip': files the pattern does not match are counted, not read

``pattern`` must match the whole path relative to ROOT, POSIX separators, without the file's extension. Groups named
after manifest fields (label, attack, subject, split, device, session, light) fill them; other named groups become
extra columns. ``label`` comes from its group or ``set`` (1/0, or real/live/genuine/bonafide vs
attack/spoof/fake); without one it is 1 exactly when ``attack`` is ``real``. A ``set`` value is the default where
its group did not take part in the match (an optional group); an attack without an ``attack`` value is ``attack``. Splits accept train/dev/test and the aliases devel/val/valid; ``split: hash`` in
``set`` splits by a stable hash of the path (train 90 %, dev 5 %, test 5 %) for datasets that ship no split.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path, PurePath
from typing import Any

import yaml

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import disambiguate, make_row, media_of, no_samples, reject_protocol, split_of, walk_media
from fas.data.readers.real_faces import hashed_split

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"
FIELDS = ("label", "attack", "subject", "split", "device", "session", "light")
LABELS = {"1": 1, "real": 1, "live": 1, "genuine": 1, "bonafide": 1, "bona_fide": 1,
          "0": 0, "attack": 0, "spoof": 0, "fake": 0, "imposter": 0}
RESERVED = {"sample_id", "path", "media", "domain"}  # columns the reader itself writes
SPEC_KEYS = {"domain", "files", "pattern", "values", "set", "unmatched", "about", "source"}


@dataclasses.dataclass(frozen=True)
class PatternSpec:
    domain: str
    pattern: re.Pattern
    files: tuple[str, ...] = ()
    values: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    constants: dict[str, Any] = dataclasses.field(default_factory=dict)
    unmatched: str = "error"
    where: str = "spec"


def load_spec(path: str | Path, domain: str | None = None) -> PatternSpec:
    """Read and check a spec file; every mistake is named with the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"pattern spec {path} does not exist; shipped specs: {sorted(shipped_specs())}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: a pattern spec is a mapping with keys {sorted(SPEC_KEYS)}")
    return parse_spec(raw, domain or raw.get("domain") or path.stem, where=str(path))


def parse_spec(raw: dict, domain: str, where: str = "spec") -> PatternSpec:
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise ManifestError(f"{where}: unknown keys {unknown}; a pattern spec has {sorted(SPEC_KEYS)}")
    if not raw.get("pattern"):
        raise ManifestError(f"{where}: 'pattern' (a regular expression with named groups) is required")
    try:
        pattern = re.compile(raw["pattern"])
    except re.error as exc:
        raise ManifestError(f"{where}: 'pattern' is not a valid regular expression: {exc}") from exc
    files = raw.get("files") or ()
    files = (files,) if isinstance(files, str) else tuple(files)
    values = {str(k): {str(raw_value): v for raw_value, v in (m or {}).items()} for k, m in (raw.get("values") or {}).items()}
    constants = dict(raw.get("set") or {})
    spec = PatternSpec(str(domain), pattern, files, values, constants, str(raw.get("unmatched", "error")), where)
    _check_spec(spec)
    return spec


def _check_spec(spec: PatternSpec) -> None:
    groups = set(spec.pattern.groupindex)
    if spec.unmatched not in ("error", "skip"):
        raise ManifestError(f"{spec.where}: 'unmatched' is 'error' or 'skip', got {spec.unmatched!r}")
    reserved = sorted((groups | set(spec.constants)) & RESERVED)
    if reserved:
        raise ManifestError(f"{spec.where}: {reserved} are written by the reader itself; rename those groups")
    strays = sorted(set(spec.values) - groups)
    if strays:
        raise ManifestError(f"{spec.where}: 'values' maps {strays}, which the pattern has no group for; its groups: "
                            f"{sorted(groups)}")
    given = groups | set(spec.constants)
    if not {"label", "attack"} & given:
        raise ManifestError(f"{spec.where}: give 'label' or 'attack' (a named group or a 'set' value)")
    for needed in ("subject", "split"):
        if needed not in given:
            raise ManifestError(f"{spec.where}: give {needed!r} (a named group, or 'set: {{{needed}: ...}}')")


def shipped_specs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SPECS_DIR.glob("*.yaml"))}


def _label(value: Any, path: Path, spec: PatternSpec) -> int:
    label = LABELS.get(str(value).strip().lower())
    if label is None:
        raise ManifestError(f"{path}: label {value!r} from {spec.where} is not one of {sorted(LABELS)}; map it under "
                            "'values: {label: ...}'")
    return label


def _fields(match: re.Match, path: Path, rel: PurePath, spec: PatternSpec) -> dict:
    groups = {g: spec.values.get(g, {}).get(text, text) for g, text in match.groupdict().items() if text is not None}
    fields = {**spec.constants, **groups}
    if "label" in fields:
        fields["label"] = _label(fields["label"], path, spec)
        if fields["label"] == 1:
            fields["attack"] = groups.get("attack", REAL)
        elif fields.get("attack", REAL) == REAL:
            fields["attack"] = "attack"
    else:
        fields["label"] = int(fields["attack"] == REAL)
    raw_split = str(fields["split"])
    fields["split"] = hashed_split(rel) if raw_split == "hash" else split_of(raw_split)
    if fields["split"] is None:
        raise ManifestError(f"{path}: split {raw_split!r} is not train/dev/test (or devel/val/valid); map it under "
                            f"'values: {{split: ...}}' in {spec.where}")
    return {k: v if k == "label" else str(v) for k, v in fields.items()}


def _candidates(root: Path, spec: PatternSpec) -> list[Path]:
    if not spec.files:
        return walk_media(root)
    found = {p for glob in spec.files for p in root.glob(glob) if p.is_file() and media_of(p)}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_with_spec(root: Path, spec: PatternSpec) -> tuple[list[dict], dict]:
    """Rows for every file the spec's globs find, and a summary: files read, skipped and why."""
    rows, skipped = [], collections.Counter()
    for path in _candidates(root, spec):
        rel = path.relative_to(root)
        match = spec.pattern.fullmatch(rel.with_suffix("").as_posix())
        if match is None:
            if spec.unmatched == "skip":
                skipped["unmatched"] += 1
                continue
            raise ManifestError(f"{path}: {rel.with_suffix('').as_posix()!r} does not match the pattern "
                                f"{spec.pattern.pattern!r} of {spec.where} (set 'unmatched: skip' to count such "
                                "files instead)")
        fields = _fields(match, path, rel, spec)
        known = {k: fields.pop(k) for k in ("label", "attack", "subject", "split")}
        rows.append(make_row(path, rel, domain=spec.domain, **known, **fields))
    if not rows:
        raise no_samples(root, f"files matching {list(spec.files) or 'any image or video'} whose relative path "
                               f"matches {spec.pattern.pattern!r} ({spec.where}); {dict(skipped)} skipped")
    return disambiguate(rows), {"read": len(rows), "skipped": dict(skipped)}


def read_pattern(root: str | Path, spec: str | Path | PatternSpec):
    """The manifest table of ``root`` read with ``spec`` (a file or a parsed spec), and what was read and skipped."""
    from fas.data.manifest import make_manifest

    spec = spec if isinstance(spec, PatternSpec) else load_spec(spec)
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"dataset root {root} is not a directory")
    rows, summary = read_with_spec(root.resolve(), spec)
    return make_manifest(rows, synthetic=(root / "SYNTHETIC.txt").exists()), summary


def _register_shipped() -> None:
    """Each shipped spec is a reader of its file's name; a protocol is refused (the spec has none)."""
    for name, path in shipped_specs().items():
        def reader(root: Path, protocol: str | None, name=name, path=path) -> list[dict]:
            reject_protocol(name, protocol)
            return read_with_spec(root, load_spec(path, domain=None))[0]

        register(name)(reader)


_register_shipped()
