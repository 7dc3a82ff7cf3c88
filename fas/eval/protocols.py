"""Named, reusable evaluation protocols and the one function that turns a manifest into their train/threshold/test rows.

Domain names are the manifest's ``domain`` values. OCIM letters: O = oulu_npu, C = casia_fasd, I = replay_attack,
M = msu_mfsd. Protocol names accepted by ``get_protocol``: the registry keys (``PROTOCOLS``), ``intra:<domain>``,
and any ``A&B->C`` with domain names or OCIM letters (e.g. ``synth-cam-a&synth-cam-b->synth-cam-c``).

How ``split_for_protocol`` picks rows (the choices, stated once):

- train: the ``train`` split of each train domain (``Protocol.train_splits``). SSDG-style OCIM code trains on every
  non-dev split of the sources; set ``train_splits=("train", "test")`` to match it.
- threshold: the ``dev`` split of each threshold domain. A domain without dev rows (MSU-MFSD and CASIA-FASD ship only
  train/test) instead gives up a held-out part of its train split: whole subjects, about ``holdout_fraction`` of them,
  picked by a stable hash of the subject id; those rows leave train, so train and threshold never share a subject.
  (With a single subject, that subject's rows would all be held out: the domain then has no train rows, an error.)
- test: for a domain the protocol also trains on (intra-dataset), its ``test`` split. For a cross-domain target
  (never trained on), every split but ``dev`` (``Protocol.cross_domain_splits``), as the label files shared by the
  OCIM code bases (SSDG, and AG-FAS which reuses them) do: the whole unseen dataset is the test set, and keeping the
  dev split out leaves it free for target-side analyses and keeps numbers comparable with those papers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Sequence

import pandas as pd
import pyarrow as pa

from fas.eval.errors import ProtocolError

OCIM = {"O": "oulu_npu", "C": "casia_fasd", "I": "replay_attack", "M": "msu_mfsd"}
CLIPC8_ZERO_SHOT_DOMAINS = ("nuaa", "casia_fasd", "replay_attack", "oulu_npu", "msu_mfsd")
# AG-FAS (Long, Zhang, Shan, "Generalized Face Liveness Detection via De-fake Face Generator", TPAMI 2024), unseen
# data: train on all four OCIM datasets, then test on each of five datasets whose attacks (3D masks, wax figures,
# paper masks) the training sets do not have. The published table (HTER % / AUC %), the reference a report shows:
AGFAS_UNSEEN_DOMAINS = ("hkbu_mars", "wffd", "rose_youtu", "siw", "wmca")
PUBLISHED = {
    "agfas_unseen": {
        "source": "AG-FAS (TPAMI 2024), table of results on unseen datasets; HTER % / AUC %",
        "rows": {
            "SSDG-R": {"hkbu_mars": (23.53, 84.22), "wffd": (37.74, 65.29), "rose_youtu": (12.22, 94.54),
                       "siw": (4.97, 98.68), "wmca": (14.61, 91.98)},
            "SSAN-R": {"hkbu_mars": (22.12, 85.68), "wffd": (40.24, 63.49), "rose_youtu": (14.15, 92.80),
                       "siw": (8.85, 97.01), "wmca": (16.79, 90.40)},
            "SA-FAS": {"hkbu_mars": (31.63, 74.86), "wffd": (41.34, 60.67), "rose_youtu": (16.42, 90.33),
                       "siw": (6.79, 98.01), "wmca": (18.91, 88.08)},
            "AG-FAS": {"hkbu_mars": (17.98, 90.43), "wffd": (35.44, 67.23), "rose_youtu": (11.77, 95.13),
                       "siw": (3.18, 99.50), "wmca": (9.95, 96.84)},
        },
    },
}
DEFAULT_HOLDOUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Which domains train, which set the threshold (dev / source-side held-out), which are tested."""

    name: str
    train_domains: tuple[str, ...]
    threshold_domains: tuple[str, ...]
    test_domains: tuple[str, ...]
    notes: str = ""
    reader_protocol: str | None = None  # the dataset's own protocol id for its reader, e.g. OULU-NPU "3" or "3_2"
    folds: int = 1  # > 1: run once per fold and report mean ± std over folds
    cross_domain_splits: tuple[str, ...] = ("train", "test")
    train_splits: tuple[str, ...] = ("train",)

    def fold(self, k: int) -> "Protocol":
        """The protocol of fold ``k`` (1-based): reader protocol '3' becomes '3_k', as OULU-NPU names its lists."""
        if self.folds <= 1:
            raise ProtocolError(f"protocol {self.name!r} has no folds; use it as is")
        if not 1 <= k <= self.folds:
            raise ProtocolError(f"protocol {self.name!r} has folds 1..{self.folds}, got {k}")
        return dataclasses.replace(self, name=f"{self.name}/fold{k}", reader_protocol=f"{self.reader_protocol}_{k}",
                                   folds=1)

    def fold_protocols(self) -> list["Protocol"]:
        return [self.fold(k) for k in range(1, self.folds + 1)] if self.folds > 1 else [self]


