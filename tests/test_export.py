"""export.py and calibration.py: temperature scaling, the SavedModel round trip and parity,
a fresh-process load without keras / tensorflow-io / deepwave_tf, saved_model_cli.

The export is made once per session from an untrained tiny model (its final layer
scaled up so its probabilities spread out and are over-confident), calibrated by
Platt scaling on the sample records' 12 validation clips (forced past the guard, so
the graph carries a scale and a bias); `tiny_export_dir` is shared with the predict,
submit and evaluate tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf import calibration, metrics

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- #
# The shared export
# --------------------------------------------------------------------------- #
def make_tiny_run(run_dir: Path, cfg, records_dir: Path, logit_scale: float = 20.0) -> Path:
    """A fit-like run dir: config.json/toml, run.json, model.keras with random weights."""
    import keras

    from deepwave_tf import model as model_lib
    from deepwave_tf import records

    manifest = records.read_manifest(records_dir)
    keras.utils.set_random_seed(1125)
    model = model_lib.build_model(cfg, manifest["stats"])
    scores = model.get_layer("scores")
    kernel, bias = scores.get_weights()
    scores.set_weights([kernel * logit_scale, bias])
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    cfg.save(run_dir)
    (run_dir / "run.json").write_text(
        json.dumps({"records": str(Path(records_dir).resolve()), "stats": manifest["stats"]})
    )
    return run_dir


# The sample has 12 validation clips, below the guard's 100: force Platt scaling so the shared
# export exercises a calibration with a bias (test_export_guard_keeps_none_... covers the default).
TINY_EXPORT_CALIBRATION = ["export.calibration=platt", "export.calibration_min_clips=10"]


def tiny_export_dir(tmp_path_factory, sample_records: Path, tiny_cfg) -> Path:
    """The session's export (made on first use, reused by every test module)."""
    from deepwave_tf import export

    base = tmp_path_factory.getbasetemp() / "tiny_run"
    done = base / "EXPORT_DIR"
    if done.is_file():
        return Path(done.read_text())
    run_dir = make_tiny_run(base, tiny_cfg, sample_records)
    out = export.run(run_dir, verbose=False, overrides=TINY_EXPORT_CALIBRATION)
    done.write_text(str(out))
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, sample_records, tiny_cfg) -> Path:
    return tiny_export_dir(tmp_path_factory, sample_records, tiny_cfg)


@pytest.fixture(scope="module")
def run_dir(export_dir) -> Path:
    return export_dir.parent.parent


@pytest.fixture(scope="module")
def metadata(export_dir) -> dict:
    return json.loads((export_dir / "assets" / "deepwave.json").read_text())


@pytest.fixture(scope="module")
def logits_model(run_dir):
    import keras

    from deepwave_tf import model as model_lib

    return model_lib.logits_model(keras.saving.load_model(run_dir / "model.keras", compile=False))


