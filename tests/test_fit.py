"""fit.py: run dir layout, resume after a kill, mirrored strategy, val_score, CLI errors."""

from __future__ import annotations

import csv
import dataclasses
import json

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deepwave_tf import data, fit, metrics
from deepwave_tf import model as model_lib
from deepwave_tf.config import ConfigError, load_config
from deepwave_tf.features import LABEL_KEYS

# Small and fast: 2 steps of 8 clips per epoch, a 1-per-kind noise bank, a strided first conv.
FAST = [
    "train.steps_per_epoch=2",
    "data.batch_size=8",
    "augment.noise_bank_per_kind=1",
    "model.first_conv_stride=2",
    "train.tensorboard_images=2",
]


def fast_cfg(*overrides):
    from deepwave_tf.config import CONFIG_DIR

    return load_config(CONFIG_DIR / "tiny.toml", [*FAST, *overrides])


class KillAfter(keras.callbacks.Callback):
    """Simulates a kill: raises at the end of epoch `n` (after the backup was written)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.n:
            raise KeyboardInterrupt(f"killed after epoch {epoch + 1}")


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)


def history_rows(run_dir):
    with (run_dir / fit.HISTORY).open() as f:
        return list(csv.DictReader(f))


def tb_tags(path):
    acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
    acc.Reload()
    return set(acc.Tags()["tensors"])


def test_killed_run_resumes_at_the_next_epoch_and_writes_the_run_dir(sample_records, tmp_path):
    cfg = fast_cfg("train.epochs=2")
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="killed after epoch 1"):
        fit.run(cfg, sample_records, run_dir, callbacks=[KillAfter(1)], verbose=0)
    assert [r["epoch"] for r in history_rows(run_dir)] == ["0"]
    assert any((run_dir / "checkpoints" / "backup").iterdir())
    assert json.loads((run_dir / fit.RUN_JSON).read_text())["status"] == "running"

    recorder = EpochRecorder()
    model = fit.run(cfg, sample_records, run_dir, callbacks=[recorder], verbose=0)
    assert recorder.begun == [1]  # continued at epoch 2 (1-based) and did not redo epoch 1
    rows = history_rows(run_dir)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for column in (
        "loss",
        "val_loss",
        "val_score",
        "val_auc",
        "val_brier",
        "val_ece",
        "fake_auc",
        "real_f1",
        "val_fake_brier",
    ):
        assert column in rows[0], column
    assert not (run_dir / "checkpoints" / "backup").exists()  # removed after a completed run

    # run dir layout and run.json
    for name in ("config.json", "config.toml", "run.json", "history.csv", "model.keras"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoints" / fit.BEST_WEIGHTS).is_file()
    assert load_config(run_dir / "config.toml") == cfg
    info = json.loads((run_dir / fit.RUN_JSON).read_text())
    assert info["status"] == "completed" and info["resumed"] is True
    assert info["records"] == str(sample_records.resolve())
    assert info["feature_hash"] == cfg.features.hash()
    assert info["stats"] == data.load_stats(sample_records)
    aucs = [float(r["val_auc"]) for r in rows]
    assert info["best_epoch"] == int(np.argmax(aucs)) + 1
    assert info["best"]["val_auc"] == pytest.approx(max(aucs))

    # model.keras holds the best weights, and so does the returned model
    saved = keras.models.load_model(run_dir / "model.keras")
    best = model_lib.build_model(cfg, info["stats"])
    best.load_weights(run_dir / "checkpoints" / fit.BEST_WEIGHTS)
    for a, b, c in zip(saved.get_weights(), best.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert [layer.name for layer in saved.layers] == [layer.name for layer in best.layers]

    # val_score of the best epoch = the challenge score of the best model on the (mixed) val split
    val = data.make_dataset(sample_records, "val", cfg, training=False)
    prob = model.predict(val, verbose=0)
    y_true = np.concatenate([np.stack([yy[k].numpy() for k in LABEL_KEYS], 1) for _, yy in val])
    score = metrics.challenge_score(y_true, np.stack([prob[k] for k in LABEL_KEYS], 1))
    assert float(rows[info["best_epoch"] - 1]["val_score"]) == pytest.approx(
        score["score"], abs=1e-5
    )

    # TensorBoard: scalars, val_score, spectrogram images, hparams
    tb = run_dir / "tb"
    assert {"epoch_loss", "epoch_fake_auc"} <= tb_tags(tb / "train")
    assert {"epoch_score", "epoch_auc", "epoch_loss"} <= tb_tags(tb / "validation")
    assert {"val_log_mel", "train_log_mel"} <= tb_tags(tb / "images")
    assert {"_hparams_/session_start_info", "best_val_auc"} <= tb_tags(tb / "hparams")


def test_mirrored_strategy_runs_with_the_softmax_head(sample_records, tmp_path):
    cfg = fast_cfg(
        "train.epochs=1",
        "train.steps_per_epoch=2",
        "train.steps_per_execution=2",
        "model.head=softmax",
        "train.monitor=val_score",
    )
    run_dir = tmp_path / "mirrored"
    model = fit.run(cfg, sample_records, run_dir, strategy="mirrored", verbose=0)
    info = json.loads((run_dir / fit.RUN_JSON).read_text())
    assert (
        info["strategy"] == "mirrored" and info["replicas"] >= 1 and info["status"] == "completed"
    )
    assert info["steps_per_execution"] == 2 and int(model.optimizer.iterations.numpy()) == 2
    rows = history_rows(run_dir)
    # softmax head: a loss on fake only (real = 1 - fake)
    assert len(rows) == 1 and "real_loss" not in rows[0]
    assert np.isfinite(float(rows[0]["val_score"]))
    out = model.predict(data.make_dataset(sample_records, "val", cfg, training=False), verbose=0)
    np.testing.assert_allclose(out["real"], 1.0 - out["fake"], atol=1e-6)


def test_steps_per_execution_trains_the_same_weights_and_epoch_length(tiny_cfg):
    """Several steps per call change neither the steps an epoch runs nor the weights."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    f = tiny_cfg.features
    x = {
        "mfcc": rng.normal(size=(24, *f.mfcc_shape)).astype(np.float32),
        "mel": rng.normal(-40, 20, size=(24, *f.mel_shape, 1)).astype(np.float32),
    }
    y = {k: rng.integers(0, 2, 24).astype(np.float32) for k in LABEL_KEYS}
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    weights, iterations = {}, {}
    for spe in (1, 4):  # 6 steps an epoch: 4 per call would run 8, so 3 per call
        cfg = tiny_cfg.replace(
            train=dataclasses.replace(tiny_cfg.train, steps_per_epoch=6, steps_per_execution=spe)
        )
        keras.utils.set_random_seed(7)
        model = fit.compile_model(model_lib.build_model(cfg), cfg)
        assert model.steps_per_execution == (1 if spe == 1 else 3)
        model.fit(ds, epochs=2, steps_per_epoch=6, verbose=0, shuffle=False)
        weights[spe] = model.get_weights()
        iterations[spe] = int(model.optimizer.iterations.numpy())
    # one pass over a finite split (train.steps_per_epoch = 0): the last call runs the 2 left
    finite = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    cfg = tiny_cfg.replace(train=dataclasses.replace(tiny_cfg.train, steps_per_execution=4))
    keras.utils.set_random_seed(7)
    model = fit.compile_model(model_lib.build_model(cfg), cfg)
    assert model.steps_per_execution == 4
    model.fit(finite, epochs=2, verbose=0, shuffle=False)
    weights["pass"] = model.get_weights()
    iterations["pass"] = int(model.optimizer.iterations.numpy())
    assert iterations == {1: 12, 4: 12, "pass": 12}
    for key in (4, "pass"):
        for a, b in zip(weights[1], weights[key]):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=str(key))


