"""data.py: batches, exact record contents, manifest checks, determinism, val mixing, compression."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from deepwave_tf import data, records
from deepwave_tf.features import MEL, MFCC
from deepwave_tf.records import ManifestError


def plain(cfg, **data_fields):
    """`cfg` without augmentation or val mixing (data fields overridden)."""
    return cfg.replace(
        augment=dataclasses.replace(cfg.augment, enabled=False, val_mixing=False),
        data=dataclasses.replace(cfg.data, **data_fields),
    )


def small_bank(cfg):
    """`cfg` with a 1-per-kind noise bank: the same code, 6x less synthesis time."""
    return cfg.replace(augment=dataclasses.replace(cfg.augment, noise_bank_per_kind=1))


def record_table(records_dir, split, cfg):
    """Every record of `split` parsed directly: {mfcc bytes: (mel, fake, real)}."""
    parse = records.make_parser(cfg.features, batched=True)
    table = {}
    for path in records.shard_paths(records_dir, split):
        ex = parse(tf.stack(list(tf.data.TFRecordDataset(str(path)))))
        for i in range(int(ex["fake"].shape[0])):
            table[ex[MFCC][i].numpy().tobytes()] = (
                ex[MEL][i].numpy(),
                int(ex["fake"][i]),
                int(ex["real"][i]),
            )
    return table


@pytest.fixture(scope="module")
def train_table(sample_records, tiny_cfg):
    return record_table(sample_records, "train", tiny_cfg)


def collect(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append({k: v.numpy() for k, v in x.items()})
        ys.append({k: v.numpy() for k, v in y.items()})
    return xs, ys


@pytest.mark.parametrize("training", [False, True])
def test_batches_hold_exactly_the_records_without_augmentation(
    sample_records, tiny_cfg, train_table, training
):
    cfg = plain(tiny_cfg, batch_size=16)
    manifest = records.read_manifest(sample_records)
    table = train_table
    assert len(table) == manifest["counts"]["train"]["total"]
    f = cfg.features
    seen = set()
    for x, y in data.make_dataset(sample_records, "train", cfg, training=training):
        n = x[MFCC].shape[0]
        assert x[MFCC].shape == (n, f.num_frames, f.n_mfcc)
        assert x[MEL].shape == (n, f.n_mels, f.num_frames, 1)
        assert x[MFCC].dtype == x[MEL].dtype == y["fake"].dtype == y["real"].dtype == tf.float32
        for i in range(n):
            key = x[MFCC][i].numpy().tobytes()
            mel, fake, real = table[key]  # KeyError = an mfcc that is in no record
            np.testing.assert_array_equal(x[MEL][i, :, :, 0].numpy(), mel)  # bit-identical
            assert (float(y["fake"][i]), float(y["real"][i])) == (fake, real)
            seen.add(key)
    assert seen == set(table)  # every record exactly once per epoch


def test_batch_sizes_and_cardinality(sample_records, tiny_cfg):
    cfg = plain(tiny_cfg, batch_size=16)
    total = records.read_manifest(sample_records)["counts"]["train"]["total"]
    ds = data.make_dataset(sample_records, "train", cfg, training=False)
    sizes = [int(y["fake"].shape[0]) for _, y in ds]
    assert sum(sizes) == total and all(s == 16 for s in sizes[:-1])
    assert int(ds.cardinality()) == -(-total // 16)  # known: Keras needs it (see data.py)
    rep = data.make_dataset(sample_records, "train", cfg, training=True, repeat=True)
    assert len(list(rep.take(len(sizes) + 3))) == len(sizes) + 3


def test_mismatched_manifest_is_refused_naming_the_fields(sample_records, tiny_cfg):
    other = tiny_cfg.replace(
        features=dataclasses.replace(tiny_cfg.features, n_mfcc=20, hop_length_samples=256)
    )
    with pytest.raises(ManifestError) as err:
        data.make_dataset(sample_records, "train", other, training=True)
    msg = str(err.value)
    assert "n_mfcc: records have 40, config has 20" in msg
    assert "hop_length_samples: records have 512, config has 256" in msg
    assert str(sample_records) in msg


def test_missing_records_and_split_errors(sample_records, tiny_cfg, tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        data.make_dataset(tmp_path / "nope", "train", tiny_cfg, training=True)
    with pytest.raises(ManifestError, match="no manifest.json"):
        data.make_dataset(tmp_path, "train", tiny_cfg, training=True)
    with pytest.raises(ManifestError, match="unlabelled test clips"):
        data.make_dataset(sample_records, "test", tiny_cfg, training=True)
    with pytest.raises(ManifestError, match="no 'dev' split"):
        data.make_dataset(sample_records, "dev", tiny_cfg, training=False)


def test_test_split_can_be_read_for_prediction(sample_records, tiny_cfg):
    total = records.read_manifest(sample_records)["counts"]["test"]["total"]
    ys = [y for _, y in data.make_dataset(sample_records, "test", tiny_cfg, training=False)]
    fake = np.concatenate([y["fake"].numpy() for y in ys])
    assert fake.shape == (total,) and (fake == records.UNKNOWN_LABEL).all()


def test_unknown_labels_in_a_labelled_split_fail_loudly(sample_records, tiny_cfg, tmp_path):
    """A 'train' shard that holds test records (-1 targets) is an error, not silent training."""
    bad = tmp_path / "bad"
    shutil.copytree(sample_records, bad)
    manifest = records.read_manifest(bad)
    manifest["shards"]["train"] = manifest["shards"]["test"]
    manifest["counts"]["train"] = manifest["counts"]["test"]
    records.write_manifest(bad, manifest)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown fake target"):
        list(data.make_dataset(bad, "train", plain(tiny_cfg), training=True))


def test_deterministic_mode_repeats_batches_and_augmentation(sample_records, tiny_cfg, train_table):
    cfg = small_bank(
        tiny_cfg.replace(data=dataclasses.replace(tiny_cfg.data, deterministic=True, batch_size=32))
    )
    assert cfg.augment.enabled
    a = collect(data.make_dataset(sample_records, "train", cfg, training=True))
    b = collect(data.make_dataset(sample_records, "train", cfg, training=True))
    for (xa, ya), (xb, yb) in zip(zip(*a), zip(*b)):
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k])
        for k in ya:
            np.testing.assert_array_equal(ya[k], yb[k])
    # augmentation really changed the features (the mixing path ran)
    x0 = a[0][0][MFCC]
    assert sum(x0[i].tobytes() in train_table for i in range(len(x0))) < len(x0)


def band_layout_copy(src, dst):
    """`src` rewritten as deepwave_tf wrote records before `mel_layout`: mel band-major."""
    dst.mkdir()
    manifest = records.read_manifest(src)
    frames, n_mels = records.feature_config_from_manifest(manifest).mel_shape[::-1]
    for names in manifest["shards"].values():
        for name in names:
            with tf.io.TFRecordWriter(str(dst / name)) as writer:
                for blob in tf.data.TFRecordDataset(str(src / name)):
                    ex = tf.train.Example.FromString(blob.numpy())
                    mel = ex.features.feature[MEL].bytes_list.value
                    time_major = np.frombuffer(mel[0], "<f4").reshape(frames, n_mels)
                    mel[0] = np.ascontiguousarray(time_major.T).tobytes()
                    writer.write(ex.SerializeToString())
    del manifest["mel_layout"]
    records.write_manifest(dst, manifest)
    return dst


def test_records_with_the_old_band_major_mel_give_the_same_batches(
    sample_records, tiny_cfg, tmp_path
):
    old = band_layout_copy(sample_records, tmp_path / "old")
    det = small_bank(
        tiny_cfg.replace(data=dataclasses.replace(tiny_cfg.data, deterministic=True, batch_size=32))
    )
    mixed_val = det.replace(augment=dataclasses.replace(det.augment, val_mixing=True))
    for cfg, split, training in (
        (plain(tiny_cfg), "val", False),  # parsed band-major for the model
        (det, "train", True),  # parsed time-major for the augmentation
        (mixed_val, "val", False),
    ):
        new_x, new_y = collect(data.make_dataset(sample_records, split, cfg, training=training))
        old_x, old_y = collect(data.make_dataset(old, split, cfg, training=training))
        assert len(new_x) == len(old_x) > 0
        for a, b in zip(new_x + new_y, old_x + old_y):
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
        assert new_x[0][MEL].shape[1:] == (128, 313, 1)


def test_training_epochs_differ(sample_records, tiny_cfg):
    cfg = small_bank(
        tiny_cfg.replace(data=dataclasses.replace(tiny_cfg.data, deterministic=True, batch_size=32))
    )
    ds = data.make_dataset(sample_records, "train", cfg, training=True)
    e1 = next(iter(ds))[0][MEL].numpy()
    e2 = next(iter(ds))[0][MEL].numpy()
    assert not np.array_equal(e1, e2)  # reshuffled and re-augmented each epoch


def test_val_mixing_is_fixed_across_epochs_and_changes_targets(sample_records, tiny_cfg):
    cfg = tiny_cfg.replace(
        augment=dataclasses.replace(
            tiny_cfg.augment,
            val_mixing=True,
            mix_prob=1.0,
            noise_only_prob=0.0,
            silence_prob=0.0,
            noise_bank_per_kind=1,
        ),
        data=dataclasses.replace(tiny_cfg.data, batch_size=32),
    )
    ds = data.make_dataset(sample_records, "val", cfg, training=False)
    a, b = collect(ds), collect(ds)
    for k in (MFCC, MEL):
        np.testing.assert_array_equal(
            np.concatenate([x[k] for x in a[0]]), np.concatenate([x[k] for x in b[0]])
        )
    fake = np.concatenate([y["fake"] for y in a[1]])
    real = np.concatenate([y["real"] for y in a[1]])
    # The plain val targets, and the union over each (example, partner) pair.
    pa, pb = collect(
        data.make_dataset(sample_records, "val", plain(cfg, batch_size=32), training=False)
    )
    fake0 = np.concatenate([y["fake"] for y in pb])
    assert len(fake) == len(fake0)
    assert ((fake >= fake0) & ((fake + real) >= 1)).all()  # a union never loses a voice
    assert ((fake == 1) & (real == 1)).any()  # some real+fake mixtures
    assert not np.array_equal(
        np.concatenate([x[MEL] for x in a[0]]), np.concatenate([x[MEL] for x in pa])
    )


def test_cache_gives_the_same_batches(sample_records, tiny_cfg, train_table):
    val_cfg = small_bank(tiny_cfg.replace(data=dataclasses.replace(tiny_cfg.data, cache=True)))
    a = collect(data.make_dataset(sample_records, "val", val_cfg, training=False))
    b = collect(data.make_dataset(sample_records, "val", small_bank(tiny_cfg), training=False))
    for xa, xb in zip(a[0], b[0]):
        np.testing.assert_array_equal(xa[MEL], xb[MEL])
    cached = plain(tiny_cfg, cache=True, batch_size=200)
    (x1,), _ = collect(data.make_dataset(sample_records, "train", cached, training=True))
    assert {x1[MFCC][i].tobytes() for i in range(len(x1[MFCC]))} == set(train_table)


def test_gzip_compressed_records(sample_records, tiny_cfg, tmp_path):
    """Shards written with GZIP and `compression: GZIP` in the manifest read back identically."""
    out = tmp_path / "gz"
    out.mkdir()
    manifest = json.loads((sample_records / records.MANIFEST).read_text())
    for name in manifest["shards"]["train"]:
        with tf.io.TFRecordWriter(str(out / name), options="GZIP") as w:
            for raw in tf.data.TFRecordDataset(str(sample_records / name)):
                w.write(raw.numpy())
    manifest["compression"] = "GZIP"
    manifest["shards"] = {"train": manifest["shards"]["train"]}
    records.write_manifest(out, manifest)
    cfg = plain(tiny_cfg, batch_size=200)
    (xg,), _ = collect(data.make_dataset(out, "train", cfg, training=False))
    (xp,), _ = collect(data.make_dataset(sample_records, "train", cfg, training=False))
    np.testing.assert_array_equal(xg[MEL], xp[MEL])


def test_load_stats(sample_records, tiny_cfg):
    stats = data.load_stats(sample_records)
    assert len(stats[MFCC]["mean"]) == tiny_cfg.features.n_mfcc
    assert len(stats[MEL]["std"]) == tiny_cfg.features.n_mels


# --------------------------------------------------------------------------- #
# The waveform branch's input
# --------------------------------------------------------------------------- #
def test_waveform_branch_gets_the_stored_waveform_of_each_record(waveform_records, wave_cfg):
    from deepwave_tf import protocol
    from deepwave_tf.features import WAVEFORM

    parse = records.make_parser(wave_cfg.features, with_waveform=True, batched=True)
    stored = {}
    for path in records.shard_paths(waveform_records, "val"):
        ex = parse(tf.stack(list(tf.data.TFRecordDataset(str(path)))))
        for i in range(int(ex["fake"].shape[0])):
            stored[ex[MFCC][i].numpy().tobytes()] = ex[WAVEFORM][i].numpy()
    n = wave_cfg.features.num_samples
    seen = 0
    for x, _ in data.make_dataset(waveform_records, "val", wave_cfg, training=False):
        assert sorted(x) == [MEL, MFCC, WAVEFORM] and x[WAVEFORM].shape[1:] == (n,)
        for mfcc, wav in zip(x[MFCC].numpy(), x[WAVEFORM].numpy()):
            np.testing.assert_array_equal(wav, stored[mfcc.tobytes()])  # the same record's
            seen += 1
    assert seen == len(stored) > 0
    # The protocol's reader feeds it too; a model without the branch does not get it.
    (_, _, feats, _), *_ = protocol.read_split(waveform_records, "val", wave_cfg)
    assert feats[WAVEFORM].shape[1:] == (n,)
    x, _ = next(
        iter(
            data.make_dataset(
                waveform_records,
                "val",
                plain(
                    wave_cfg.replace(model=dataclasses.replace(wave_cfg.model, branches=("stats",)))
                ),
                training=False,
            )
        )
    )
    assert sorted(x) == [MEL, MFCC]


def test_records_without_waveform_are_refused_for_the_waveform_branch(
    sample_records, wave_cfg, tmp_path
):
    from deepwave_tf import fit, protocol

    cfg = wave_cfg.replace(prep=dataclasses.replace(wave_cfg.prep, store_waveform=False))
    want = (
        r"hold no waveform, but model.branches=\['waveform', 'stats'\].*prep.store_waveform = true"
    )
    with pytest.raises(ManifestError, match=want):
        data.make_dataset(sample_records, "train", cfg, training=True)
    with pytest.raises(ManifestError, match=want):
        next(protocol.read_split(sample_records, "val", cfg))
    with pytest.raises(ManifestError, match=want):
        fit.run(cfg, sample_records, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()  # refused before writing anything