# --------------------------------------------------------------------------- #
# calibration.py on synthetic logits
# --------------------------------------------------------------------------- #
def _overconfident(n: int, seed: int, scale: float = 4.0):
    """Targets drawn from sigmoid(z); the 'model' reports scale * z (over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=n)
    y = (rng.uniform(size=n) < calibration.sigmoid(z)).astype(float)
    return scale * z, y


def test_temperature_lowers_ece_on_held_out_fold():
    fit_z, fit_y = _overconfident(4000, seed=0)
    test_z, test_y = _overconfident(4000, seed=1)
    t = calibration.fit_temperature(fit_z, fit_y)
    assert t == pytest.approx(4.0, rel=0.1)  # it recovers the over-confidence factor
    before = metrics.expected_calibration_error(test_y, calibration.sigmoid(test_z))
    after = metrics.expected_calibration_error(test_y, calibration.apply_temperature(test_z, t))
    assert before > 0.1
    assert after < 0.03
    assert after < before / 4
    # It minimises the log loss (a neighbour is never better) and leaves the ranking alone.
    loss = calibration.temperature_log_loss(fit_z, fit_y, t)
    assert loss <= calibration.temperature_log_loss(fit_z, fit_y, t * 1.01)
    assert loss <= calibration.temperature_log_loss(fit_z, fit_y, t / 1.01)
    assert metrics.roc_auc(test_y, calibration.apply_temperature(test_z, t)) == pytest.approx(
        metrics.roc_auc(test_y, calibration.sigmoid(test_z))
    )


def test_under_confident_logits_get_temperature_below_one():
    z, y = _overconfident(4000, seed=2, scale=0.5)
    assert calibration.fit_temperature(z, y) == pytest.approx(0.5, rel=0.1)


def test_softmax_head_shares_one_temperature_and_keeps_real_one_minus_fake():
    d, y = _overconfident(2000, seed=3)
    logits = np.stack([d, -d], axis=1)  # the softmax head's binary logits
    targets = np.stack([y, 1 - y], axis=1)
    temps = calibration.fit_temperatures(logits, targets, shared=True)
    assert temps[0] == temps[1]
    probs = calibration.apply_temperature(logits, temps)
    np.testing.assert_allclose(probs[:, 0] + probs[:, 1], 1.0, atol=1e-12)
    # Independent temperatures may differ when the columns disagree; shared ones never do.
    skewed = np.stack([d, -0.5 * d], axis=1)
    assert len(set(calibration.fit_temperatures(skewed, targets, shared=True))) == 1
    free = calibration.fit_temperatures(skewed, targets, shared=False)
    assert free[0] == pytest.approx(2 * free[1], rel=1e-3)


def test_uncalibrate_inverts_temperature():
    z = np.linspace(-8, 8, 33)
    np.testing.assert_allclose(
        calibration.uncalibrate(calibration.apply_temperature(z, 2.5), 2.5),
        calibration.sigmoid(z),
        atol=1e-9,
    )


def test_fit_temperature_refuses_single_class():
    with pytest.raises(calibration.CalibrationError, match="all 5 validation targets are 1"):
        calibration.fit_temperature(np.arange(5.0), np.ones(5))
    with pytest.raises(calibration.CalibrationError, match="no validation rows"):
        calibration.fit_temperature([], [])


def test_fit_calibration_falls_back_per_column_with_a_warning():
    from deepwave_tf import export
    from deepwave_tf.config import ExportConfig

    z, y = _overconfident(500, seed=4, scale=3.0)
    logits = np.stack([z, z], axis=1)
    targets = np.stack([y, np.zeros_like(y)], axis=1)  # "real" never present
    calib = export.fit_calibration(logits, targets, head="multilabel")
    assert [calib.outputs[k]["method"] for k in ("fake", "real")] == ["temperature", "none"]
    assert calib.temperatures[0] == pytest.approx(3.0, rel=0.2)
    assert (calib.temperatures[1], calib.bias[1]) == (1.0, 0.0)
    assert calib.warnings == [
        "real: all 500 validation targets are 0: calibration needs both classes, so the raw "
        "probabilities are kept (method none)"
    ]
    assert calib.report["fake"]["method"] == "temperature"
    # Logits that rank the clips backwards: the best T is infinite; it stops at the bound, with a warning.
    backwards = np.stack([-z, z], axis=1)
    settings = ExportConfig(calibration="temperature")
    calib = export.fit_calibration(backwards, np.stack([y, y], axis=1), "multilabel", settings)
    assert calib.temperatures[0] == pytest.approx(4.0, rel=1e-3)  # the default range's top
    assert calib.warnings[-1] == (
        "fake: T = 4 is at the upper bound of export.calibration_temperature_range: on the "
        "validation split the logits barely predict the targets (an untrained model or a tiny "
        "split); its probabilities are flattened towards the validation base rate"
    )


# --------------------------------------------------------------------------- #
# The export
# --------------------------------------------------------------------------- #
def test_export_layout_and_metadata(export_dir, run_dir, metadata, tiny_cfg, sample_records):
    assert export_dir.parent == run_dir / "export"
    assert re.fullmatch(r"\d{8}T\d{6}Z", export_dir.name)
    for name in (
        "saved_model.pb",
        "variables",
        "fingerprint.pb",
        "assets/deepwave.json",
        "parity.json",
    ):
        assert (export_dir / name).exists(), name
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".")]  # no partial left
    assert metadata["labels"] == ["fake", "real"]
    exported_cfg = tiny_cfg.replace(
        export=dataclasses.replace(tiny_cfg.export, calibration="platt", calibration_min_clips=10)
    )
    assert (
        metadata["config"] == exported_cfg.to_dict()
    )  # the run's config + TINY_EXPORT_CALIBRATION
    assert metadata["feature_config"] == tiny_cfg.to_dict()["features"]
    assert metadata["feature_hash"] == tiny_cfg.features.hash()
    assert metadata["records"] == str(sample_records.resolve())
    calib = metadata["calibration"]
    assert calib["fitted"] and not calib["shared"]
    assert calib["n_val"] == 12  # the sample's validation split
    assert calib["map"] == "sigmoid(scale * logit + bias)"
    # The tiny model's warnings can only be: a T at its bound, or Platt worse than none out of fold.
    for w in calib["warnings"]:
        assert re.fullmatch(
            r"(fake|real): (T = \S+ is at the (upper|lower) bound of "
            r"export.calibration_temperature_range: .*|export.calibration = platt is worse .*)",
            w,
        ), w
    temps = metadata["temperatures"]
    assert temps == [1 / a for a in calib["scale"]]
    assert all(t > 1.0 for t in temps)  # the scaled-up model is over-confident
    for i, label in enumerate(["fake", "real"]):
        out = calib["outputs"][label]
        assert out["method"] == "platt"
        assert out["reason"] == "export.calibration = platt"
        assert (out["scale"], out["bias"]) == (calib["scale"][i], calib["bias"][i])
        assert set(out["cv"]) == {"folds", "none", "temperature", "platt"}  # 6 of each class
        row = calib["metrics"][label]
        assert (row["method"], row["temperature"], row["bias"]) == ("platt", temps[i], out["bias"])
        assert set(row["before"]) == set(row["after"]) == {"brier", "ece", "log_loss"}
        assert row["after"]["log_loss"] < row["before"]["log_loss"]
    assert any(b != 0.0 for b in calib["bias"])
    parity = json.loads((export_dir / "parity.json").read_text())
    assert parity["max_abs_diff"] <= 1e-5
    assert len(parity["clips"]) >= 4 + 3 + 4  # val records, source audio, synthetic


def test_export_guard_keeps_none_on_the_tiny_validation_split(
    logits_model, sample_records, tiny_cfg
):
    """Default settings on the sample's 12 validation clips: the raw probabilities, and why."""
    from deepwave_tf import export

    logits, targets = export.validation_logits(logits_model, sample_records, tiny_cfg)
    assert logits.shape == targets.shape == (12, 2)
    calib = export.fit_calibration(logits, targets, tiny_cfg.model.head, tiny_cfg.export)
    meta = export.calibration_metadata(calib)
    assert meta["scale"] == [1.0, 1.0] and meta["bias"] == [0.0, 0.0]
    assert [meta["outputs"][k]["method"] for k in ("fake", "real")] == ["none", "none"]
    assert meta["outputs"]["real"]["reason"] == "guard: 12 validation clips < 100"
    assert meta["warnings"] == [
        "only 12 validation clips (export.calibration_min_clips = 100): too few to fit a "
        "calibration that carries over to new data, so the raw probabilities are kept "
        "(method none for fake and real); give validation more clips (a larger "
        "prep.val_fraction) or lower export.calibration_min_clips"
    ]
    for k in ("fake", "real"):
        assert meta["metrics"][k]["before"] == meta["metrics"][k]["after"]
    json.dumps(meta)  # plain JSON types only


