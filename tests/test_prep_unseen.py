"""prep's unseen-generator protocol and derived rows: held-out splits, copy-synthesis fakes, views.

The vocoder and augmentation modules are stubbed here (with `prep.workers = 1`
derived rows run in this process), so these tests check prep's bookkeeping:
labels, splits, generators, determinism, the cache and failures. The real
algorithms are tested in tests/test_vocode.py and tests/test_wavaug.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf import prep, records
from deepwave_tf.config import ConfigError, VocodeConfig

HELD = ("piper", "world")


def _meta(sample_dir: Path) -> dict[str, dict[str, str]]:
    with open(sample_dir / "meta.csv", newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def _cfg(tiny_cfg, vocode=None, wavaug=None, **prep_fields):
    fields = {"batch_size": 4, "num_shards": 2, "workers": 1, **prep_fields}
    cfg = tiny_cfg.replace(prep=dataclasses.replace(tiny_cfg.prep, **fields))
    if vocode:
        cfg = cfg.replace(vocode=dataclasses.replace(cfg.vocode, **vocode))
    if wavaug:
        cfg = cfg.replace(wavaug=dataclasses.replace(cfg.wavaug, **wavaug))
    return cfg


def _ids_by_split(out: Path) -> dict[str, dict[str, str]]:
    manifest = records.read_manifest(out)
    return {s: dict(records.read_ids_and_generators(out, s)) for s in manifest["shards"]}


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, tiny_cfg, sample_dir):
    out = tmp_path_factory.mktemp("holdout") / "held"
    result = prep.run(
        _cfg(tiny_cfg, holdout=HELD), sample_dir, out, progress=False, splits=["train"]
    )
    assert result.exit_code == 0
    return out


def test_holdout_becomes_the_unseen_split(held_out, sample_dir):
    meta = _meta(sample_dir)
    splits = _ids_by_split(held_out)
    assert set(splits) == {"train", "val", "unseen"}
    all_ids = [i for s in splits.values() for i in s]
    assert len(all_ids) == len(set(all_ids)) == 120  # every clip once, none twice
    # every clip of a held-out family, and no other fake, is in "unseen"
    held_ids = {i for i, r in meta.items() if r["split"] == "train" and r["generator"] in HELD}
    assert len(held_ids) == 12
    unseen_fakes = {i for i in splits["unseen"] if meta[i]["label"] == "fake"}
    assert unseen_fakes == held_ids
    for split in ("train", "val"):
        assert not held_ids & set(splits[split])
    # with the real clips of their speakers (WORLD copies of LibriSpeech voices)
    held_voices = {meta[i]["speaker_or_voice"] for i in held_ids}
    for i, r in meta.items():
        if r["split"] == "train" and r["label"] == "real" and r["speaker_or_voice"] in held_voices:
            assert i in splits["unseen"], i
    # the records carry meta.csv's generator
    assert {splits["unseen"][i] for i in held_ids} == set(HELD)
    counts = records.read_manifest(held_out)["counts"]["unseen"]
    assert counts["fake"] == 12 and counts["real"] == counts["total"] - 12 > 0


def test_extra_unseen_reals_share_no_voice_with_training_fakes(held_out, sample_dir):
    """Beyond the held-out fakes' own speakers, the real voices held out are ones no
    training fake imitates (else "unseen" would reward recognising voices)."""
    meta = _meta(sample_dir)
    splits = _ids_by_split(held_out)
    voice = {i: meta[i]["speaker_or_voice"] for i in meta}
    train_fake_voices = {voice[i] for i in splits["train"] if meta[i]["label"] == "fake"}
    held_voices = {voice[i] for i in splits["unseen"] if meta[i]["label"] == "fake"}
    extra = {
        voice[i]
        for i in splits["unseen"]
        if meta[i]["label"] == "real" and voice[i] not in held_voices
    }
    assert extra  # a quarter of the real clips were asked for
    assert not train_fake_voices & extra


def test_holdout_manifest_and_generators(held_out):
    manifest = records.read_manifest(held_out)
    assert manifest["split"]["holdout"] == {
        "column": "generator",
        "values": list(HELD),
        "real_fraction": 0.25,
    }
    assert manifest["generators"]["unseen"]["piper"] == 6
    assert "piper" not in manifest["generators"]["train"]
    assert sum(manifest["generators"]["train"].values()) == manifest["counts"]["train"]["total"]


def test_unknown_holdout_value_is_named(tmp_path, tiny_cfg, sample_dir):
    with pytest.raises(prep.PrepError, match=r"prep.holdout: no train row has \['nope'\].*piper"):
        prep.run(_cfg(tiny_cfg, holdout=("nope",)), sample_dir, tmp_path / "x", progress=False)


def test_holdout_column_missing_is_named(tmp_path, tiny_cfg, sample_dir):
    cfg = _cfg(tiny_cfg, holdout=("piper",), holdout_column="vocoder")
    with pytest.raises(prep.PrepError, match="column 'vocoder'"):
        prep.run(cfg, sample_dir, tmp_path / "x", progress=False)


def test_val_holdout_is_generator_disjoint(tmp_path, tiny_cfg, sample_dir):
    meta = _meta(sample_dir)
    out = tmp_path / "gval"
    cfg = _cfg(tiny_cfg, holdout=("piper",), val_holdout=("pico", "mbrola"))
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    splits = _ids_by_split(out)
    val_gens = {meta[i]["generator"] for i in splits["val"] if meta[i]["label"] == "fake"}
    assert val_gens == {"pico", "mbrola"}
    train_gens = {meta[i]["generator"] for i in splits["train"] if meta[i]["label"] == "fake"}
    assert not train_gens & {"pico", "mbrola", "piper"}
    assert any(meta[i]["label"] == "real" for i in splits["val"])
    assert records.read_manifest(out)["split"]["method"] == "generator"


def test_unseen_split_never_reaches_fit_or_calibration(held_out, tmp_path, tiny_cfg, monkeypatch):
    """fit and export read train/val (and test for parity), never "unseen"."""
    from deepwave_tf import export, fit

    read = []
    real_shard_paths = records.shard_paths

    def spy(records_dir, split):
        read.append(split)
        return real_shard_paths(records_dir, split)

    monkeypatch.setattr(records, "shard_paths", spy)
    cfg = tiny_cfg.replace(
        train=dataclasses.replace(tiny_cfg.train, epochs=1, steps_per_epoch=2),
        data=dataclasses.replace(tiny_cfg.data, batch_size=8),
    )
    fit.run(cfg, held_out, tmp_path / "run", verbose=0)
    export.run(tmp_path / "run", records=held_out)
    assert {"train", "val"} <= set(read)
    assert "unseen" not in read


# --------------------------------------------------------------------------- #
# Derived rows, with stub algorithms
# --------------------------------------------------------------------------- #
class _Stubs:
    """Stand-ins for deepwave_tf.vocode / wavaug that count their calls."""

    def __init__(self):
        self.calls = 0

    def vocode(self, name, clip, rate, rng):
        self.calls += 1
        if name == "fails" or (name == "picky" and clip.size < rate * 3):
            err = ValueError("cannot")
            err.reason = "too short for picky"
            raise err
        return (0.5 * clip + 1e-3 * rng.standard_normal(clip.size)).astype(np.float32)

    def random_chain(self, clip, rate, rng, names=None, max_ops=3):
        self.calls += 1
        return (0.8 * clip).astype(np.float32), ["gain", "mp3"][: 1 + int(rng.integers(2))]


@pytest.fixture()
def stubs(monkeypatch):
    """`from deepwave_tf import vocode` (and wavaug) inside prep get the stubs."""
    import sys

    import deepwave_tf

    s = _Stubs()
    for name, stub in (
        ("vocode", types.SimpleNamespace(vocode=s.vocode)),
        ("wavaug", types.SimpleNamespace(random_chain=s.random_chain)),
    ):
        monkeypatch.setitem(sys.modules, f"deepwave_tf.{name}", stub)
        monkeypatch.setattr(deepwave_tf, name, stub, raising=False)
    return s


def _parsed(out: Path, split: str, cfg) -> dict[str, dict]:
    import tensorflow as tf

    parse = records.make_parser(cfg.features)
    gens = dict(records.read_ids_and_generators(out, split))
    ds = tf.data.TFRecordDataset([str(p) for p in records.shard_paths(out, split)]).map(parse)
    result = {}
    for ex in ds:
        i = ex["id"].numpy().decode()
        result[i] = {
            "fake": int(ex["fake"]),
            "real": int(ex["real"]),
            "mel": ex["mel"].numpy(),
            "generator": gens[i],
        }
    return result


def test_vocoded_copies(tmp_path, tiny_cfg, sample_dir, stubs):
    cfg = _cfg(tiny_cfg, vocode={"vocoders": ("stubA", "stubB", "picky"), "copies_per_real": 2})
    out = tmp_path / "voc"
    result = prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    assert result.exit_code == 0
    meta = _meta(sample_dir)
    splits = {s: _parsed(out, s, cfg) for s in ("train", "val")}
    n_copies = 0
    for examples in splits.values():
        for i, ex in examples.items():
            if "~" not in i:
                continue
            n_copies += 1
            source, name = i.split("~")
            assert ex["fake"] == 1 and ex["real"] == 0  # labelled fake
            assert ex["generator"] == f"vocode:{name}"
            assert meta[source]["label"] == "real"
            assert source in examples  # in its source speaker's split
            assert not np.array_equal(ex["mel"], examples[source]["mel"])
    # "picky" fails on clips under 3 s: recorded in errors.csv, the run went on
    picky_errors = [e for e in result.errors if e[0].endswith("~picky")]
    assert picky_errors and all(
        "vocode:picky failed: too short for picky" in e[2] for e in picky_errors
    )
    with open(out / "errors.csv", newline="") as f:
        assert {r["id"] for r in csv.DictReader(f)} >= {e[0] for e in picky_errors}
    n_real = sum(r["label"] == "real" for r in meta.values() if r["split"] == "train")
    assert n_copies + len(picky_errors) == 2 * n_real
    gens = records.read_manifest(out)["generators"]
    assert gens["train"].get("vocode:stubA", 0) + gens["val"].get("vocode:stubA", 0) > 0


def test_vocoded_copies_are_deterministic_and_cached(tmp_path, tiny_cfg, sample_dir, stubs):
    cfg = _cfg(tiny_cfg, vocode={"vocoders": ("stubA", "stubB"), "copies_per_real": 1})
    out = tmp_path / "voc"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    first = {p.name: p.read_bytes() for p in sorted(out.glob("*.tfrecord-*"))}
    calls = stubs.calls
    assert calls == 60  # one copy of each real clip
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])  # a fresh re-prep
    assert stubs.calls == calls  # nothing vocoded again: the cache served it
    assert {p.name: p.read_bytes() for p in sorted(out.glob("*.tfrecord-*"))} == first
    other = tmp_path / "other" / "voc"  # same seed, no cache: the same bytes
    prep.run(cfg, sample_dir, other, progress=False, splits=["train"])
    assert {p.name: p.read_bytes() for p in sorted(other.glob("*.tfrecord-*"))} == first


def test_val_copies_false_keeps_copies_out_of_val(tmp_path, tiny_cfg, sample_dir, stubs):
    cfg = _cfg(tiny_cfg, vocode={"vocoders": ("stubA",), "copies_per_real": 1, "val_copies": False})
    out = tmp_path / "voc"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    ids = {s: [i for i, _ in records.read_ids_and_generators(out, s)] for s in ("train", "val")}
    meta = _meta(sample_dir)
    train_reals = [i for i in ids["train"] if "~" not in i and meta[i]["label"] == "real"]
    assert sorted(i for i in ids["train"] if "~" in i) == sorted(f"{i}~stubA" for i in train_reals)
    assert ids["val"] and not [i for i in ids["val"] if "~" in i]  # val as the corpus has it
    assert stubs.calls == len(train_reals)
    assert records.read_manifest(out)["split"]["vocode"]["val_copies"] is False


def test_corpus_fakes_false_trains_on_copies_only(tmp_path, tiny_cfg, sample_dir, stubs, capsys):
    cfg = _cfg(
        tiny_cfg, vocode={"vocoders": ("stubA",), "copies_per_real": 1, "corpus_fakes": False}
    )
    out = tmp_path / "copies-only"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    meta = _meta(sample_dir)
    ids = {s: [i for i, _ in records.read_ids_and_generators(out, s)] for s in ("train", "val")}
    for split in ("train", "val"):
        originals = [i for i in ids[split] if "~" not in i]
        copies = [i for i in ids[split] if "~" in i]
        assert originals and all(meta[i]["label"] == "real" for i in originals)
        assert sorted(copies) == sorted(f"{i}~stubA" for i in originals)  # the only fakes
    all_fakes = sum(m["label"] == "fake" for m in meta.values())
    split = records.read_manifest(out)["split"]["vocode"]["corpus_fakes_left_out"]
    assert split["train"] + split["val"] == all_fakes and split["val"] > 0
    assert f"leaving the corpus's {split['train']} train and {split['val']} val fake" in (
        capsys.readouterr().err
    )


def test_corpus_fakes_false_keeps_held_out_fakes_in_unseen(tmp_path, tiny_cfg, sample_dir, stubs):
    cfg = _cfg(
        tiny_cfg,
        holdout=("world",),
        vocode={"vocoders": ("stubA",), "copies_per_real": 1, "corpus_fakes": False},
    )
    out = tmp_path / "fold"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    meta = _meta(sample_dir)
    unseen = [i for i, _ in records.read_ids_and_generators(out, "unseen")]
    assert {meta[i]["label"] for i in unseen} == {"fake", "real"}
    assert {meta[i]["generator"] for i in unseen if meta[i]["label"] == "fake"} == {"world"}


def test_vocode_plan_names_corpus_fakes_only_when_false(tiny_cfg):
    on = _cfg(tiny_cfg, vocode={"vocoders": ("lpc",), "copies_per_real": 1})
    off = _cfg(tiny_cfg, vocode={"vocoders": ("lpc",), "copies_per_real": 1, "corpus_fakes": False})
    # plans (and records) written before the field existed keep their hash
    assert prep.vocode_plan(on) == {"vocoders": ("lpc",), "copies_per_real": 1, "val_copies": True}
    assert prep.vocode_plan(off)["corpus_fakes"] is False


@pytest.mark.parametrize(
    "vocode, message",
    [
        ({"corpus_fakes": False}, "leaves no fake clip to train on"),
        (
            {
                "vocoders": ("lpc",),
                "copies_per_real": 1,
                "corpus_fakes": False,
                "val_copies": False,
            },
            "leaves the val split without a fake clip",
        ),
    ],
)
def test_corpus_fakes_false_needs_copies_in_train_and_val(vocode, message):
    with pytest.raises(ConfigError, match=message):
        VocodeConfig(**vocode)


def test_fold_never_vocodes_with_a_held_out_family(tmp_path, tiny_cfg, sample_dir, stubs, capsys):
    cfg = _cfg(
        tiny_cfg,
        holdout=("world",),
        vocode={"vocoders": ("world", "stubA"), "copies_per_real": 2},
    )
    out = tmp_path / "fold"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    manifest = records.read_manifest(out)
    assert manifest["split"]["vocode"] == {
        "vocoders": ["stubA"],
        "dropped_held_out": ["world"],
        "copies_per_real": 1,
    }
    ids = [
        i for s in ("train", "val", "unseen") for i, _ in records.read_ids_and_generators(out, s)
    ]
    assert not [i for i in ids if i.endswith("~world")]
    assert not [i for i, _ in records.read_ids_and_generators(out, "unseen") if "~" in i]
    assert "not vocoding with ['world']" in capsys.readouterr().err


def test_augmented_views_keep_label_split_and_record_the_chain(
    tmp_path, tiny_cfg, sample_dir, stubs
):
    cfg = _cfg(tiny_cfg, wavaug={"views_per_clip": 1})
    out = tmp_path / "views"
    prep.run(cfg, sample_dir, out, progress=False, splits=["train"])
    train = _parsed(out, "train", cfg)
    views = {i: ex for i, ex in train.items() if i.endswith("~aug0")}
    originals = {i: ex for i, ex in train.items() if "~" not in i}
    assert len(views) == len(originals)  # train only, one view each
    for i, ex in views.items():
        src = originals[i.split("~")[0]]
        assert (ex["fake"], ex["real"]) == (src["fake"], src["real"])
        tag = ex["generator"].split("+")[-1]
        assert tag in ("wavaug:gain", "wavaug:gain,mp3")
    assert not [i for i in _parsed(out, "val", cfg) if "~" in i]  # val stays clean
    gens = records.read_manifest(out)["generators"]["train"]
    real_views = sum(ex["real"] == 1 for ex in views.values())
    assert gens["wavaug"] == real_views > 0  # reals have no generator: "wavaug" alone
    assert sum(v for g, v in gens.items() if g.endswith("+wavaug")) == len(views) - real_views


def _row(i, gen, voice, real):
    return prep.Row(f"c{i}", f"train/c{i}.ogg", 1 - real, real, generator=gen), voice


def test_a_held_out_family_without_real_voices_still_gets_real_speakers():
    # "synth" voices have no real clips; every real speaker has a fake copy left in training,
    # and one is large: the strict rule finds no real speaker, so the split would hold one
    # class (the hts fold's val_holdout = mbrola did: 91 fakes, 0 reals). The fallback takes
    # whole real speakers anyway, so the split can be scored and calibrated.
    spec = [("synth", "robot", 0)] * 5
    spec += [("-", "ann", 1)] * 4 + [("world", "ann", 0)] * 4
    spec += [("-", "bob", 1)] * 3 + [("world", "bob", 0)] * 3
    spec += [("-", "big", 1)] * 30 + [("griffinlim", "big", 0)] * 2
    made = [_row(i, g, v, r) for i, (g, v, r) in enumerate(spec)]
    rows = [r for r, _ in made]
    groups = {r.id: v for r, v in made}
    values = {r.id: r.generator for r in rows}
    kept, moved = prep.hold_out(rows, values, groups, ("synth",), 0.1, 7, "prep.val_holdout")
    assert {r.id for r in moved if r.fake} == {f"c{i}" for i in range(5)}
    real_voices = {groups[r.id] for r in moved if r.real}
    assert real_voices in ({"ann"}, {"bob"})  # wanted = 0.1 * 37 reals: one small speaker
    assert all(groups[r.id] not in real_voices for r in kept if r.real)  # whole speakers
    assert len(kept) + len(moved) == len(rows)
    # and where the strict rule does find real speakers, nothing changes
    strict_rows = rows + [prep.Row("solo", "train/solo.ogg", 0, 1, generator="-")]
    groups["solo"], values["solo"] = "solo", "-"
    _, moved = prep.hold_out(strict_rows, values, groups, ("synth",), 0.1, 7, "prep.val_holdout")
    assert {groups[r.id] for r in moved if r.real} == {"solo"}


# --------------------------------------------------------------------------- #
# bench_unseen's evaluation records
# --------------------------------------------------------------------------- #
def _bench_unseen(monkeypatch):
    """benchmarks/bench_unseen.py as an importable module: its prep runs in a spawned child,
    which must find the module by name."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    return importlib.import_module("bench_unseen")


