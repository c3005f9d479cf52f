"""prep_beam: the Beam pipeline (DirectRunner) writes what prep.run writes; CLI; missing extra."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import deepwave_tf
from deepwave_tf import prep, records

REPO = Path(__file__).resolve().parent.parent
needs_beam = pytest.mark.skipif(
    importlib.util.find_spec("apache_beam") is None,
    reason="apache-beam is not installed (pip install -e '.[beam]')",
)
# Manifest fields that may differ: the runner (Beam only) and the stats (float64 sums
# added in another order: compared to tolerance below).
DIFFERENT = {"runner", "stats"}


def _examples(records_dir: Path, cfg) -> dict[str, list[dict]]:
    """Every parsed record per shard file, in file order."""
    import tensorflow as tf

    manifest = records.read_manifest(records_dir)
    parse = records.make_parser(cfg.features, with_waveform=manifest["with_waveform"])
    out = {}
    for names in manifest["shards"].values():
        for name in names:
            ds = tf.data.TFRecordDataset(str(records_dir / name), manifest["compression"])
            out[name] = [{k: v.numpy() for k, v in parse(r).items()} for r in ds]
    return out


def _assert_same_records(beam_dir: Path, single_dir: Path, cfg) -> None:
    """Same shards, same ids in the same order, same labels, same features (float tolerance)."""
    got, want = _examples(beam_dir, cfg), _examples(single_dir, cfg)
    assert list(got) == list(want)
    for name in want:
        assert [e["id"] for e in got[name]] == [e["id"] for e in want[name]], name
        for g, w in zip(got[name], want[name]):
            assert (g["fake"], g["real"]) == (w["fake"], w["real"])
            for key in ("mfcc", "mel"):
                assert g[key].shape == w[key].shape
                np.testing.assert_allclose(g[key], w[key], rtol=1e-5, atol=1e-5)


def _assert_same_manifest(beam_dir: Path, single_dir: Path) -> dict:
    got, want = records.read_manifest(beam_dir), records.read_manifest(single_dir)
    assert {k: v for k, v in got.items() if k not in DIFFERENT} == {
        k: v for k, v in want.items() if k not in DIFFERENT
    }
    assert got["runner"]["name"] == "DirectRunner"
    if want["stats"] is None:
        assert got["stats"] is None
    else:
        for key in ("mfcc", "mel"):
            for moment in ("mean", "std"):
                np.testing.assert_allclose(
                    got["stats"][key][moment], want["stats"][key][moment], rtol=1e-9, atol=1e-9
                )
    assert (beam_dir / "errors.csv").read_text() == (single_dir / "errors.csv").read_text()
    plan = json.loads((beam_dir / ".prep" / "plan.json").read_text())
    assert plan["plan_hash"] == got["plan_hash"]
    return got


# --------------------------------------------------------------------------- #
# Parity with prep.run
# --------------------------------------------------------------------------- #
@needs_beam
def test_beam_writes_the_same_records_as_prep_on_the_sample(
    tmp_path, sample_dir, sample_records, tiny_cfg
):
    from deepwave_tf import prep_beam

    result = prep_beam.run(tiny_cfg, sample_dir, tmp_path / "sample")
    assert result.exit_code == 0 and not result.errors
    _assert_same_records(result.out_dir, sample_records, tiny_cfg)
    manifest = _assert_same_manifest(result.out_dir, sample_records)
    assert manifest["split"]["method"] == "group"  # the same speaker-disjoint val split
    assert not (result.out_dir / ".prep" / prep_beam.BATCHES).exists()
    assert not list(result.out_dir.glob("*.incomplete"))


@pytest.fixture
def mixed_data(tmp_path, sample_dir) -> tuple[Path, str]:
    """8 good train clips (4 real, 4 fake), meta.csv, and bad rows: corrupt, empty, missing
    files and a bad label. Returns (data dir, the generator of one fake clip)."""
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    with open(sample_dir / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    good = [r for r in rows if r["label"] == "real"][:4] + [
        r for r in rows if r["label"] == "fake"
    ][:4]
    for r in good:
        shutil.copy(sample_dir / r["path"], data / r["path"])
    shutil.copy(sample_dir / "meta.csv", data / "meta.csv")
    ogg = (data / good[0]["path"]).read_bytes()
    (data / "train" / "truncated.ogg").write_bytes(ogg[: len(ogg) // 3])
    (data / "train" / "empty.ogg").write_bytes(b"")
    with open(data / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "label"])
        w.writerows([r["id"], r["path"], r["label"]] for r in good)
        w.writerow(["BAD_TRUNC", "./train/truncated.ogg", "fake"])
        w.writerow(["BAD_EMPTY", "./train/empty.ogg", "real"])
        w.writerow(["BAD_MISSING", "./train/nowhere.ogg", "real"])
        w.writerow(["BAD_LABEL", good[0]["path"], "spoof"])
    with open(sample_dir / "meta.csv", newline="") as f:
        generator = {r["id"]: r["generator"] for r in csv.DictReader(f)}
    return data, generator[good[-1]["id"]]


@needs_beam
def test_beam_cli_bad_files_derived_rows_and_holdout_match_prep(tmp_path, mixed_data, tiny_cfg):
    """Through the CLI: corrupt files go to errors.csv and the run goes on; augmented views
    ([wavaug]) and a generator-disjoint val (--val-holdout) come out as in prep.run."""
    data, held = mixed_data
    overrides = [
        "prep.batch_size=4",
        "prep.workers=1",
        "wavaug.views_per_clip=1",
        'wavaug.names=["gain"]',
        "wavaug.max_ops=1",
    ]
    cfg = tiny_cfg.replace(
        prep=dataclasses.replace(tiny_cfg.prep, batch_size=4, workers=1, val_holdout=(held,)),
        wavaug=dataclasses.replace(tiny_cfg.wavaug, views_per_clip=1, names=("gain",), max_ops=1),
    )
    single = prep.run(cfg, data, tmp_path / "single" / "recs", progress=False)
    argv = ["--data", str(data), "--out", str(tmp_path / "beam" / "recs")]
    argv += ["--config", str(REPO / "configs" / "tiny.toml"), "--val-holdout", held]
    argv += [a for o in overrides for a in ("--set", o)]
    assert prep.main([*argv, "--runner", "DirectRunner", "--direct_num_workers=1"]) == 0
    beam_dir = tmp_path / "beam" / "recs"

    manifest = _assert_same_manifest(beam_dir, single.out_dir)
    _assert_same_records(beam_dir, single.out_dir, cfg)
    with open(beam_dir / "errors.csv", newline="") as f:
        reasons = {r["id"]: r["reason"] for r in csv.DictReader(f)}
    bad_files = {"BAD_TRUNC", "BAD_EMPTY", "BAD_MISSING"}
    sources = {i.removesuffix("~aug0") for i in reasons}  # a bad file's view fails too
    assert sources == {*bad_files, "BAD_LABEL"}
    assert "truncated Ogg file" in reasons["BAD_TRUNC"]
    assert "empty file (0 bytes)" in reasons["BAD_EMPTY"]
    assert "file not found" in reasons["BAD_MISSING"]
    assert manifest["errors"] == len(reasons) >= 4
    assert manifest["split"]["method"] == "generator"
    assert manifest["split"]["wavaug"]["views_per_clip"] == 1
    ids = [i for i, _ in records.read_ids_and_generators(beam_dir, "train")]
    assert [i for i in ids if i.endswith("~aug0")]  # the views were written
    assert manifest["counts"] == single.manifest["counts"]


# --------------------------------------------------------------------------- #
# Statistics combined across workers
# --------------------------------------------------------------------------- #
@needs_beam
def test_stats_combine_fn_merges_to_the_one_pass_sums(tiny_cfg):
    from deepwave_tf import prep_beam

    fcfg = tiny_cfg.features
    rng = np.random.default_rng(0)
    clips = [
        {
            "mfcc": rng.normal(size=(fcfg.num_frames, fcfg.n_mfcc)).astype(np.float32),
            "mel": rng.normal(3.0, 2.0, size=(fcfg.n_mels, fcfg.num_frames)).astype(np.float32),
        }
        for _ in range(7)
    ]
    fn = prep_beam.StatsCombineFn(fcfg)
    parts = []
    for chunk in (clips[:3], clips[3:4], clips[4:], []):  # uneven workers, one idle
        acc = fn.create_accumulator()
        for clip in chunk:
            acc = fn.add_input(acc, clip)
        parts.append(acc)
    got = prep.combine_stats([fn.extract_output(fn.merge_accumulators(parts))])
    mfcc = np.stack([c["mfcc"] for c in clips]).astype(np.float64)
    mel = np.stack([c["mel"] for c in clips]).astype(np.float64)
    np.testing.assert_allclose(got["mfcc"]["mean"], mfcc.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(got["mfcc"]["std"], mfcc.std(axis=(0, 1)), rtol=1e-9)
    np.testing.assert_allclose(got["mel"]["mean"], mel.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(got["mel"]["std"], mel.std(axis=(0, 2)), rtol=1e-9)


# --------------------------------------------------------------------------- #
# Refusals and the missing extra
# --------------------------------------------------------------------------- #
@needs_beam
def test_object_store_urls_are_refused_with_the_way_out(tmp_path, tiny_cfg):
    from deepwave_tf import prep_beam

    with pytest.raises(prep.PrepError, match=r"--data 'gs://bucket/data'.*mount the bucket"):
        prep_beam.run(tiny_cfg, "gs://bucket/data", tmp_path / "recs")


def test_cli_refuses_resume_and_beam_options_without_runner(tmp_path, capsys):
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "recs")]
    with pytest.raises(SystemExit) as e:
        prep.main([*base, "--runner", "DirectRunner", "--resume"])
    assert e.value.code == 2
    assert "--resume is not supported with --runner" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        prep.main([*base, "--direct_num_workers=2"])
    assert e.value.code == 2
    assert "--direct_num_workers=2 (Beam options need --runner)" in capsys.readouterr().err


def test_missing_apache_beam_names_the_extra(tmp_path, sample_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam -> ImportError
    monkeypatch.delitem(sys.modules, "deepwave_tf.prep_beam", raising=False)
    monkeypatch.delattr(deepwave_tf, "prep_beam", raising=False)  # else `from` finds it
    argv = ["--data", str(sample_dir), "--out", str(tmp_path / "recs"), "--runner", "DirectRunner"]
    assert prep.main(argv) == 2
    err = capsys.readouterr().err
    assert "needs Apache Beam" in err and "pip install 'deepwave_tf[beam]'" in err
    assert not (tmp_path / "recs").exists()  # refused before anything was written