def test_calibration_set_mixes_each_validation_clip_once_per_pass(
    logits_model, sample_records, tiny_cfg
):
    import dataclasses

    from deepwave_tf import export

    cfg = tiny_cfg.replace(export=dataclasses.replace(tiny_cfg.export, calibration_passes=3))
    assert cfg.augment.val_mixing
    logits, targets, clips = export.calibration_set(logits_model, sample_records, cfg)
    assert logits.shape == targets.shape == (36, 2)
    np.testing.assert_array_equal(clips, np.tile(np.arange(12), 3))
    first, _ = export.validation_logits(logits_model, sample_records, cfg)
    np.testing.assert_array_equal(logits[:12], first)  # pass 1 is what one pass gave
    assert not np.allclose(logits[12:24], logits[:12])  # the next passes are mixed anew
    calib = export.fit_calibration(logits, targets, cfg.model.head, cfg.export, clips)
    assert calib.n_val == 12  # clips, not rows
    assert calib.outputs["fake"]["reason"] == "guard: 12 validation clips < 100"
    # without validation mixing every pass would be the same: one pass
    plain = cfg.replace(augment=dataclasses.replace(cfg.augment, val_mixing=False))
    logits, _, clips = export.calibration_set(logits_model, sample_records, plain)
    assert logits.shape == (12, 2) and clips.tolist() == list(range(12))