def test_bench_evaluation_records_hold_exactly_the_csv_clips(
    tmp_path, tiny_cfg, sample_dir, stubs, monkeypatch
):
    """The modern set is prepped as a "train" split. Prepped with a [vocode] and views config,
    its real clips gained copies labelled fake, views were added, and with
    `corpus_fakes = false` its fakes were dropped. `eval_config` removes all three, and
    `ensure_records(evaluation=True)` preps a stale directory again."""
    bench = _bench_unseen(monkeypatch)
    cfg = _cfg(
        tiny_cfg,
        vocode={"vocoders": ("stubA",), "copies_per_real": 1, "corpus_fakes": False},
        wavaug={"views_per_clip": 1},
        val_fraction=0.0,
    )
    with open(sample_dir / "train.csv", newline="") as f:
        rows = {r["id"]: r["label"] for r in csv.DictReader(f)}
    out = tmp_path / "modern-x"
    assert prep.run(cfg, sample_dir, out, progress=False, splits=["train"]).exit_code == 0
    stale = _ids_by_split(out)["train"]
    assert any("~" in i for i in stale)
    assert not [i for i in stale if rows.get(i) == "fake"]  # the corpus's fakes were gone
    assert bench.evaluation_parts(out) == ["vocode", "wavaug"]  # what bench_fusion checks

    ecfg = bench.eval_config(cfg)
    assert (ecfg.vocode.copies_per_real, ecfg.wavaug.views_per_clip) == (0, 0)
    assert ecfg.vocode.corpus_fakes and ecfg.features == cfg.features
    bench.ensure_records(ecfg, sample_dir, out, ["train"], evaluation=True, val_fraction=0.0)
    assert set(_ids_by_split(out)["train"]) == set(rows)  # every clip once, nothing added
    plan = json.loads((out / ".prep" / "plan.json").read_text())
    assert bench.augmented_plan_parts(plan) == [] and bench.evaluation_parts(out) == []
    stamp = (out / "manifest.json").stat().st_mtime_ns
    bench.ensure_records(ecfg, sample_dir, out, ["train"], evaluation=True, val_fraction=0.0)
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # complete and clean: kept
