"""The one manifest schema every reader writes and every job, method and evaluator reads.

A manifest row is one sample (an image, or a whole video before frame sampling). Conventions that hold
project-wide: ``label`` is 1 for bona fide (real) and 0 for an attack; ``attack`` is the attack type / PAI
species and ``"real"`` for bona fide; liveness scores everywhere mean "higher = more likely real".
Extra columns are allowed (the schema is open): readers and later stages may add their own.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

REAL = "real"
MEDIA_TYPES = ("image", "video")
SPLITS = ("train", "dev", "test")

# Required columns first, then the optional ones (nullable).
REQUIRED_FIELDS = [
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("media", pa.string(), nullable=False),
    pa.field("label", pa.int8(), nullable=False),
    pa.field("attack", pa.string(), nullable=False),
    pa.field("domain", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
]
OPTIONAL_FIELDS = [
    pa.field("session", pa.string()),
    pa.field("device", pa.string()),
    pa.field("light", pa.string()),
    pa.field("frame_index", pa.int32()),
]
SCHEMA = pa.schema(REQUIRED_FIELDS + OPTIONAL_FIELDS)
COLUMNS = SCHEMA.names
REQUIRED_COLUMNS = [f.name for f in REQUIRED_FIELDS]

# Schema metadata key marking a manifest (and everything derived from it) as generated, not real data.
SYNTHETIC_KEY = b"fas.synthetic"


class ManifestError(ValueError):
    """A manifest, or the dataset tree it is read from, does not look as expected."""


def validate_row(row: Mapping) -> None:
    """Raise ``ManifestError`` naming the sample when a row breaks the conventions."""
    missing = [c for c in REQUIRED_COLUMNS if row.get(c) in (None, "")]
    if missing:
        raise ManifestError(f"manifest row {row.get('sample_id') or row.get('path')!r} lacks {missing}")
    if row["media"] not in MEDIA_TYPES:
        raise ManifestError(f"{row['path']}: media must be one of {MEDIA_TYPES}, got {row['media']!r}")
    if row["label"] not in (0, 1):
        raise ManifestError(f"{row['path']}: label must be 1 (real) or 0 (attack), got {row['label']!r}")
    if (row["label"] == 1) != (row["attack"] == REAL):
        raise ManifestError(f"{row['path']}: label {row['label']} disagrees with attack {row['attack']!r}")
    if row["split"] not in SPLITS:
        raise ManifestError(f"{row['path']}: split must be one of {SPLITS}, got {row['split']!r}")


def make_manifest(rows: Iterable[Mapping], *, synthetic: bool = False) -> pa.Table:
    """Build a validated manifest table from dict rows; keeps extra columns after the schema's own."""
    rows = list(rows)
    if not rows:
        raise ManifestError("no samples found: the manifest would be empty")
    seen: set[str] = set()
    for row in rows:
        validate_row(row)
        if row["sample_id"] in seen:
            raise ManifestError(f"duplicate sample_id {row['sample_id']!r} ({row['path']})")
        seen.add(row["sample_id"])
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    columns = {f.name: pa.array([row.get(f.name) for row in rows], type=f.type) for f in SCHEMA}
    table = pa.table(columns, schema=SCHEMA)
    for name in extra:
        table = table.append_column(name, pa.array([row.get(name) for row in rows]))
    return mark_synthetic(table) if synthetic else table


def mark_synthetic(table: pa.Table) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[SYNTHETIC_KEY] = b"true"
    return table.replace_schema_metadata(meta)


def is_synthetic(table: pa.Table) -> bool:
    return (table.schema.metadata or {}).get(SYNTHETIC_KEY) == b"true"


def check_columns(table: pa.Table, where: str = "manifest") -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(f"{where} lacks required columns {missing}; it has {table.column_names}")


def write_manifest(table: pa.Table, path: str | Path) -> Path:
    """Write atomically (temp file + rename) so a half-written manifest never exists under the final name."""
    check_columns(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_manifest(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest {path} does not exist; build one with `fas manifest DATASET ROOT --out {path}`")
    table = pq.read_table(path)
    check_columns(table, str(path))
    return table


def summarize(table: pa.Table) -> dict:
    """Counts per split, label, attack and domain (and their crossing with split), as plain dicts."""
    cols = table.select(["split", "label", "attack", "domain"]).to_pylist()
    out: dict = {"samples": len(cols), "synthetic": is_synthetic(table)}
    for key in ("split", "label", "attack", "domain"):
        out[f"by_{key}"] = dict(sorted(collections.Counter(str(r[key]) for r in cols).items()))
    crossed = collections.Counter((r["split"], r["domain"], "real" if r["label"] == 1 else "attack") for r in cols)
    out["by_split_domain_label"] = {"/".join(k): v for k, v in sorted(crossed.items())}
    return out


def format_summary(summary: Mapping, title: str = "manifest") -> str:
    lines = [f"== {title}{' (SYNTHETIC data generated by fas synth)' if summary.get('synthetic') else ''} =="]
    lines.append(f"samples: {summary['samples']}")
    for key in ("split", "label", "attack", "domain"):
        counts = summary.get(f"by_{key}", {})
        lines.append(f"by {key}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join(lines)


def summary_json(summary: Mapping) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)


def parse_source(text: str) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH=DOMAIN`` (a source whose domain is renamed as it is merged)."""
    path, _, domain = text.partition("=")
    return Path(path), (domain.strip() or None)


def merge_manifests(sources: Sequence[tuple[str | Path, str | None]]) -> tuple[pa.Table, dict]:
    """Several manifests as one, as leave-one-domain-out and the unseen-data protocol need four to nine datasets in
    one cache; each source may get a new domain name (its ids' ``<domain>/`` prefix follows). Columns a source lacks
    are null; sample ids must stay unique across sources. Returns the table and the counts per source."""
    tables, counts, owner, synthetic = [], {}, {}, False
    for path, domain in sources:
        table = read_manifest(path)
        synthetic |= is_synthetic(table)
        if domain:
            old = table["domain"].to_pylist()
            ids = [f"{domain}/{i[len(d) + 1:]}" if i.startswith(f"{d}/") else f"{domain}/{i}"
                   for i, d in zip(table["sample_id"].to_pylist(), old)]
            table = table.set_column(table.schema.get_field_index("domain"), "domain", pa.array([domain] * len(old)))
            table = table.set_column(table.schema.get_field_index("sample_id"), "sample_id", pa.array(ids))
        for sample in table["sample_id"].to_pylist():
            if sample in owner:
                raise ManifestError(f"sample_id {sample!r} is in both {owner[sample]} and {path}; give one of them "
                                    "another domain (PATH=DOMAIN)")
            owner[sample] = str(path)
        labels = table["label"].to_pylist()
        counts[str(path)] = {"domains": sorted(set(table["domain"].to_pylist())), "samples": table.num_rows,
                             "real": labels.count(1), "attack": labels.count(0)}
        tables.append(table.replace_schema_metadata(None))
    try:
        merged = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"the manifests {[str(p) for p, _ in sources]} disagree on a column's type: {exc}") from exc
    return (mark_synthetic(merged) if synthetic else merged), counts