def leave_one_out(domains: Sequence[str], target: str) -> Protocol:
    """Train (and set the threshold) on every domain but ``target``; test on ``target``."""
    domains = tuple(dict.fromkeys(domains))
    if target not in domains:
        raise ProtocolError(f"target domain {target!r} is not among {list(domains)}")
    sources = tuple(d for d in domains if d != target)
    if not sources:
        raise ProtocolError(f"leave-one-out needs at least two domains, got {list(domains)}")
    return Protocol(f"{'&'.join(sources)}->{target}", sources, sources, (target,),
                    notes=f"leave-one-domain-out: train on {', '.join(sources)}; {target} is unseen")


def intra(domain: str) -> Protocol:
    return Protocol(f"intra:{domain}", (domain,), (domain,), (domain,), notes="intra-dataset: train/dev/test splits")


def _ocim(name: str) -> Protocol:
    sources, target = name.split("->")
    src = tuple(OCIM[s] for s in sources.split("&"))
    kind = "leave-one-out (OCIM)" if len(src) == 3 else "limited source (OCIM)"
    return Protocol(name, src, src, (OCIM[target],), notes=f"{kind}: train on {', '.join(src)}; test on the unseen "
                    f"{OCIM[target]}")


def _oulu(p: int) -> Protocol:
    notes = {1: "unseen environment (session 3)", 2: "unseen attack instrument (printers/displays)",
             3: "unseen capture device, leave-one-phone-out", 4: "unseen environment, instrument and phone"}[p]
    folds = 6 if p in (3, 4) else 1
    if folds > 1:
        notes += "; 6 folds, report mean ± std over folds"
    d = ("oulu_npu",)
    return Protocol(f"oulu_p{p}", d, d, d, notes=f"OULU-NPU protocol {p}: {notes}", reader_protocol=str(p),
                    folds=folds)


def _build_registry() -> dict[str, Protocol]:
    protocols = [_ocim(n) for n in ("O&C&I->M", "O&M&I->C", "O&C&M->I", "I&C&M->O", "M&I->C", "M&I->O")]
    protocols += [_oulu(p) for p in (1, 2, 3, 4)]
    protocols.append(Protocol(
        "clipc8_zeroshot", (), (), CLIPC8_ZERO_SHOT_DOMAINS,
        notes="CLIPC8 zero-shot: no training on these datasets; classification by prompt argmax needs no threshold "
              "(use a fixed or test_eer rule, labelled, for score metrics)"))
    ocim = tuple(OCIM[k] for k in "MCIO")
    protocols.append(Protocol(
        "agfas_unseen", ocim, ocim, AGFAS_UNSEEN_DOMAINS,
        notes="AG-FAS unseen data: train on MSU-MFSD, CASIA-FASD, Replay-Attack and OULU-NPU; test on each of "
              "HKBU-MARs, WFFD, Rose-Youtu, SiW and WMCA (one report each, beside the published table)"))
    protocols += [_siw(p) for p in (1, 2, 3)]
    protocols.append(Protocol("wmca_grandtest", ("wmca",), ("wmca",), ("wmca",), reader_protocol="grandtest",
                              notes="WMCA grandtest (colour channel): every PAI in train, dev and test"))
    return {p.name: p for p in protocols}


def _siw(p: int) -> Protocol:
    notes = {1: "pose and expression variation", 2: "cross replay medium, leave one of four media out",
             3: "cross PAI, print to replay and replay to print"}[p]
    folds = {1: 1, 2: 4, 3: 2}[p]
    return Protocol(f"siw_p{p}", ("siw",), ("siw",), ("siw",), notes=f"SiW protocol {p}: {notes}",
                    reader_protocol=str(p), folds=folds)


def describe_protocols() -> list[dict]:
    """Every registered protocol: what it trains on, sets the threshold on and tests on (``fas protocols``)."""
    return [{"name": p.name, "train": list(p.train_domains), "threshold": list(p.threshold_domains),
             "test": list(p.test_domains), "folds": p.folds, "reader_protocol": p.reader_protocol, "notes": p.notes,
             "published": p.name in PUBLISHED} for p in PROTOCOLS.values()]


