"""config: strict TOML loading, overrides, type checks, round trips, every shipped config loads."""

from __future__ import annotations

import dataclasses
import json

import pytest

from deepwave_tf.config import (
    CONFIG_DIR,
    Config,
    ConfigError,
    FeatureConfig,
    config_from_dict,
    load_config,
    parse_override,
)


def test_defaults_and_derived_values():
    cfg = load_config(None)
    assert cfg == Config()
    f = cfg.features
    assert (f.num_samples, f.num_frames, f.num_fft_bins) == (160000, 313, 1025)
    assert f.mfcc_shape == (313, 40) and f.mel_shape == (128, 313)


# text*.toml configure deepwave_tf.text (tests/test_text_config.py loads them).
AUDIO_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.toml") if not p.name.startswith("text"))


@pytest.mark.parametrize("path", AUDIO_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert load_config(path) == cfg  # deterministic


def test_shipped_configs_exist():
    assert {"default.toml", "tiny.toml"} <= {p.name for p in CONFIG_DIR.glob("*.toml")}


def test_unknown_key_and_section_are_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[prep]\nnum_shard = 4\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'prep\.num_shard' in .*bad\.toml.*num_shards"
    ):
        load_config(path)
    path.write_text("[prepp]\nnum_shards = 4\n")
    with pytest.raises(ConfigError, match="unknown config section 'prepp'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.epoch'"):
        load_config(None, ["train.epoch=3"])


def test_overrides():
    cfg = load_config(
        CONFIG_DIR / "tiny.toml",
        ["train.epochs=1", "model.activation=relu", "model.conv_filters=[8, 16]", "prep.compression=GZIP",
         "features.clip_seconds=2", "prep.store_waveform=true"],
    )  # fmt: skip
    assert cfg.train.epochs == 1
    assert cfg.model.activation == "relu"  # bare word -> string
    assert cfg.model.conv_filters == (8, 16)  # list -> tuple
    assert cfg.prep.compression == "GZIP" and cfg.prep.store_waveform is True
    assert cfg.features.clip_seconds == 2.0 and isinstance(cfg.features.clip_seconds, float)
    assert cfg.prep.num_shards == 2  # from tiny.toml, untouched
    assert parse_override("data.seed = 7") == ("data", "seed", 7)


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.epochs=1.5", "train.epochs must be an integer, got 1.5"),
        ("train.epochs=true", "train.epochs must be an integer"),
        ("data.cache=1", "data.cache must be true or false, got 1"),
        ("features.sample_rate_hz=fast", "features.sample_rate_hz must be an integer, got 'fast'"),
        ("model.activation=3", "model.activation must be a string"),
        ("features.crop=middle", "features.crop='middle' is not one of ('start', 'center')"),
        ("prep.compression=LZ4", "prep.compression='LZ4' is not one of"),
        ("prep.backend=ffmpeg", "prep.backend='ffmpeg' is not one of"),
        ("prep.val_fraction=1.0", "prep.val_fraction must be in [0, 1)"),
        ("features.fmax_hz=20000", "above Nyquist"),
        (
            "features.sequence=cqt",
            "features.sequence='cqt' is not one of ('mfcc', 'mel', 'linear', 'lfcc', 'phase')",
        ),
        ("features.image=wave", "features.image='wave' is not one of ('mfcc', 'mel'"),
        ("features.lfcc_deltas=3", "features.lfcc_deltas=3 is not one of (0, 1, 2)"),
        ("features.n_lfcc=200", "features.n_lfcc must be in [1, features.n_lfcc_filters]"),
        ("train.steps_per_execution=0", "train.steps_per_execution=0: must be >= 1"),
        ("epochs=3", "must look like section.key=value"),
        ("train.epochs", "must look like section.key=value"),
    ],
)
def test_bad_values_are_config_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_toml_round_trip(tmp_path):
    cfg = load_config(
        CONFIG_DIR / "default.toml", ["model.conv_filters=[4, 8, 16]", "tune.dropout=[0.2, 0.4]"]
    )
    path = cfg.save(tmp_path)
    assert path == tmp_path / "config.json"
    assert load_config(tmp_path / "config.toml") == cfg
    assert config_from_dict(json.loads(path.read_text())) == cfg


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("[train\nepochs = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_frozen_and_feature_hash():
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]
    f = FeatureConfig()
    assert f.hash() == FeatureConfig().hash() and len(f.hash()) == 16
    assert dataclasses.replace(f, n_mels=64).hash() != f.hash()
    assert load_config(None, ["train.epochs=1"]).features.hash() == f.hash()  # only features count


def test_default_front_end_keeps_its_hash_and_manifest_fields():
    """Records and exports made before the front-end choice existed stay valid."""
    f = FeatureConfig()
    assert f.feature_keys == ("mfcc", "mel")
    assert f.hash() == "6f58769bac4b2df5"  # the hash of every earlier default record
    assert "sequence" not in f.hashed_fields() and "phase_bands" not in f.hashed_fields()
    lfcc = dataclasses.replace(f, sequence="lfcc")
    assert lfcc.hash() != f.hash() and lfcc.hashed_fields()["sequence"] == "lfcc"
    assert dataclasses.replace(f, sequence="mfcc", image="mel").hash() == f.hash()
    assert dataclasses.replace(f, lfcc_deltas=1).hash() != f.hash()


