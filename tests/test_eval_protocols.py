"""Protocol registry and splitting a small fabricated manifest into train / threshold / test rows."""

import pyarrow as pa
import pytest

from fas.data.manifest import is_synthetic, make_manifest
from fas.eval import protocols as P
from fas.eval.errors import ProtocolError


def _rows(domain, splits, subjects=("s1", "s2", "s3", "s4", "s5"), extra=None):
    rows = []
    for split in splits:
        for subject in subjects:
            for label, attack in ((1, "real"), (0, "print")):
                sid = f"{domain}/{split}/{subject}/{attack}"
                rows.append({"sample_id": sid, "path": sid + ".mp4", "media": "video", "label": label,
                             "attack": attack, "domain": domain, "subject": f"{split}-{subject}", "split": split,
                             **(extra or {})})
    return rows


@pytest.fixture
def manifest():
    rows = _rows("synth-cam-a", ("train", "dev", "test")) + _rows("synth-cam-b", ("train", "dev", "test"))
    rows += _rows("synth-cam-c", ("train", "test"))  # no dev split, like MSU-MFSD / CASIA-FASD
    return make_manifest(rows, synthetic=True)


def _set(table, *cols):
    return {tuple(r[c] for c in cols) for r in table.select(list(cols)).to_pylist()}


def test_registry_names():
    for name in ("O&C&I->M", "O&M&I->C", "O&C&M->I", "I&C&M->O", "M&I->C", "M&I->O", "oulu_p1", "oulu_p2",
                 "oulu_p3", "oulu_p4", "clipc8_zeroshot", "agfas_unseen"):
        assert P.get_protocol(name).name == name
    ocim = P.get_protocol("O&C&I->M")
    assert ocim.train_domains == ("oulu_npu", "casia_fasd", "replay_attack") and ocim.test_domains == ("msu_mfsd",)
    assert P.get_protocol("M&I->O").train_domains == ("msu_mfsd", "replay_attack")
    assert P.get_protocol("clipc8_zeroshot").test_domains == ("nuaa", "casia_fasd", "replay_attack", "oulu_npu",
                                                              "msu_mfsd")
    unseen = P.get_protocol("agfas_unseen")
    assert unseen.train_domains == ("msu_mfsd", "casia_fasd", "replay_attack", "oulu_npu")
    assert unseen.test_domains == ("hkbu_mars", "wffd", "rose_youtu", "siw", "wmca")
    assert set(P.PUBLISHED["agfas_unseen"]["rows"]["AG-FAS"]) == set(unseen.test_domains)
    assert P.PUBLISHED["agfas_unseen"]["rows"]["AG-FAS"]["siw"] == (3.18, 99.50)


def test_agfas_unseen_trains_on_ocim_and_tests_every_split_but_dev_of_the_five():
    ocim = [r for d in P.OCIM.values() for r in _rows(d, ("train", "dev", "test"))]
    unseen = [r for d in P.AGFAS_UNSEEN_DOMAINS for r in _rows(d, ("train", "dev", "test") if d == "siw" else ("test",))]
    parts = P.split_for_protocol(make_manifest(ocim + unseen), "agfas_unseen")
    assert _set(parts["train"], "domain", "split") == {(d, "train") for d in P.OCIM.values()}
    assert _set(parts["threshold"], "domain", "split") == {(d, "dev") for d in P.OCIM.values()}
    assert _set(parts["test"], "domain", "split") == {(d, "test") for d in P.AGFAS_UNSEEN_DOMAINS} | {("siw", "train")}
    assert parts["test"].num_rows == 10 * 5 + 10
    with pytest.raises(ProtocolError, match=r"needs domains \['wmca'\]"):
        P.split_for_protocol(make_manifest([r for r in ocim + unseen if r["domain"] != "wmca"]), "agfas_unseen")


def test_siw_and_wmca_protocols_name_their_reader_protocols():
    assert [f.reader_protocol for f in P.get_protocol("siw_p2").fold_protocols()] == ["2_1", "2_2", "2_3", "2_4"]
    assert [f.reader_protocol for f in P.get_protocol("siw_p3").fold_protocols()] == ["3_1", "3_2"]
    assert P.get_protocol("siw_p1").folds == 1 and P.get_protocol("wmca_grandtest").reader_protocol == "grandtest"


def test_fas_protocols_lists_every_registered_protocol(capsys):
    from fas.cli import main

    assert main(["protocols", "--json"]) == 0
    listed = {row["name"]: row for row in __import__("json").loads(capsys.readouterr().out)}
    assert set(listed) == set(P.PROTOCOLS)
    assert listed["agfas_unseen"]["test"] == list(P.AGFAS_UNSEEN_DOMAINS) and listed["agfas_unseen"]["published"]
    assert listed["siw_p2"]["folds"] == 4 and not listed["oulu_p1"]["published"]
    assert main(["protocols"]) == 0
    assert "agfas_unseen: train msu_mfsd & casia_fasd & replay_attack & oulu_npu -> test hkbu_mars, wffd, " \
           "rose_youtu, siw, wmca" in capsys.readouterr().out