def format_protocols(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        folds = f", {row['folds']} folds" if row["folds"] > 1 else ""
        train = " & ".join(row["train"]) or "(no training)"
        lines.append(f"{row['name']}: train {train} -> test {', '.join(row['test'])}{folds}")
        lines.append(f"    {row['notes']}" + ("; published reference table included" if row["published"] else ""))
    lines.append("also: intra:<domain>, and A&B->C with domain names or OCIM letters (O C I M)")
    return "\n".join(lines)


PROTOCOLS: dict[str, Protocol] = _build_registry()


def _domain(token: str) -> str:
    return OCIM.get(token, token)


def get_protocol(name: str) -> Protocol:
    """A registered protocol, ``intra:<domain>``, or any ``A&B->C`` leave-out spec."""
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    if name.startswith("intra:") and name[len("intra:"):].strip():
        return intra(name[len("intra:"):].strip())
    if m := re.fullmatch(r"\s*([^>]+?)\s*->\s*(\S+)\s*", name):
        sources = [_domain(s.strip()) for s in m.group(1).split("&") if s.strip()]
        target = _domain(m.group(2))
        if sources and target not in sources:
            return leave_one_out(sources + [target], target)
    raise ProtocolError(f"unknown protocol {name!r}; known: {sorted(PROTOCOLS)}, 'intra:<domain>', "
                        "or 'A&B->C' with domain names")


# --- splitting a manifest --------------------------------------------------------------------------------------------


def _stable_hash(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()


def _holdout_subjects(subjects: Sequence[str], fraction: float) -> set[str]:
    """About ``fraction`` of the subjects (at least one, never all when there are two or more), by stable hash."""
    ordered = sorted(set(subjects), key=_stable_hash)
    n = min(max(1, round(fraction * len(ordered))), max(1, len(ordered) - 1))
    return set(ordered[:n])


def _masks(df: pd.DataFrame, protocol: Protocol, fold_reader: str | None, fraction: float) -> dict:
    """Boolean row masks for train / threshold / test."""
    in_protocol = pd.Series(True, index=df.index)
    if fold_reader is not None and "protocol" in df.columns:
        in_protocol = df["protocol"].astype(str) == fold_reader
    split, domain = df["split"].astype(str), df["domain"].astype(str)
    train = in_protocol & domain.isin(protocol.train_domains) & split.isin(protocol.train_splits)
    threshold = pd.Series(False, index=df.index)
    for d in protocol.threshold_domains:
        dev = in_protocol & (domain == d) & (split == "dev")
        if dev.any():
            threshold |= dev
            continue
        pool = in_protocol & (domain == d) & split.isin(protocol.train_splits)
        held = pool & df["subject"].astype(str).isin(_holdout_subjects(df.loc[pool, "subject"].astype(str), fraction))
        threshold |= held
        train &= ~held
    test = pd.Series(False, index=df.index)
    for d in protocol.test_domains:
        splits = ("test",) if d in protocol.train_domains else protocol.cross_domain_splits
        test |= in_protocol & (domain == d) & split.isin(splits)
    return {"train": train, "threshold": threshold, "test": test}


def _check_domains(df: pd.DataFrame, protocol: Protocol, masks: dict) -> None:
    present = set(df["domain"].astype(str))
    needed = dict.fromkeys(protocol.train_domains + protocol.threshold_domains + protocol.test_domains)
    missing = [d for d in needed if d not in present]
    if missing:
        raise ProtocolError(f"protocol {protocol.name!r} needs domains {missing} that the manifest lacks; it has "
                            f"{sorted(present)}: build their manifests first (fas manifest DATASET ROOT)")
    for part, domains in (("train", protocol.train_domains), ("threshold", protocol.threshold_domains),
                          ("test", protocol.test_domains)):
        empty = [d for d in domains if not (masks[part] & (df["domain"].astype(str) == d)).any()]
        if empty:
            raise ProtocolError(f"protocol {protocol.name!r}: no {part} rows for domains {empty}; check their splits "
                                f"(by split: {df['split'].value_counts().to_dict()})")


def split_for_protocol(manifest, protocol: Protocol | str, fold: int | None = None,
                       holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION) -> dict:
    """Rows of ``manifest`` (pyarrow Table or DataFrame) for train / threshold / test, returned as the same type.

    For a protocol with folds, pass ``fold`` (1-based); if the manifest has a ``protocol`` column (a reader that lists
    several protocols), rows are kept where it equals the fold's reader protocol (e.g. '3_2').
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if protocol.folds > 1:
        if fold is None:
            raise ProtocolError(f"protocol {protocol.name!r} has {protocol.folds} folds; pass fold=1..{protocol.folds}")
        protocol = protocol.fold(fold)
    is_table = isinstance(manifest, pa.Table)
    columns = ["domain", "split", "subject"] + (["protocol"] if "protocol" in _names(manifest) else [])
    missing = [c for c in ("domain", "split", "subject") if c not in _names(manifest)]
    if missing:
        raise ProtocolError(f"manifest lacks columns {missing}; it has {_names(manifest)}")
    df = manifest.select(columns).to_pandas() if is_table else manifest.reset_index(drop=True)
    masks = _masks(df, protocol, protocol.reader_protocol, holdout_fraction)
    _check_domains(df, protocol, masks)
    if is_table:
        return {k: manifest.filter(pa.array(m.to_numpy())) for k, m in masks.items()}
    return {k: manifest.loc[m.to_numpy()].reset_index(drop=True) for k, m in masks.items()}


def _names(manifest) -> list[str]:
    if isinstance(manifest, pa.Table):
        return manifest.column_names
    if isinstance(manifest, pd.DataFrame):
        return list(manifest.columns)
    raise ProtocolError(f"manifest must be a pyarrow Table or pandas DataFrame, got {type(manifest).__name__}")
