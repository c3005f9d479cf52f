"""records: the one TFRecord schema round-trips; the manifest guards the feature config."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from deepwave_tf import records
from deepwave_tf.features import LABEL_KEYS, MEL, MFCC, WAVEFORM

KEYS = {records.ID, MFCC, MEL, *LABEL_KEYS}


def _dataset(records_dir, split, parser, batch=None):
    manifest = records.read_manifest(records_dir)
    paths = [str(p) for p in records.shard_paths(records_dir, split)]
    ds = tf.data.TFRecordDataset(paths, compression_type=manifest["compression"])
    if batch:
        ds = ds.batch(batch)
    return ds.map(parser)


def test_every_record_parses_back(sample_records, tiny_cfg):
    manifest = records.read_manifest(sample_records)
    parse = records.make_parser(tiny_cfg.features)
    seen = {}
    assert set(manifest["shards"]) <= set(records.SPLITS)
    for split in manifest["shards"]:
        n = fake = real = 0
        for ex in _dataset(sample_records, split, parse):
            assert set(ex) == KEYS
            assert ex[MFCC].shape == tiny_cfg.features.mfcc_shape == (313, 40)
            assert ex[MEL].shape == tiny_cfg.features.mel_shape == (128, 313)
            assert ex[MFCC].dtype == ex[MEL].dtype == tf.float32
            assert np.all(np.isfinite(ex[MEL])) and np.all(np.isfinite(ex[MFCC]))
            rid = ex[records.ID].numpy().decode()
            assert rid not in seen, (
                f"{rid} in both {seen.get(rid)} and {split}"
            )  # no example in two splits
            seen[rid] = split
            n += 1
            fake += max(int(ex["fake"]), 0)
            real += max(int(ex["real"]), 0)
            if split != "test":
                assert int(ex["fake"]) + int(ex["real"]) == 1
        assert manifest["counts"][split] == {"total": n, "fake": fake, "real": real}
    assert len(seen) == 160


def test_batched_parser_equals_single(sample_records, tiny_cfg):
    single = list(_dataset(sample_records, "val", records.make_parser(tiny_cfg.features)))
    batched = next(
        iter(
            _dataset(sample_records, "val", records.make_parser(tiny_cfg.features, batched=True), 5)
        )
    )
    assert batched[MEL].shape == (5, 128, 313) and batched[MFCC].shape == (5, 313, 40)
    for i in range(5):
        for key in KEYS:
            np.testing.assert_array_equal(batched[key][i].numpy(), single[i][key].numpy())


def test_serialize_round_trip_is_exact_with_waveform(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg.features, clip_seconds=0.1)
    rng = np.random.default_rng(0)
    feats = {
        MFCC: rng.standard_normal(cfg.mfcc_shape).astype(np.float32),
        MEL: rng.standard_normal(cfg.mel_shape).astype(np.float32),
    }
    wave = rng.standard_normal(cfg.num_samples).astype(np.float32)
    blob = records.serialize_example(
        "TEST_1", feats, records.UNKNOWN_LABEL, records.UNKNOWN_LABEL, wave
    )
    ex = records.make_parser(cfg, with_waveform=True)(tf.constant(blob))
    assert set(ex) == KEYS | {WAVEFORM}
    assert ex[records.ID].numpy() == b"TEST_1"
    assert int(ex["fake"]) == int(ex["real"]) == records.UNKNOWN_LABEL
    np.testing.assert_array_equal(ex[MFCC].numpy(), feats[MFCC])
    np.testing.assert_array_equal(ex[MEL].numpy(), feats[MEL])
    np.testing.assert_array_equal(ex[WAVEFORM].numpy(), wave)
    # A record written without the waveform fails to parse when one is required.
    plain = records.serialize_example("x", feats, 1, 0)
    with pytest.raises(tf.errors.InvalidArgumentError):
        records.make_parser(cfg, with_waveform=True)(tf.constant(plain))


def test_mel_is_stored_time_major_and_parsed_in_either_layout(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg.features, clip_seconds=0.1)
    n_mels, frames = cfg.mel_shape
    rng = np.random.default_rng(1)
    feats = {
        MFCC: rng.standard_normal(cfg.mfcc_shape).astype(np.float32),
        MEL: rng.standard_normal(cfg.mel_shape).astype(np.float32),  # band-major, as computed
    }
    blob = records.serialize_example("x", feats, 1, 0)
    example = tf.train.Example.FromString(blob)
    stored = np.frombuffer(example.features.feature[MEL].bytes_list.value[0], "<f4")
    assert records.MEL_LAYOUT == "time"
    np.testing.assert_array_equal(stored.reshape(frames, n_mels), feats[MEL].T)

    # Records written before the layout changed hold the mel band-major.
    example.features.feature[MEL].bytes_list.value[0] = feats[MEL].astype("<f4").tobytes()
    old = example.SerializeToString()
    for layout, blob_ in (("time", blob), ("band", old)):
        for batched in (False, True):
            arg = tf.constant([blob_, blob_]) if batched else tf.constant(blob_)
            lead = (2,) if batched else ()
            band = records.make_parser(cfg, batched=batched, stored_layout=layout)(arg)[MEL]
            time = records.make_parser(
                cfg, batched=batched, stored_layout=layout, time_major_mel=True
            )(arg)[MEL]
            assert band.shape == lead + (n_mels, frames) and time.shape == lead + (frames, n_mels)
            np.testing.assert_array_equal(band.numpy(), np.broadcast_to(feats[MEL], band.shape))
            np.testing.assert_array_equal(time.numpy(), np.broadcast_to(feats[MEL].T, time.shape))
    with pytest.raises(ValueError, match="stored_layout must be one of"):
        records.make_parser(cfg, stored_layout="diagonal")


def test_mel_layout_of_a_manifest():
    assert records.mel_layout({"mel_layout": "time"}) == "time"
    assert records.mel_layout({}) == "band"  # written before the manifest recorded it
    with pytest.raises(records.ManifestError, match="unknown mel_layout 'diagonal'"):
        records.mel_layout({"mel_layout": "diagonal"})


def test_shard_name():
    assert records.shard_name("dev", "train", 3, 8) == "dev-train.tfrecord-00003-of-00008"


def test_check_manifest_names_differing_fields(sample_records, tiny_cfg):
    manifest = records.read_manifest(sample_records)
    records.check_manifest(manifest, tiny_cfg.features)  # same config: fine
    other = dataclasses.replace(tiny_cfg.features, n_mels=64, hop_length_samples=256)
    with pytest.raises(records.ManifestError) as info:
        records.check_manifest(manifest, other, where=sample_records)
    message = str(info.value)
    assert "n_mels: records have 128, config has 64" in message
    assert "hop_length_samples: records have 512, config has 256" in message
    assert "n_mfcc" not in message and str(sample_records) in message


def test_check_manifest_names_the_front_end_field(sample_records, tiny_cfg):
    manifest = records.read_manifest(sample_records)
    assert "sequence" not in manifest["feature_config"]  # default front-end: as before
    lfcc = dataclasses.replace(tiny_cfg.features, sequence="lfcc")
    with pytest.raises(records.ManifestError) as info:
        records.check_manifest(manifest, lfcc)
    message = str(info.value)
    assert "sequence: records have 'mfcc', config has 'lfcc'" in message
    assert "image" not in message and "n_lfcc" not in message
    # and the other way round: LFCC records, default config
    lfcc_manifest = {"feature_config": lfcc.hashed_fields(), "feature_hash": lfcc.hash()}
    records.check_manifest(lfcc_manifest, lfcc)
    with pytest.raises(
        records.ManifestError, match="sequence: records have 'lfcc', config has 'mfcc'"
    ):
        records.check_manifest(lfcc_manifest, tiny_cfg.features)


@pytest.mark.parametrize(
    "sequence,image", [("lfcc", "linear"), ("phase", "phase"), ("mel", "mfcc")]
)
def test_front_end_round_trip_is_exact(tiny_cfg, sequence, image):
    from deepwave_tf import features

    f = dataclasses.replace(
        tiny_cfg.features, sequence=sequence, image=image, linear_bins=32, phase_bands=8
    )
    y = np.random.default_rng(0).standard_normal(f.num_samples).astype(np.float32) * 0.1
    feats = {k: v.numpy() for k, v in features.compute_features(y, f).items()}
    serialized = records.serialize_example("clip", feats, 1, 0)
    parsed = records.make_parser(f)(tf.constant(serialized))
    assert set(parsed) == {records.ID, *f.feature_keys, *LABEL_KEYS}
    for key in f.feature_keys:
        assert parsed[key].shape == f.feature_shape(key)
        np.testing.assert_array_equal(parsed[key].numpy(), feats[key])
    # band-major tensors lie time-major on disk, as the mel does
    example = tf.train.Example.FromString(serialized)
    raw = np.frombuffer(example.features.feature[image].bytes_list.value[0], "<f4")
    stored = feats[image] if f.time_major(image) else feats[image].T
    np.testing.assert_array_equal(raw, stored.ravel())


def test_missing_manifest_split_or_shard(sample_records, tmp_path):
    with pytest.raises(
        records.ManifestError, match="no manifest.json in .*python -m deepwave_tf.prep"
    ):
        records.read_manifest(tmp_path)
    with pytest.raises(records.ManifestError, match="has no 'holdout' split"):
        records.shard_paths(sample_records, "holdout")
    copy = tmp_path / "copy"
    shutil.copytree(sample_records, copy)
    victim = records.read_manifest(copy)["shards"]["train"][1]
    (copy / victim).unlink()
    with pytest.raises(records.ManifestError, match=f"missing: .*{victim}"):
        records.shard_paths(copy, "train")
