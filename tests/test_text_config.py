"""deepwave_tf.text.config: strict keys, overrides, the shared loader, round trip through config.json."""

from __future__ import annotations

import json

import pytest

from deepwave_tf.config import ConfigError, load_config
from deepwave_tf.text.config import (
    DEFAULT_CONFIG,
    TextConfig,
    load_text_config,
    text_config_from_dict,
)


@pytest.mark.parametrize(
    "path", sorted(DEFAULT_CONFIG.parent.glob("text*.toml")), ids=lambda p: p.name
)
def test_every_shipped_text_config_loads(path):
    cfg = load_text_config(path)
    assert isinstance(cfg, TextConfig) and load_text_config(path) == cfg


def test_text_toml_and_overrides():
    cfg = load_text_config(DEFAULT_CONFIG, ["train.epochs=1", "model.embedding_trainable=true"])
    assert cfg.data.labels == ("book", "prompt")
    assert cfg.train.epochs == 1 and cfg.model.embedding_trainable is True
    assert cfg.model.embedding_dim == 0  # taken from the .vec file at fit time
    assert load_text_config(None) == TextConfig()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lstm_unit=4", r"unknown config key 'model.lstm_unit'.*known keys of \[model\]"),
        ("features.n_fft=512", r"unknown config section 'features'.*known: data, vectors, model"),
        ("train.epochs=1.5", r"train.epochs must be an integer"),
        ("data.labels=['a']", r"data.labels must be two different names"),
        ("data.labels=['a', 'a']", r"data.labels must be two different names"),
        ("model.standardize=upper", r"model.standardize='upper' is not one of"),
        ("train.monitor=val_score", r"train.monitor='val_score' is not one of"),
        ("data.val_fraction=0", r"data.val_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_text_config(DEFAULT_CONFIG, [override])


def test_saved_config_round_trips(tmp_path):
    cfg = load_text_config(DEFAULT_CONFIG, ["model.embedding_dim=16"])
    cfg.save(tmp_path)
    again = text_config_from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert again == cfg
    assert load_text_config(tmp_path / "config.toml") == cfg


def test_audio_config_unchanged():
    """The loader generalised for TextConfig still builds the audio Config by default."""
    cfg = load_config(None, ["train.epochs=1"])
    assert type(cfg).__name__ == "Config" and cfg.train.epochs == 1
    with pytest.raises(ConfigError, match="unknown config section 'vectors'"):
        load_config(None, ["vectors.seed=1"])
