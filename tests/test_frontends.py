"""The non-default front-ends end to end: prep -> fit -> export -> a bare TensorFlow process.

One tiny 1-epoch training, on a slice of the sample cut to 2 s clips, with LFCC (and deltas)
in the BiLSTM and phase in the CNN; the log-linear spectrogram is exported from an untrained
model without records (training adds nothing the first test does not check). mfcc and mel are
the default's, covered by test_export.py. `export.run` itself reloads the SavedModel and checks
every endpoint against the Keras model (`export.check_parity`); these tests add a fresh
process without keras or deepwave_tf, and the records' manifest guard.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from deepwave_tf import data, export, fit, prep, records
from deepwave_tf.config import CONFIG_DIR, load_config
from deepwave_tf.features import LABEL_KEYS
from deepwave_tf.model import logits_model

TRAIN_CLIPS = 32  # of the sample's 120 (both labels); val = a quarter of the speakers


def _slice_of_sample(sample_dir, out):
    """`out` with the first TRAIN_CLIPS train rows of each label and 2 test rows, same audio."""
    out.mkdir()
    for table, keep in (("train.csv", TRAIN_CLIPS // 2), ("test.csv", 2)):
        with open(sample_dir / table, newline="") as f:
            rows = list(csv.DictReader(f))
        by_label: dict[str, list] = {}
        for row in rows:
            by_label.setdefault(row.get("label", ""), []).append(row)
        chosen = [r for group in by_label.values() for r in group[:keep]]
        with open(out / table, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(chosen)
        for row in chosen:
            (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample_dir / row["path"], out / row["path"])
    shutil.copy(sample_dir / "meta.csv", out / "meta.csv")
    return out


LFCC_PHASE = ["features.sequence=lfcc", "features.lfcc_deltas=2", "features.n_lfcc=20",
              "features.image=phase", "features.phase_bands=8",
              "model.branches=['mfcc', 'mel', 'stats']"]  # fmt: skip
LINEAR = ["features.image=linear", "features.linear_bins=64"]
TINY = [
    "features.clip_seconds=2.0",
    "augment.enabled=false",
    "augment.val_mixing=false",
    "prep.val_fraction=0.25",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "train.monitor=val_loss",
    "train.tensorboard_images=1",
    "data.batch_size=8",
]

BARE_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf

m = tf.saved_model.load(sys.argv[1])
wav = np.load(sys.argv[2])
out = m.signatures["serving_default"](waveform=tf.constant(wav))
sig = m.signatures["features"]
loaded = sorted({k.split(".")[0] for k in sys.modules} & {"keras", "tensorflow_io", "deepwave_tf"})
print(json.dumps({
    "fake": out["fake"].numpy().tolist(), "real": out["real"].numpy().tolist(),
    "feature_inputs": sorted(sig.structured_input_signature[1]), "modules": loaded,
}))
"""


@pytest.fixture(scope="module")
def sample_slice(tmp_path_factory, sample_dir):
    return _slice_of_sample(sample_dir, tmp_path_factory.mktemp("slice") / "data")


def test_prep_fit_export_round_trip(sample_slice, tmp_path, bare_tensorflow):
    import tensorflow as tf

    cfg = load_config(CONFIG_DIR / "tiny.toml", [*TINY, *LFCC_PHASE])
    f = cfg.features
    out = tmp_path / "records"
    result = prep.run(cfg, sample_slice, out, progress=False)
    assert result.exit_code == 0, result

    # prep stores exactly the chosen tensors, records the choice, and has their statistics
    manifest = records.read_manifest(out)
    assert manifest["feature_hash"] == f.hash()
    assert manifest["feature_config"]["sequence"] == "lfcc"
    assert manifest["feature_config"]["image"] == "phase"
    assert set(manifest["stats"]) == {"lfcc", "phase"}
    assert len(manifest["stats"]["lfcc"]["mean"]) == len(manifest["stats"]["lfcc"]["std"]) == 60
    assert len(manifest["stats"]["phase"]["mean"]) == 32  # 4 rows per band
    (serialized,) = tf.data.TFRecordDataset(str(records.shard_paths(out, "train")[0])).take(1)
    stored = set(tf.train.Example.FromString(serialized.numpy()).features.feature)
    assert stored - {records.GENERATOR} == {records.ID, "lfcc", "phase", *LABEL_KEYS}

    # a consumer with the default front-end refuses these records, naming the fields
    default = load_config(CONFIG_DIR / "tiny.toml", ["features.clip_seconds=2.0"])
    with pytest.raises(records.ManifestError) as info:
        data.make_dataset(out, "train", default, training=True)
    assert "sequence: records have 'lfcc', config has 'mfcc'" in str(info.value)
    assert "image: records have 'phase', config has 'mel'" in str(info.value)

    run_dir = tmp_path / "run"
    model = fit.run(cfg, out, run_dir, verbose=0)
    assert set(model.input) == {"lfcc", "phase"}
    export_dir = export.run(run_dir, verbose=False)  # reloads and checks parity itself
    _bare_process_matches_keras(export_dir, run_dir, cfg, tmp_path, bare_tensorflow)