def test_waveform_endpoint_matches_model_on_prep_features(
    export_dir, metadata, logits_model, sample_records, sample_dir, tiny_cfg
):
    """serving_default(decoded test clip) == logits model on prep's stored features + calibration."""
    import tensorflow as tf

    from deepwave_tf import audio, records

    loaded = tf.saved_model.load(str(export_dir))
    parse = records.make_parser(tiny_cfg.features)
    shards = [str(p) for p in records.shard_paths(sample_records, "test")]
    checked = []
    for ex in tf.data.TFRecordDataset(shards).map(parse).take(3):
        clip_id = ex["id"].numpy().decode()
        wav = audio.load(sample_dir / "test" / f"{clip_id}.ogg", tiny_cfg.features.sample_rate_hz)
        out = loaded.signatures["serving_default"](waveform=tf.constant(wav[None]))
        got = np.array([out["fake"].numpy()[0], out["real"].numpy()[0]])
        z = logits_model({"mfcc": ex["mfcc"][None], "mel": ex["mel"][None, ..., None]}).numpy()[0]
        want = calibration.apply_affine(
            z, metadata["calibration"]["scale"], metadata["calibration"]["bias"]
        )
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=clip_id)
        # The features endpoint on the same stored features.
        out = loaded.signatures["features"](mfcc=ex["mfcc"][None], mel=ex["mel"][None])
        np.testing.assert_allclose(
            [out["fake"].numpy()[0], out["real"].numpy()[0]], want, atol=1e-6
        )
        checked.append((clip_id, got))
    assert len(checked) == 3
    # Not a constant model: the clips get different scores.
    assert np.ptp([g[0] for _, g in checked]) > 1e-3