def test_oulu_folds():
    p3 = P.get_protocol("oulu_p3")
    assert p3.folds == 6 and P.get_protocol("oulu_p1").folds == 1 and P.get_protocol("oulu_p4").folds == 6
    assert [f.reader_protocol for f in p3.fold_protocols()] == [f"3_{k}" for k in range(1, 7)]
    with pytest.raises(ProtocolError, match="folds 1..6"):
        p3.fold(7)


def test_parse_intra_and_leave_out_specs():
    assert P.get_protocol("intra:synth-cam-a").test_domains == ("synth-cam-a",)
    spec = P.get_protocol("synth-cam-a&synth-cam-b->synth-cam-c")
    assert spec == P.leave_one_out(["synth-cam-a", "synth-cam-b", "synth-cam-c"], "synth-cam-c")
    assert P.get_protocol("O&C->M").train_domains == ("oulu_npu", "casia_fasd")
    with pytest.raises(ProtocolError, match="unknown protocol"):
        P.get_protocol("nope")
    with pytest.raises(ProtocolError, match="not among"):
        P.leave_one_out(["a", "b"], "c")


def test_leave_one_out_split(manifest):
    parts = P.split_for_protocol(manifest, P.leave_one_out(["synth-cam-a", "synth-cam-b", "synth-cam-c"],
                                                           "synth-cam-a"))
    assert all(isinstance(t, pa.Table) and is_synthetic(t) for t in parts.values())
    assert _set(parts["train"], "domain", "split") == {("synth-cam-b", "train"), ("synth-cam-c", "train")}
    # synth-cam-c has no dev split: a held-out part of its train split, by whole subjects, replaces it
    assert _set(parts["threshold"], "domain", "split") == {("synth-cam-b", "dev"), ("synth-cam-c", "train")}
    held = _set(parts["threshold"].filter(pa.compute.equal(parts["threshold"]["domain"], "synth-cam-c")), "subject")
    kept = _set(parts["train"].filter(pa.compute.equal(parts["train"]["domain"], "synth-cam-c")), "subject")
    assert held and kept and not held & kept and len(held) == 1  # 20% of 5 subjects
    # the unseen target: every split but dev
    assert _set(parts["test"], "domain", "split") == {("synth-cam-a", "train"), ("synth-cam-a", "test")}
    n = {k: v.num_rows for k, v in parts.items()}
    assert n == {"train": 10 + 8, "threshold": 10 + 2, "test": 20}


def test_intra_split_uses_test_split_and_dataframe_in_out(manifest):
    parts = P.split_for_protocol(manifest.to_pandas(), "intra:synth-cam-b")
    assert set(parts["test"]["split"]) == {"test"} and set(parts["threshold"]["split"]) == {"dev"}
    assert set(parts["train"]["split"]) == {"train"} and set(parts["train"]["domain"]) == {"synth-cam-b"}


def test_missing_domain_is_named(manifest):
    renamed = manifest.to_pandas().replace({"synth-cam-a": "oulu_npu", "synth-cam-b": "casia_fasd",
                                            "synth-cam-c": "replay_attack"})
    assert P.split_for_protocol(renamed, "O&C->I")["train"].shape[0] > 0
    with pytest.raises(ProtocolError, match=r"needs domains \['msu_mfsd'\]") as info:
        P.split_for_protocol(renamed, "O&C&I->M")
    assert "it has ['casia_fasd', 'oulu_npu', 'replay_attack']" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_split_is_reported(manifest):
    only_train = manifest.filter(pa.compute.equal(manifest["split"], "train"))
    with pytest.raises(ProtocolError, match=r"no test rows for domains \['synth-cam-b'\]"):
        P.split_for_protocol(only_train, "intra:synth-cam-b")


def test_fold_filter_on_protocol_column():
    rows = [dict(r, sample_id=f"{r['sample_id']}/{p}") for p in ("3_1", "3_2")
            for r in _rows("oulu_npu", ("train", "dev", "test"), extra={"protocol": p})]
    table = make_manifest(rows)
    with pytest.raises(ProtocolError, match="pass fold"):
        P.split_for_protocol(table, "oulu_p3")
    parts = P.split_for_protocol(table, "oulu_p3", fold=2)
    assert all(set(t["protocol"].to_pylist()) == {"3_2"} for t in parts.values())
    assert parts["test"].num_rows == 10


def test_zero_shot_has_no_training_rows():
    rows = [r for d in P.CLIPC8_ZERO_SHOT_DOMAINS for r in _rows(d, ("train", "test"), subjects=("s1",))]
    parts = P.split_for_protocol(make_manifest(rows), "clipc8_zeroshot")
    assert parts["train"].num_rows == 0 and parts["threshold"].num_rows == 0
    assert parts["test"].num_rows == len(rows)