def test_cli_errors_are_clear_and_exit_2(sample_records, tmp_path, capsys):
    base = ["--config", "configs/tiny.toml", "--run-dir", str(tmp_path / "r")]
    assert fit.main(["--records", str(tmp_path / "missing"), *base]) == 2
    assert "error: records directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert fit.main(["--records", str(tmp_path / "empty"), *base]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert fit.main(["--records", str(sample_records), *base, "--set", "features.n_mfcc=20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "n_mfcc: records have 40, config has 20" in err
    assert fit.main(["--records", str(sample_records), *base, "--set", "train.epochz=1"]) == 2
    assert "unknown config key 'train.epochz'" in capsys.readouterr().err
    assert fit.main(["--records", str(sample_records), *base, "--set", "train.monitor=acc"]) == 2
    assert "train.monitor" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written for a refused run


def test_unknown_strategy_is_refused():
    with pytest.raises(ConfigError, match="not one of"):
        fit.make_strategy("tpu")
    assert fit.make_strategy("default").num_replicas_in_sync == 1


def test_a_finished_run_is_refused_unless_overwrite(tmp_path, capsys):
    """Rerunning fit into a finished run dir must not retrain it silently (issue 12, item 5)."""
    run_dir = tmp_path / "done"
    for name in ("checkpoints/backup", "tb/train", "export/20261125T140000Z"):
        (run_dir / name).mkdir(parents=True)
    for name in ("config.json", "config.toml", "history.csv", "model.keras"):
        (run_dir / name).write_text("x")
    info = {"status": "completed", "epochs_run": 3, "best_epoch": 2, "best": {"val_auc": 0.75}}
    (run_dir / fit.RUN_JSON).write_text(json.dumps(info))
    argv = ["--records", str(tmp_path / "any"), "--run-dir", str(run_dir)]
    assert fit.main([*argv, "--config", "configs/tiny.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {run_dir} already holds a finished run (3 epochs, best val_auc 0.7500 at epoch 2)"
    )
    assert "Pass --overwrite to start over" in err
    with pytest.raises(fit.RunDirError):
        fit.run(fast_cfg(), tmp_path / "any", run_dir)
    assert (run_dir / "model.keras").read_text() == "x"  # untouched

    removed = fit.prepare_run_dir(run_dir, overwrite=True)
    assert sorted(removed) == sorted(fit.RUN_OUTPUTS)
    assert sorted(p.name for p in run_dir.iterdir()) == ["export"]  # exports are kept
    assert fit.prepare_run_dir(run_dir) == []  # nothing finished there now

    # An interrupted run is not finished: the same command resumes it.
    (run_dir / fit.RUN_JSON).write_text(json.dumps({"status": "running"}))
    assert fit.finished_run(run_dir) is None
    # A run dir from before run.json: model.keras alone marks it finished.
    (run_dir / fit.RUN_JSON).unlink()
    (run_dir / "model.keras").write_text("x")
    assert fit.finished_run(run_dir) == {}


def test_class_weights_give_each_class_half_the_loss():
    w = fit.class_weights({"fake": 300, "real": 100, "total": 400})
    assert w["fake"] == pytest.approx((0.5 / 0.75, 0.5 / 0.25))
    assert w["real"] == pytest.approx((0.5 / 0.25, 0.5 / 0.75))
    for key, (pos, neg) in w.items():
        n_pos = 300 if key == "fake" else 100
        assert n_pos * pos == pytest.approx((400 - n_pos) * neg)  # equal shares
        assert (n_pos * pos + (400 - n_pos) * neg) / 400 == pytest.approx(1.0)  # mean weight 1
    with pytest.raises(ValueError, match="the train split has 0 'fake' clip\\(s\\) of 50"):
        fit.class_weights({"fake": 0, "real": 50})


def test_weighted_bce_matches_keras_bce_and_weighs_each_target():
    y = np.array([1, 0, 1, 0, 0.5], np.float32)
    p = np.array([0.9, 0.2, 0.3, 0.6, 0.5], np.float32)
    plain = keras.losses.BinaryCrossentropy()(y, p)
    unit = np.mean(np.asarray(fit.weighted_bce(1.0, 1.0)(y, p)))
    np.testing.assert_allclose(unit, float(plain), rtol=1e-5)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    got = np.asarray(fit.weighted_bce(3.0, 0.5)(y, p))
    np.testing.assert_allclose(got, per * (3.0 * y + 0.5 * (1 - y)), rtol=1e-5)


def test_class_balance_weights_the_compiled_loss(tiny_cfg):
    cfg = tiny_cfg.replace(train=dataclasses.replace(tiny_cfg.train, class_balance=True))
    with pytest.raises(ValueError, match="class_balance needs the train split's label counts"):
        fit.compile_model(model_lib.build_model(cfg), cfg)
    rng = np.random.default_rng(5)
    f = cfg.features
    x = {
        "mfcc": rng.normal(size=(8, *f.mfcc_shape)).astype(np.float32),
        "mel": rng.normal(-40, 20, size=(8, *f.mel_shape, 1)).astype(np.float32),
    }
    fake = np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32)
    y = {"fake": fake, "real": 1 - fake}
    keras.utils.set_random_seed(7)
    model = fit.compile_model(model_lib.build_model(cfg), cfg, train_counts={"fake": 6, "real": 2})
    pred = model.predict(x, verbose=0)
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    expected = 0.0
    for key, (pos, neg) in fit.class_weights({"fake": 6, "real": 2}).items():
        t, q = y[key], np.clip(pred[key], 1e-7, 1 - 1e-7)
        expected += np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q)) * (pos * t + neg * (1 - t)))
    assert loss == pytest.approx(expected, rel=1e-4)
