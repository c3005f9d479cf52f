"""prep: csv -> split -> sharded TFRecords + manifest; bad input, determinism, resume, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf import prep, records
from deepwave_tf.config import load_config

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _small_cfg(tiny_cfg, **prep_fields):
    """tiny config with small feature batches, so small prep runs stay fast."""
    fields = {"batch_size": 4, "num_shards": 2, **prep_fields}
    return tiny_cfg.replace(prep=dataclasses.replace(tiny_cfg.prep, **fields))


def _subset(sample_dir: Path, dest: Path, n_per_label: int, test: int = 0) -> Path:
    """A data dir with the first `n_per_label` real and fake train clips (files copied)."""
    (dest / "train").mkdir(parents=True)
    rows = _csv_rows(sample_dir / "train.csv")
    chosen = [r for r in rows if r["label"] == "real"][:n_per_label]
    chosen += [r for r in rows if r["label"] == "fake"][:n_per_label]
    for r in chosen:
        shutil.copy(sample_dir / r["path"], dest / r["path"])
    _write_csv(
        dest / "train.csv",
        ["id", "path", "label"],
        [[r["id"], r["path"], r["label"]] for r in chosen],
    )
    if test:
        (dest / "test").mkdir()
        trows = _csv_rows(sample_dir / "test.csv")[:test]
        for r in trows:
            shutil.copy(sample_dir / r["path"], dest / r["path"])
        _write_csv(dest / "test.csv", ["id", "path"], [[r["id"], r["path"]] for r in trows])
    return dest


def _read_split(records_dir: Path, split: str, cfg) -> list[dict]:
    import tensorflow as tf

    manifest = records.read_manifest(records_dir)
    parse = records.make_parser(cfg.features, with_waveform=manifest["with_waveform"])
    paths = [str(p) for p in records.shard_paths(records_dir, split)]
    ds = tf.data.TFRecordDataset(paths, compression_type=manifest["compression"]).map(parse)
    return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


def _shard_bytes(records_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(records_dir.glob("*.tfrecord-*"))}


# --------------------------------------------------------------------------- #
# The embedded sample (prepped once by the session fixture)
# --------------------------------------------------------------------------- #
def test_sample_counts_match_csv(sample_records, sample_dir):
    manifest = records.read_manifest(sample_records)
    train_rows = _csv_rows(sample_dir / "train.csv")
    test_rows = _csv_rows(sample_dir / "test.csv")
    counts = manifest["counts"]
    assert counts["train"]["total"] + counts["val"]["total"] == len(train_rows) == 120
    assert counts["test"] == {"total": len(test_rows), "fake": 0, "real": 0}
    for split in ("train", "val"):
        assert counts[split]["fake"] + counts[split]["real"] == counts[split]["total"]
    assert counts["train"]["fake"] + counts["val"]["fake"] == sum(
        r["label"] == "fake" for r in train_rows
    )
    assert manifest["errors"] == 0
    assert (sample_records / "errors.csv").read_text().splitlines() == ["id,path,reason"]


def test_sample_manifest_fields(sample_records, tiny_cfg):
    manifest = records.read_manifest(sample_records)
    expected = {
        "name", "feature_config", "feature_hash", "compression", "with_waveform", "counts",
        "shards", "stats", "split", "versions", "errors", "mel_layout",
    }  # fmt: skip
    assert expected <= set(manifest)
    assert manifest["mel_layout"] == records.MEL_LAYOUT == "time"
    assert manifest["name"] == sample_records.name
    assert manifest["feature_hash"] == tiny_cfg.features.hash()
    records.check_manifest(manifest, tiny_cfg.features)
    assert manifest["compression"] == tiny_cfg.prep.compression
    assert manifest["with_waveform"] is False
    assert manifest["shards"]["train"] == [
        records.shard_name("sample", "train", i, tiny_cfg.prep.num_shards)
        for i in range(tiny_cfg.prep.num_shards)
    ]
    assert len(manifest["shards"]["val"]) == len(manifest["shards"]["test"]) == 1
    assert {"tensorflow-cpu", "numpy", "soundfile"} <= set(manifest["versions"])
    split = manifest["split"]
    assert split == {
        "method": "group",
        "group_column": "speaker_or_voice",
        "group_source": "meta.csv",
        "seed": tiny_cfg.prep.seed,
        "val_fraction": tiny_cfg.prep.val_fraction,
    }
    saved = json.loads((sample_records / "config.json").read_text())
    assert saved == tiny_cfg.to_dict()
    assert (sample_records / "config.toml").is_file()
    assert not list(sample_records.glob("*.incomplete"))


def test_sample_stats_match_records(sample_records, tiny_cfg):
    """Streaming float64 stats equal mean/std recomputed from the train records."""
    stats = records.read_manifest(sample_records)["stats"]
    train = _read_split(sample_records, "train", tiny_cfg)
    mfcc = np.stack([e["mfcc"] for e in train]).astype(np.float64)  # [N, frames, n_mfcc]
    mel = np.stack([e["mel"] for e in train]).astype(np.float64)  # [N, n_mels, frames]
    assert len(stats["mfcc"]["mean"]) == tiny_cfg.features.n_mfcc
    assert len(stats["mel"]["std"]) == tiny_cfg.features.n_mels
    np.testing.assert_allclose(stats["mfcc"]["mean"], mfcc.mean(axis=(0, 1)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["mfcc"]["std"], mfcc.std(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(stats["mel"]["mean"], mel.mean(axis=(0, 2)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["mel"]["std"], mel.std(axis=(0, 2)), rtol=1e-6)


def test_sample_split_is_speaker_disjoint(sample_records, sample_dir, tiny_cfg):
    speaker = {r["id"]: r["speaker_or_voice"] for r in _csv_rows(sample_dir / "meta.csv")}
    labels = {r["id"]: r["label"] for r in _csv_rows(sample_dir / "train.csv")}
    ids = {
        s: [e["id"].decode() for e in _read_split(sample_records, s, tiny_cfg)]
        for s in ("train", "val")
    }
    assert sorted(ids["train"] + ids["val"]) == sorted(labels)  # every row exactly once
    train_speakers = {speaker[i] for i in ids["train"]} - set(prep.NO_GROUP)
    val_speakers = {speaker[i] for i in ids["val"]} - set(prep.NO_GROUP)
    assert val_speakers and not train_speakers & val_speakers
    # Stratified as well as the speakers allow: both labels present in val.
    assert {labels[i] for i in ids["val"]} == {"real", "fake"}
    # Targets agree with the csv labels.
    for e in _read_split(sample_records, "val", tiny_cfg):
        assert (e["fake"], e["real"]) == prep.LABELS[labels[e["id"].decode()]]


def test_sample_test_split_has_unknown_labels(sample_records, tiny_cfg, sample_dir):
    test = _read_split(sample_records, "test", tiny_cfg)
    assert sorted(e["id"].decode() for e in test) == sorted(
        r["id"] for r in _csv_rows(sample_dir / "test.csv")
    )
    assert {(int(e["fake"]), int(e["real"])) for e in test} == {
        (records.UNKNOWN_LABEL, records.UNKNOWN_LABEL)
    }


# --------------------------------------------------------------------------- #
# Splitting (no audio needed)
# --------------------------------------------------------------------------- #
def _rows(n_real: int, n_fake: int) -> list[prep.Row]:
    return [prep.Row(f"R{i}", f"r{i}.ogg", 0, 1) for i in range(n_real)] + [
        prep.Row(f"F{i}", f"f{i}.ogg", 1, 0) for i in range(n_fake)
    ]


def test_group_split_is_disjoint_deterministic_and_stratified():
    rows = _rows(60, 60)
    groups = {r.id: f"spk{i % 17}" for i, r in enumerate(rows)}
    groups.update({"R0": "-", "F0": ""})  # no speaker: own group each
    a = prep.split_train_val(rows, groups, 0.2, seed=7)
    b = prep.split_train_val(rows, groups, 0.2, seed=7)
    assert a == b
    train, val, method = a
    assert method == "group"
    assert sorted(r.id for r in train + val) == sorted(r.id for r in rows)
    assert not {groups[r.id] for r in train} & {groups[r.id] for r in val} - set(prep.NO_GROUP)
    assert abs(sum(r.real for r in val) - 12) <= 2 and abs(sum(r.fake for r in val) - 12) <= 2
    other = prep.split_train_val(rows, groups, 0.2, seed=8)[1]
    assert {r.id for r in other} != {r.id for r in val}


def test_group_split_keeps_oversized_speakers_in_train():
    rows = _rows(30, 30)
    groups = {r.id: "big" if r.real and int(r.id[1:]) < 25 else r.id for r in rows}
    train, val, _ = prep.split_train_val(rows, groups, 0.1, seed=1)
    assert all(groups[r.id] != "big" for r in val)
    assert 4 <= len(val) <= 8


def test_stratified_split_without_groups():
    rows = _rows(40, 60)
    train, val, method = prep.split_train_val(rows, None, 0.2, seed=3)
    assert method == "stratified"
    assert (sum(r.real for r in val), sum(r.fake for r in val)) == (8, 12)
    assert prep.split_train_val(rows, None, 0.2, seed=3)[1] == val
    assert prep.split_train_val(rows, None, 0.0, seed=3) == (rows, [], "none")


def test_shard_assignment_is_deterministic_contiguous_and_complete():
    rows = _rows(10, 11)
    shards = prep.assign_shards(rows, 4, seed=5, split="train")
    assert [len(s) for s in shards] == [5, 5, 6, 5]
    assert sorted(r.id for s in shards for r in s) == sorted(r.id for r in rows)
    assert prep.assign_shards(rows, 4, seed=5, split="train") == shards
    assert prep.assign_shards(rows, 4, seed=6, split="train") != shards
    assert prep.num_shards_for(12, 120, 8) == 1 and prep.num_shards_for(3, 3, 8) == 3
    assert prep.num_shards_for(0, 10, 8) == 0


def test_fix_length_np_matches_features(tiny_cfg):
    from deepwave_tf import features

    rng = np.random.default_rng(0)
    for crop in ("start", "center"):
        for pad in ("end", "center"):
            cfg = dataclasses.replace(tiny_cfg.features, crop=crop, pad=pad, clip_seconds=0.01)
            for n in (0, 1, 319, 320, 321, 1001):
                x = rng.standard_normal(n).astype(np.float32)
                np.testing.assert_array_equal(
                    prep.fix_length_np(x, cfg), features.fix_length(x, cfg).numpy()
                )


# --------------------------------------------------------------------------- #
# Determinism and resume
# --------------------------------------------------------------------------- #
def test_same_seed_same_bytes_and_group_column(tmp_path, sample_dir, tiny_cfg):
    data = _subset(sample_dir, tmp_path / "data", 5)
    # A group column in train.csv itself (no meta.csv here).
    rows = _csv_rows(data / "train.csv")
    _write_csv(
        data / "train.csv",
        ["id", "path", "label", "speaker"],
        [[r["id"], r["path"], r["label"], f"s{i // 2}"] for i, r in enumerate(rows)],
    )
    cfg = _small_cfg(tiny_cfg, group_column="speaker", val_fraction=0.2)
    a = prep.run(cfg, data, tmp_path / "a" / "recs", progress=False)
    b = prep.run(cfg, data, tmp_path / "b" / "recs", progress=False)
    assert a.exit_code == b.exit_code == 0
    assert (
        a.manifest["split"]["method"] == "group"
        and a.manifest["split"]["group_column"] == "speaker"
    )
    assert _shard_bytes(a.out_dir) == _shard_bytes(b.out_dir) != {}
    assert a.manifest["stats"] == b.manifest["stats"]
    val_ids = {e["id"].decode() for e in _read_split(a.out_dir, "val", cfg)}
    train_ids = {e["id"].decode() for e in _read_split(a.out_dir, "train", cfg)}
    spk = {r["id"]: f"s{i // 2}" for i, r in enumerate(rows)}
    assert val_ids and not {spk[i] for i in val_ids} & {spk[i] for i in train_ids}


def test_resume_rebuilds_missing_and_partial_shards(tmp_path, sample_dir, tiny_cfg):
    data = _subset(sample_dir, tmp_path / "data", 5, test=3)
    cfg = _small_cfg(tiny_cfg, num_shards=3)
    ref = prep.run(cfg, data, tmp_path / "ref" / "recs", progress=False)
    out = tmp_path / "run" / "recs"
    prep.run(cfg, data, out, progress=False)
    # Simulate a run killed inside shard 1: shard 1 never renamed, a partial
    # `.incomplete` left behind, no manifest; and a shard whose sidecar is stale.
    names = ref.manifest["shards"]["train"]
    (out / names[1]).rename(out / (names[1] + prep.INCOMPLETE))
    with open(out / (names[1] + prep.INCOMPLETE), "r+b") as f:
        f.truncate(100)
    (out / "manifest.json").unlink()
    sidecar = out / prep.STATE_DIR / (names[2] + ".json")
    sidecar.write_text(sidecar.read_text().replace(ref.manifest["plan_hash"], "0" * 16))
    kept_mtime = (out / names[0]).stat().st_mtime_ns
    result = prep.run(cfg, data, out, resume=True, progress=False)
    assert result.exit_code == 0
    assert (out / names[0]).stat().st_mtime_ns == kept_mtime  # complete shard kept
    assert _shard_bytes(out) == _shard_bytes(ref.out_dir)
    assert result.counts == ref.counts
    assert result.manifest["stats"] == ref.manifest["stats"]
    assert not list(out.glob("*" + prep.INCOMPLETE))


def test_resume_refuses_another_plan(tmp_path, sample_dir, tiny_cfg):
    data = _subset(sample_dir, tmp_path / "data", 3)
    out = tmp_path / "recs"
    prep.run(_small_cfg(tiny_cfg), data, out, progress=False)
    with pytest.raises(prep.PrepError, match=r"prep\.seed: 1125 -> 9.*without --resume"):
        prep.run(_small_cfg(tiny_cfg, seed=9), data, out, resume=True, progress=False)
    # A run by a version that stored the mel band-major is not resumed with time-major shards.
    plan_path = out / prep.STATE_DIR / prep.PLAN
    plan = json.loads(plan_path.read_text())
    del plan["mel_layout"]
    plan["plan_hash"] = "an older plan"
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(prep.PrepError, match=r"mel_layout: None -> 'time'.*without --resume"):
        prep.run(_small_cfg(tiny_cfg), data, out, resume=True, progress=False)


_KILL_WRAPPER = """
import os, signal, sys, time
# A shell's background job (`cmd &` without job control) starts with SIGINT ignored, and
# Python then keeps it ignored: give the child the Ctrl-C of a terminal whatever started us.
signal.signal(signal.SIGINT, signal.default_int_handler)
from deepwave_tf import prep
original = prep._ShardWriter.write
def write(self, *args, **kwargs):
    original(self, *args, **kwargs)
    if self.index == 1 and self.count == 2:  # inside the 2nd shard: wait to be killed
        self.writer.flush()
        print("READY", flush=True)
        time.sleep(120)