def test_serving_default_any_length_and_batch(export_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    rng = np.random.default_rng(0)
    for n in (1000, 160000, 250000):  # shorter than, equal to, longer than the 5 s window
        out = serve(waveform=tf.constant(0.1 * rng.standard_normal((3, n)), tf.float32))
        assert set(out) == {"fake", "real"}
        for v in out.values():
            assert v.shape == (3,)
            assert np.all((v.numpy() >= 0) & (v.numpy() <= 1))
    # A batch gives the same probabilities as its clips one by one.
    wav = (0.1 * rng.standard_normal((3, 160000))).astype(np.float32)
    batch = serve(waveform=tf.constant(wav))["fake"].numpy()
    single = [serve(waveform=tf.constant(w[None]))["fake"].numpy()[0] for w in wav]
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_long_waveform_is_windowed_in_the_graph(export_dir, metadata):
    """serving_default on 11.5 s = the numpy windows' scores combined by export.aggregate;
    `windows` returns those per-window scores with their times (not the centre 5 s)."""
    import tensorflow as tf

    from deepwave_tf import serving
    from deepwave_tf.config import config_from_dict

    cfg = config_from_dict(metadata["config"])
    sr, size = cfg.features.sample_rate_hz, cfg.features.num_samples
    loaded = tf.saved_model.load(str(export_dir))
    rng = np.random.default_rng(7)
    # Loud noise in the first 2 s, a quiet tone after: the windows really differ.
    t = np.arange(int(11.5 * sr)) / sr
    wav = np.where(t < 2.0, 0.5 * rng.standard_normal(t.size), 0.05 * np.sin(2 * np.pi * 220 * t))
    wav = wav.astype(np.float32)
    cut = serving.windows(wav, cfg.features, cfg.export.window_hop_seconds)
    assert cut.shape == (4, size)  # starts 0, 2.5, 5, 6.5 s
    serve = loaded.signatures["serving_default"]
    per_window = np.stack(
        [serve(waveform=tf.constant(cut))[k].numpy() for k in ("fake", "real")], -1
    )
    assert np.ptp(per_window[:, 0]) > 1e-3
    whole = serve(waveform=tf.constant(wav[None]))
    np.testing.assert_allclose(
        [whole["fake"].numpy()[0], whole["real"].numpy()[0]],
        per_window.max(axis=0),  # export.aggregate = "max"
        atol=1e-6,
    )
    out = loaded.signatures["windows"](waveform=tf.constant(np.stack([wav, wav[::-1]])))
    assert {k: v.shape for k, v in out.items()} == {
        k: (2, 4) for k in ("fake", "real", "start_s", "end_s")
    }
    np.testing.assert_allclose(out["fake"].numpy()[0], per_window[:, 0], atol=1e-6)
    np.testing.assert_allclose(out["real"].numpy()[0], per_window[:, 1], atol=1e-6)
    np.testing.assert_allclose(out["start_s"].numpy()[1], [0, 2.5, 5, 6.5], atol=1e-6)
    np.testing.assert_allclose(out["end_s"].numpy()[1], [5, 7.5, 10, 11.5], atol=1e-6)
    # A short clip: one padded window that ends where the clip ends.
    short = loaded.signatures["windows"](waveform=tf.constant(wav[None, : sr // 2]))
    assert short["start_s"].numpy().tolist() == [[0.0]]
    assert short["end_s"].numpy().tolist() == [[0.5]]


def test_waveform_rank_and_dtype_errors(export_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    wav = (0.1 * np.random.default_rng(3).standard_normal(40000)).astype(np.float32)
    for name in ("serving_default", "windows"):
        sig = loaded.signatures[name]
        # [samples] is one clip, on purpose.
        np.testing.assert_array_equal(
            sig(waveform=tf.constant(wav))["fake"].numpy(),
            sig(waveform=tf.constant(wav[None]))["fake"].numpy(),
        )
        for bad in (tf.constant(wav[None, None]), tf.constant(0.5)):
            with pytest.raises(
                tf.errors.InvalidArgumentError,
                match=r"waveform must be float32 \[batch, samples\] \(or \[samples\] for one clip\)",
            ):
                sig(waveform=bad)
        with pytest.raises(
            tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double"
        ):
            sig(waveform=tf.constant(wav[None].astype(np.float64)))


FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf

m = tf.saved_model.load(sys.argv[1])
wav = np.random.default_rng(0).standard_normal((2, 48000)).astype("float32") * 0.1
out = m.signatures["serving_default"](waveform=tf.constant(wav))
feat = m.signatures["features"](mfcc=tf.zeros([1, 313, 40]), mel=tf.zeros([1, 128, 313]))
meta = json.loads(m.signatures["metadata"]()["json"].numpy())
loaded = sorted({k.split(".")[0] for k in sys.modules} & {"keras", "tf_keras", "tensorflow_io", "deepwave_tf"})
print(json.dumps({
    "fake": out["fake"].numpy().tolist(), "real": out["real"].numpy().tolist(),
    "features_fake": feat["fake"].numpy().tolist(),
    "labels": meta["labels"], "temperatures": meta["temperatures"], "modules": loaded,
}))
"""


def test_loads_in_fresh_process_without_keras_tfio_or_package(
    export_dir, metadata, tmp_path, bare_tensorflow
):
    """Stock TensorFlow only: keras, tensorflow_io and deepwave_tf cannot even be imported.

    `import tensorflow` itself imports keras when it is installed; a package of the same
    name that raises ImportError, first on PYTHONPATH, stands in for a TF Serving
    environment without it (TF tolerates the failed import).
    """
    import tensorflow as tf

    got = bare_tensorflow(FRESH_PROCESS, export_dir, cwd=tmp_path)
    assert got["modules"] == []
    assert got["labels"] == ["fake", "real"]
    assert got["temperatures"] == metadata["temperatures"]
    # Same numbers as in this process.
    loaded = tf.saved_model.load(str(export_dir))
    wav = np.random.default_rng(0).standard_normal((2, 48000)).astype("float32") * 0.1
    here = loaded.signatures["serving_default"](waveform=tf.constant(wav))
    np.testing.assert_allclose(got["fake"], here["fake"].numpy(), atol=1e-6)
    np.testing.assert_allclose(got["real"], here["real"].numpy(), atol=1e-6)


def test_saved_model_cli_lists_signatures(export_dir):
    proc = subprocess.run(
        [str(VENV_BIN / "saved_model_cli"), "show", "--all", "--dir", str(export_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for needle in (
        "signature_def['serving_default']",
        "inputs['waveform']",
        "shape: unknown_rank",
        "signature_def['windows']",
        "outputs['start_s']",
        "outputs['end_s']",
        "signature_def['features']",
        "inputs['mfcc']",
        "shape: (-1, 313, 40)",
        "inputs['mel']",
        "shape: (-1, 128, 313)",
        "outputs['fake']",
        "outputs['real']",
        "signature_def['metadata']",
        "outputs['json']",
    ):
        assert needle in out, needle
    # The serving_default block itself names its input and both outputs.
    block = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert (
        "inputs['waveform']" in block and "outputs['fake']" in block and "outputs['real']" in block
    )


def test_parity_check_fails_loudly(export_dir, logits_model, metadata, tiny_cfg):
    from deepwave_tf import export

    n = tiny_cfg.features.num_samples
    clips = [
        ("white noise", (0.1 * np.random.default_rng(1).standard_normal(n)).astype(np.float32))
    ]
    wrong = np.asarray(metadata["temperatures"]) * 3  # the in-memory side disagrees with the graph
    with pytest.raises(export.ExportParityError) as e:
        export.check_parity(export_dir, logits_model, tiny_cfg, wrong, metadata, [], clips)
    message = str(e.value)
    assert "differs from the in-memory model on white noise via 'serving_default'" in message
    assert "max |difference| = " in message and "> export.parity_atol = 1e-05" in message


def test_export_cli_errors(tmp_path, capsys, tiny_cfg):
    from deepwave_tf import export

    assert export.main(["--run-dir", str(tmp_path / "missing")]) == 2
    assert "is not a run directory: no config.json" in capsys.readouterr().err
    tiny_cfg.save(tmp_path / "run")
    assert export.main(["--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: calibration needs the validation records")
    assert "pass --records DIR or --no-calibrate" in err
    assert (
        export.main(["--run-dir", str(tmp_path / "run"), "--records", str(tmp_path / "nope")]) == 2
    )
    assert "records directory not found" in capsys.readouterr().err
    assert export.main(["--run-dir", str(tmp_path / "run"), "--set", "model.lstm_units=3"]) == 2
    assert "only export.* can be changed at export time" in capsys.readouterr().err
    assert export.main(["--run-dir", str(tmp_path / "run"), "--no-calibrate"]) == 2
    assert "no model.keras in" in capsys.readouterr().err


def test_load_run_config_layers_export_settings(tmp_path, tiny_cfg):
    """export: the run's config <- [export] of --config <- --set export.* (issue 12, items 1, 2)."""
    from deepwave_tf import export
    from deepwave_tf.config import ConfigError

    tiny_cfg.save(tmp_path)
    extra = tmp_path / "extra.toml"
    extra.write_text("[export]\nparity_atol = 1e-4\naggregate = 'max'\n[model]\nlstm_units = 99\n")
    cfg = export.load_run_config(tmp_path, ["export.aggregate=mean"], extra)
    assert cfg.export.parity_atol == 1e-4 and cfg.export.aggregate == "mean"
    assert cfg.model == tiny_cfg.model  # the trained model's sections do not change
    with pytest.raises(ConfigError, match=r"'export\.aggregat' given with --set"):
        export.load_run_config(tmp_path, ["export.aggregat=mean"])


# --------------------------------------------------------------------------- #
# A model with the waveform branch (sincnet.py)
# --------------------------------------------------------------------------- #
FRESH_WAVEFORM = """
import json, sys
import numpy as np
import tensorflow as tf

m = tf.saved_model.load(sys.argv[1])
wav = np.load(sys.argv[2])
out = m.signatures["serving_default"](waveform=tf.constant(wav))
win = m.signatures["windows"](waveform=tf.constant(wav))
loaded = sorted({k.split(".")[0] for k in sys.modules} & {"keras", "tensorflow_io", "deepwave_tf"})
print(json.dumps({
    "fake": out["fake"].numpy().tolist(), "real": out["real"].numpy().tolist(),
    "windows_fake": win["fake"].numpy().tolist(),
    "feature_inputs": sorted(m.signatures["features"].structured_input_signature[1]),
    "modules": loaded,
}))
"""


def test_waveform_branch_export_matches_keras_in_a_bare_tensorflow_process(
    tmp_path_factory, waveform_records, wave_cfg, bare_tensorflow
):
    """serving is unchanged (raw waveform in); each window's samples reach the branch."""
    import keras
    import tensorflow as tf

    from deepwave_tf import export, features, serving
    from deepwave_tf import model as model_lib

    base = tmp_path_factory.mktemp("wave_run")
    run_dir = make_tiny_run(base / "run", wave_cfg, waveform_records, logit_scale=5.0)
    out_dir = export.run(run_dir, verbose=False)
    metadata = json.loads((out_dir / "assets" / "deepwave.json").read_text())
    n = wave_cfg.features.num_samples
    assert f"waveform [batch, {n}]" in metadata["signatures"]["features"]

    # Two clips of 1.5 windows (two windows each), different content.
    rng = np.random.default_rng(7)
    wav = (0.1 * rng.standard_normal((2, 3 * n // 2))).astype(np.float32)
    t = np.arange(wav.shape[1]) / wave_cfg.features.sample_rate_hz
    wav[1] += (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    np.save(base / "wav.npy", wav)

    got = bare_tensorflow(FRESH_WAVEFORM, out_dir, base / "wav.npy", cwd=base)
    assert got["modules"] == []
    assert got["feature_inputs"] == ["mel", "mfcc", "waveform"]

    # The Keras model on the same windows: features and samples of each window.
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    logits_model = model_lib.logits_model(model)
    temps = np.asarray(metadata["temperatures"])
    for b in range(2):
        cut = serving.windows(wav[b], wave_cfg.features, wave_cfg.export.window_hop_seconds)
        assert cut.shape == (2, n)
        feats = features.compute_features(tf.constant(cut), wave_cfg.features)
        x = {"mfcc": feats["mfcc"], "mel": feats["mel"][..., None], "waveform": tf.constant(cut)}
        probs = calibration.apply_temperature(np.asarray(logits_model(x, training=False)), temps)
        np.testing.assert_allclose(got["windows_fake"][b], probs[:, 0], atol=1e-5)
        np.testing.assert_allclose(got["fake"][b], probs[:, 0].max(), atol=1e-5)
        np.testing.assert_allclose(got["real"][b], probs[:, 1].max(), atol=1e-5)
    # The `features` endpoint takes the samples too, and they matter: the same mfcc and mel
    # with another waveform give other logits, and the endpoint follows the Keras model on
    # that mismatched input (compared in logits: an untrained tiny model may saturate).
    sig = tf.saved_model.load(str(out_dir)).signatures["features"]
    feats = features.compute_features(tf.constant(wav[:1, :n]), wave_cfg.features)

    def keras_logits(samples):
        x = {"mfcc": feats["mfcc"], "mel": feats["mel"][..., None], "waveform": samples}
        return np.asarray(logits_model(x, training=False))[0]

    own, other = keras_logits(tf.constant(wav[:1, :n])), keras_logits(tf.constant(wav[1:, :n]))
    assert np.abs(own - other).max() > 1e-3
    out = sig(mfcc=feats["mfcc"], mel=feats["mel"], waveform=tf.constant(wav[1:, :n]))
    expected = calibration.apply_temperature(other[None], temps)[0]
    np.testing.assert_allclose(float(out["fake"][0]), expected[0], atol=1e-5)
    np.testing.assert_allclose(float(out["real"][0]), expected[1], atol=1e-5)