def test_front_end_shapes_and_band_limits():
    f = FeatureConfig(sequence="lfcc", image="linear", lfcc_deltas=2, n_lfcc=20)
    assert f.feature_keys == ("lfcc", "linear")
    assert f.feature_shape("lfcc") == (313, 60)
    assert f.feature_shape("linear") == (1025, 313)  # linear_bins = 0: every STFT bin
    assert FeatureConfig(image="phase", phase_bands=16).feature_shape("phase") == (64, 313)
    assert FeatureConfig(sequence="mel", image="mel").feature_keys == ("mel",)
    with pytest.raises(
        ConfigError, match=r"features.linear_bins=2000: .* wide: from 0 to 1024 \(0 = every bin\)"
    ):
        FeatureConfig(image="linear", linear_bins=2000)
    FeatureConfig(linear_bins=2000)  # not computed: not checked, as before


@pytest.mark.parametrize("key", ["enabled", "val_mixing"])
def test_mixing_augmentation_refuses_other_front_ends(key):
    other = "val_mixing" if key == "enabled" else "enabled"
    with pytest.raises(ConfigError) as info:
        load_config(None, ["features.image=linear", f"augment.{other}=false"])
    message = str(info.value)
    assert f"augment.{key} (mixing in the power-mel domain) needs" in message
    assert "image='linear'" in message and "augment.enabled=false" in message
    cfg = load_config(
        None, ["features.image=linear", "augment.enabled=false", "augment.val_mixing=false"]
    )
    assert cfg.features.image == "linear"


def test_errors_name_where_a_bad_key_came_from(tmp_path):
    """A --set typo is blamed on --set, a file's typo on the file (issue 12, item 2)."""
    with pytest.raises(ConfigError) as info:
        load_config(CONFIG_DIR / "default.toml", ["model.activaton=relu"])
    assert "unknown config key 'model.activaton' given with --set;" in str(info.value)
    assert "default.toml" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown config section 'modle' given with --set"):
        load_config(CONFIG_DIR / "default.toml", ["modle.activation=relu"])
    with pytest.raises(
        ConfigError, match=r"train\.epochs must be an integer, got 'x' \(given with --set\)"
    ):
        load_config(CONFIG_DIR / "default.toml", ["train.epochs=x"])
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nepochs = 'x'\n")
    with pytest.raises(ConfigError, match=rf"got 'x' \(in {path}\)"):
        load_config(path)


def test_base_and_sections_layer_over_a_trained_models_config(tmp_path):
    """Commands using a trained model: its config <- [export] of --config <- --set export.*."""
    model = load_config(None, ["model.lstm_units=8", "export.aggregate=mean"]).to_dict()
    base = (model, "runs/x/config.json")
    cfg = load_config(None, [], base=base, sections=("export",))
    assert cfg.model.lstm_units == 8 and cfg.export.aggregate == "mean"
    path = tmp_path / "f.toml"
    path.write_text("[model]\nlstm_units = 99\n[export]\nwindow_hop_seconds = 1.0\n")
    cfg = load_config(path, ["export.aggregate=max"], base=base, sections=("export",))
    assert cfg.model.lstm_units == 8  # the file's [model] is not used
    assert cfg.export.window_hop_seconds == 1.0 and cfg.export.aggregate == "max"
    assert cfg.export.parity_atol == 1e-5  # keys neither lists keep the model's value
    with pytest.raises(
        ConfigError,
        match=r"override 'model\.lstm_units=3': only export\.\* can be changed at export time",
    ):
        load_config(
            None, ["model.lstm_units=3"], base=base, sections=("export",), context="at export time"
        )
    path.write_text("[model]\nlstm_unit = 99\n")  # a typo in an unused section is still an error
    with pytest.raises(ConfigError, match=rf"unknown config key 'model\.lstm_unit' in {path}"):
        load_config(path, [], base=base, sections=("export",))
    with pytest.raises(ConfigError, match=r"'export\.aggregat' given with --set"):
        load_config(None, ["export.aggregat=mean"], base=base, sections=("export",))
    bad = {**model, "model": {**model["model"], "lstm_unitz": 1}}
    with pytest.raises(ConfigError, match=r"'model\.lstm_unitz' in runs/x/config\.json"):
        load_config(None, [], base=(bad, "runs/x/config.json"), sections=("export",))


def test_a_bad_key_of_the_base_is_not_blamed_on_the_file(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text("[model]\nlstm_units = 4\n")
    with pytest.raises(ConfigError, match=r"'model\.lstm_unitz' in run/config\.json"):
        load_config(path, base=({"model": {"lstm_unitz": 1}}, "run/config.json"))


@pytest.mark.parametrize(
    "steps_per_epoch,steps_per_execution,expected",
    [(0, 8, 8), (16, 8, 8), (6, 4, 3), (7, 4, 1), (2, 8, 2), (12, 1, 1)],
)
def test_execution_steps_divide_the_epoch(steps_per_epoch, steps_per_execution, expected):
    train = load_config(
        None,
        [
            f"train.steps_per_epoch={steps_per_epoch}",
            f"train.steps_per_execution={steps_per_execution}",
        ],
    ).train
    assert train.execution_steps() == expected
    assert train.execution_steps(30) == max(
        d for d in range(1, steps_per_execution + 1) if 30 % d == 0
    )