prep._ShardWriter.write = write
sys.exit(prep.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_run_killed_mid_shard_then_resumed(tmp_path, sample_dir, tiny_cfg, sig):
    """A real prep process killed inside a shard leaves nothing a reader takes as complete."""
    data = _subset(sample_dir, tmp_path / "data", 6)
    cfg = _small_cfg(tiny_cfg, num_shards=3, val_fraction=0.0)
    overrides = ["prep.batch_size=4", "prep.num_shards=3", "prep.val_fraction=0.0"]
    out = tmp_path / "killed" / "recs"
    argv = [
        "--data",
        str(data),
        "--out",
        str(out),
        "--config",
        str(REPO / "configs" / "tiny.toml"),
        "--no-progress",
    ]
    argv += [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_WRAPPER, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=180)  # TF import + prep on a loaded machine
    finally:
        proc.kill()
    names = [records.shard_name("recs", "train", i, 3) for i in range(3)]
    assert (out / names[0]).is_file()  # first shard complete
    assert not (out / names[1]).exists() and not (out / names[2]).exists()
    assert not (out / "manifest.json").exists()
    with pytest.raises(records.ManifestError):
        records.shard_paths(out, "train")
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "--resume" in stderr and str(out) in stderr
        assert not list(out.glob("*" + prep.INCOMPLETE))  # removed on the way out
    else:
        assert (out / (names[1] + prep.INCOMPLETE)).stat().st_size > 0  # partial, not a shard name
    result = prep.run(cfg, data, out, resume=True, progress=False)
    ref = prep.run(cfg, data, tmp_path / "ref" / "recs", progress=False)
    assert result.counts == ref.counts == {"train": {"total": 12, "fake": 6, "real": 6}}
    assert _shard_bytes(out) == _shard_bytes(ref.out_dir)


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
@pytest.fixture
def bad_data(tmp_path, sample_dir) -> Path:
    """4 good clips plus one row per bad-input case, made from real files."""
    data = _subset(sample_dir, tmp_path / "bad", 2)
    good = _csv_rows(data / "train.csv")
    real_ogg = (data / good[0]["path"]).read_bytes()
    (data / "train" / "truncated.ogg").write_bytes(real_ogg[: len(real_ogg) // 3])
    (data / "train" / "header_only.ogg").write_bytes(real_ogg[:200])
    (data / "train" / "random.ogg").write_bytes(np.random.default_rng(0).bytes(8000))
    (data / "train" / "empty.ogg").write_bytes(b"")
    (data / "train" / "notes.wav").write_text("this is a text file, not audio\n")
    rows = [[r["id"], r["path"], r["label"]] for r in good]
    rows += [
        ["BAD_TRUNC", "./train/truncated.ogg", "fake"],
        ["BAD_HEADER", "./train/header_only.ogg", "fake"],
        ["BAD_RANDOM", "./train/random.ogg", "real"],
        ["BAD_EMPTY", "./train/empty.ogg", "real"],
        ["BAD_TEXT", "./train/notes.wav", "fake"],
        ["BAD_MISSING", "./train/does_not_exist.ogg", "real"],
        ["BAD_DIR", "./train", "real"],
        [good[0]["id"], good[1]["path"], "real"],  # duplicate id
        ["BAD_LABEL", good[2]["path"], "spoof"],
        ["BAD_NOPATH", "", "fake"],
    ]
    _write_csv(data / "train.csv", ["id", "path", "label"], rows)
    return data


EXPECTED_REASONS = {
    "BAD_TRUNC": "truncated Ogg file: last page is incomplete",
    "BAD_HEADER": "truncated Ogg file: last page is incomplete",
    "BAD_RANDOM": "cannot decode audio",
    "BAD_EMPTY": "empty file (0 bytes)",
    "BAD_TEXT": "cannot decode audio",
    "BAD_MISSING": "file not found",
    "BAD_DIR": "is a directory",
    "BAD_LABEL": "label 'spoof' is not 'real' or 'fake'",
    "BAD_NOPATH": "empty path",
}


@pytest.mark.parametrize("backend", ["soundfile", "tfio"])
def test_bad_input_goes_to_errors_csv(tmp_path, bad_data, tiny_cfg, backend):
    cfg = _small_cfg(tiny_cfg, val_fraction=0.0, backend=backend)
    result = prep.run(cfg, bad_data, tmp_path / "out" / "recs", progress=False)
    assert result.exit_code == 0
    assert result.counts == {"train": {"total": 4, "fake": 2, "real": 2}}
    errors = _csv_rows(result.out_dir / "errors.csv")
    assert len(errors) == len(result.errors) == result.manifest["errors"] == 10
    by_id = {}
    for e in errors:
        by_id.setdefault(e["id"], []).append(e)
    for rid, reason in EXPECTED_REASONS.items():
        assert reason in by_id[rid][0]["reason"], (rid, by_id[rid])
    (dup,) = [e for e in errors if "duplicate id" in e["reason"]]
    assert "first seen at train.csv line 2" in dup["reason"] and "line 13" in dup["reason"]
    assert by_id["BAD_MISSING"][0]["path"] == "./train/does_not_exist.ogg"
    assert len(_read_split(result.out_dir, "train", cfg)) == 4
    strict = prep.run(cfg, bad_data, tmp_path / "strict" / "recs", strict=True, progress=False)
    assert strict.exit_code == 1 and strict.counts == result.counts


def test_nothing_usable_is_a_failure(tmp_path, bad_data, tiny_cfg):
    rows = [r for r in _csv_rows(bad_data / "train.csv") if r["id"].startswith("BAD_")]
    _write_csv(bad_data / "train.csv", ["id", "path", "label"], [list(r.values()) for r in rows])
    result = prep.run(_small_cfg(tiny_cfg), bad_data, tmp_path / "recs", progress=False)
    assert result.exit_code == 1
    assert sum(c["total"] for c in result.counts.values()) == 0
    assert "nothing usable" in prep.summary(result)


def test_csv_without_needed_column_fails_at_once(tmp_path, tiny_cfg, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _write_csv(data / "train.csv", ["id", "file", "label"], [["A", "a.ogg", "real"]])
    with pytest.raises(
        prep.PrepError, match=r"train\.csv: missing column 'path' \(has: id, file, label\)"
    ):
        prep.run(tiny_cfg, data, tmp_path / "recs", progress=False)
    assert prep.main(["--data", str(data), "--out", str(tmp_path / "recs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing column 'path'" in err and "Traceback" not in err
    _write_csv(data / "train.csv", ["id", "path"], [["A", "a.ogg"]])
    with pytest.raises(prep.PrepError, match="missing column 'label'"):
        prep.run(tiny_cfg, data, tmp_path / "recs", progress=False)


def test_missing_data_dir_and_csv_are_named(tmp_path, capsys):
    assert prep.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert f"data directory not found: {tmp_path / 'nope'}" in capsys.readouterr().err
    assert prep.main(["--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "has neither train.csv nor test.csv" in capsys.readouterr().err
    (tmp_path / "train.csv").write_text("id,path,label\n")
    assert (
        prep.main(["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--splits", "test"]) == 2
    )
    assert "has no test.csv" in capsys.readouterr().err
    assert (
        prep.main(["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "prep.nope=1"])
        == 2
    )
    assert "prep.nope" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def test_cli_flags(tmp_path, sample_dir, capsys):
    data = _subset(sample_dir, tmp_path / "data", 3, test=2)
    out = tmp_path / "tfrecords" / "cli"
    argv = ["--data", str(data), "--out", str(out), "--config", str(REPO / "configs" / "tiny.toml")]
    argv += ["--set", "prep.batch_size=4", "--set", "prep.compression=GZIP", "--no-progress"]
    assert prep.main([*argv, "--splits", "train", "--with-waveform", "--val-fraction", "0.34"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "no errors" in printed
    manifest = records.read_manifest(out)
    assert set(manifest["shards"]) == {"train", "val"}
    assert manifest["with_waveform"] is True and manifest["compression"] == "GZIP"
    assert manifest["split"]["val_fraction"] == 0.34
    assert manifest["counts"]["train"]["total"] + manifest["counts"]["val"]["total"] == 6
    cfg = load_config(out / "config.toml")
    assert cfg.prep.store_waveform and cfg.prep.compression == "GZIP"
    (example, *_) = _read_split(out, "train", cfg)
    assert example["waveform"].shape == (cfg.features.num_samples,)
    # test only, into the same directory: earlier outputs are replaced.
    assert prep.main([*argv, "--splits", "test"]) == 0
    manifest = records.read_manifest(out)
    assert set(manifest["shards"]) == {"test"} and manifest["stats"] is None
    assert sorted(p.name for p in out.glob("*.tfrecord-*")) == manifest["shards"]["test"]


def test_resume_reuses_the_saved_config_and_says_what_it_kept(tmp_path, sample_dir, capsys):
    """`--resume` alone finishes a run made with another config (issue 12, item 4)."""
    data = _subset(sample_dir, tmp_path / "data", 3)
    out = tmp_path / "recs"
    argv = ["--data", str(data), "--out", str(out), "--no-progress"]
    options = ["--config", str(REPO / "configs" / "tiny.toml"), "--set", "prep.batch_size=4"]
    options += ["--set", "prep.num_shards=3", "--set", "prep.val_fraction=0.0"]
    assert prep.main([*argv, *options]) == 0
    ref = _shard_bytes(out)
    names = sorted(ref)
    assert len(names) == 3  # not the default 8 shards
    (out / names[1]).unlink()  # as if interrupted in the middle shard
    (out / "manifest.json").unlink()
    capsys.readouterr()
    assert prep.main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"resume: using the config saved in {out / 'config.toml'}\n" in printed
    assert f"resume: kept 2 of 3 shards (complete, same plan) in {out}; writing 1\n" in printed
    assert _shard_bytes(out) == ref
    # The interrupt hint is that exact command.
    hint = prep.resume_hint(data, out, None)
    assert f"\n  python -m deepwave_tf.prep --data {data} --out {out} --resume\n" in hint
    assert "--resume --splits train,test\n" in prep.resume_hint(data, out, ["train", "test"])