def test_untrained_linear_export_matches_in_a_bare_process(tmp_path, bare_tensorflow):
    import keras

    from deepwave_tf import model as model_lib

    cfg = load_config(CONFIG_DIR / "tiny.toml", [*TINY, *LINEAR])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.utils.set_random_seed(7)
    model_lib.build_model(cfg).save(run_dir / "model.keras")
    cfg.save(run_dir)
    # no records: no calibration, parity on synthetic clips only
    export_dir = export.run(run_dir, calibrate=False, verbose=False)
    _bare_process_matches_keras(export_dir, run_dir, cfg, tmp_path, bare_tensorflow)


def test_clean_voice_export_matches_in_a_bare_process(tmp_path, bare_tensorflow):
    """configs/clean_voice.toml (LFCC without the 80 dB floor, first-difference statistics)
    exports a graph that a bare TensorFlow process runs to the Keras model's numbers."""
    import keras
    import tensorflow as tf

    from deepwave_tf import features
    from deepwave_tf import model as model_lib

    cfg = load_config(CONFIG_DIR / "clean_voice.toml", ["features.clip_seconds=2.0"])
    assert cfg.features.top_db == 0.0 and cfg.model.stats_moments == ("diff_abs", "diff_std")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.utils.set_random_seed(11)
    model = model_lib.build_model(cfg)
    # small scores, so that the parity below compares unsaturated probabilities
    scores = model.get_layer("scores")
    kernel, bias = scores.get_weights()
    scores.set_weights([0.01 * np.random.default_rng(1).standard_normal(kernel.shape), bias])
    model.save(run_dir / "model.keras")
    cfg.save(run_dir)
    wav = (0.1 * np.random.default_rng(0).standard_normal((2, cfg.features.num_samples))).astype(
        np.float32
    )
    x = features.model_inputs(features.compute_features(tf.constant(wav), cfg.features))
    probs = np.asarray(model(x)["fake"])
    assert ((probs > 0.05) & (probs < 0.95)).all(), probs
    export_dir = export.run(run_dir, calibrate=False, verbose=False)
    _bare_process_matches_keras(export_dir, run_dir, cfg, tmp_path, bare_tensorflow)


def _bare_process_matches_keras(export_dir, run_dir, cfg, tmp_path, bare_tensorflow):
    """A bare TensorFlow process (no keras, no deepwave_tf) gives the Keras model's numbers."""
    import tensorflow as tf

    from deepwave_tf import features

    f = cfg.features
    meta = json.loads((export_dir / "assets" / "deepwave.json").read_text())
    assert meta["feature_hash"] == f.hash()
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal((2, f.num_samples))).astype(np.float32)
    np.save(tmp_path / "wav.npy", wav)
    got = bare_tensorflow(BARE_PROCESS, export_dir, tmp_path / "wav.npy", cwd=tmp_path)
    assert got["modules"] == []
    assert got["feature_inputs"] == sorted(f.feature_keys)
    x = features.model_inputs(features.compute_features(tf.constant(wav), f))
    logits = np.asarray(logits_model(export.load_model(run_dir))(x, training=False))
    want = 1.0 / (1.0 + np.exp(-logits / np.asarray(meta["temperatures"])))
    np.testing.assert_allclose(got["fake"], want[:, 0], atol=1e-5)
    np.testing.assert_allclose(got["real"], want[:, 1], atol=1e-5)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("frontend_*.toml")), ids=lambda p: p.stem)
def test_shipped_front_end_configs_build(path):
    """Each configs/frontend_*.toml is the default model reading its front-end."""
    from deepwave_tf import model as model_lib

    cfg = load_config(path)
    default = load_config(CONFIG_DIR / "default.toml")
    assert not cfg.augment.enabled and not cfg.augment.val_mixing
    changed = {
        k for k, v in cfg.model.__dict__.items() if k != "name" and v != getattr(default.model, k)
    }
    assert not changed, f"{path.name} changes the model: {changed}"
    model = model_lib.build_model(cfg)
    f = cfg.features
    assert {k: tuple(v.shape[1:]) for k, v in model.input.items()} == model_lib.input_shapes(f)
    assert set(model.input) == set(f.feature_keys)


@pytest.mark.parametrize("name", ["stats_linear"])
def test_shipped_candidates_on_other_front_ends_build(name):
    """Candidate configs on another front-end build and take exactly their stored tensors."""
    from deepwave_tf import model as model_lib

    cfg = load_config(CONFIG_DIR / f"{name}.toml")
    assert cfg.features.feature_keys != ("mfcc", "mel")
    model = model_lib.build_model(cfg)
    assert set(model.input) == set(cfg.features.feature_keys)
    assert {k: tuple(v.shape[1:]) for k, v in model.input.items()} == model_lib.input_shapes(
        cfg.features
    )
