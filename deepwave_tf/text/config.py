"""Typed, frozen configuration of the text model, loaded from `configs/text.toml`.

Same rules as the audio `deepwave_tf.config` (whose loader, override parser and
TOML writer this module uses): one frozen dataclass per stage, grouped in
`TextConfig`; a TOML file lists only what it changes; an unknown section or key
is an error naming it; `--set section.key=value` overrides.

Example:
    cfg = load_text_config("configs/text.toml", overrides=["train.epochs=1"])
    cfg.model.sequence_length_tokens  # 48 (configs/text.toml)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from deepwave_tf.config import (
    CONFIG_DIR,
    ConfigError,
    SectionedConfig,
    _check_choice,
    config_from_dict,
    load_config,
)

DEFAULT_CONFIG = CONFIG_DIR / "text.toml"
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
MONITORS = {"val_auc": "max", "val_accuracy": "max", "val_f1": "max", "val_loss": "min"}


@dataclasses.dataclass(frozen=True)
class TextDataConfig:
    """The `text,label` csv, the validation split and tf.data batching."""

    text_column: str = "text"
    label_column: str = "label"
    # The two class names as written in the label column: labels[0] is the negative
    # class (target 0), labels[1] the positive one (the probability the model gives).
    labels: tuple[str, ...] = ("0", "1")
    val_fraction: float = 0.2  # per class (stratified), of the distinct texts
    seed: int = 1125  # the split's permutation and the shuffle
    batch_size: int = 32
    shuffle_buffer: int = 2048

    def __post_init__(self):
        if len(self.labels) != 2 or self.labels[0] == self.labels[1]:
            raise ConfigError(f"data.labels must be two different names, got {list(self.labels)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("data.val_fraction must be in (0, 1)")
        if self.batch_size < 1:
            raise ConfigError("data.batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class VectorsConfig:
    """How the `.vec` file fills the embedding matrix (`vectors.py`)."""

    # Words the file lacks (and [UNK]) get N(0, oov_stddev^2) vectors, seeded.
    oov_stddev: float = 0.05
    seed: int = 1125
    # A vocabulary word (lower case by default) with no exact row takes the first row
    # whose lower-cased word matches ("Paris" for "paris"): fastText's files are cased.
    case_fallback: bool = True

    def __post_init__(self):
        if self.oov_stddev < 0:
            raise ConfigError("vectors.oov_stddev must be >= 0")


@dataclasses.dataclass(frozen=True)
class TextModelConfig:
    """TextVectorization -> Embedding -> Bidirectional(LSTM) -> Dense(1) logit (`model.py`)."""

    max_tokens: int = 20000  # vocabulary size, padding and [UNK] included
    sequence_length_tokens: int = 64  # longer texts are cut, shorter ones padded
    standardize: str = "lower_and_strip_punctuation"
    embedding_dim: int = 0  # 0 = the .vec file's dimension (fit writes the resolved value)
    embedding_trainable: bool = False
    lstm_units: int = 64  # per direction
    dropout: float = 0.2  # on the BiLSTM output, before the logit

    def __post_init__(self):
        _check_choice("model.standardize", self.standardize, STANDARDIZE)
        if self.max_tokens < 3:
            raise ConfigError("model.max_tokens must be >= 3 (padding, [UNK] and one word)")
        if self.sequence_length_tokens < 1:
            raise ConfigError("model.sequence_length_tokens must be >= 1")
        if self.embedding_dim < 0:
            raise ConfigError("model.embedding_dim must be >= 0 (0 = take it from the .vec file)")
        if self.lstm_units < 1:
            raise ConfigError("model.lstm_units must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class TextTrainConfig:
    """Optimiser and training loop."""

    epochs: int = 10
    learning_rate: float = 1e-3
    early_stopping_patience: int = 3
    monitor: str = "val_auc"  # best checkpoint and early stopping
    seed: int = 1125  # weights, dropout

    def __post_init__(self):
        _check_choice("train.monitor", self.monitor, tuple(MONITORS))
        if self.epochs < 1:
            raise ConfigError("train.epochs must be >= 1")


@dataclasses.dataclass(frozen=True)
class TextExportConfig:
    """SavedModel export (`export.py`)."""

    parity_atol: float = 1e-5  # reloaded vs in-memory probabilities


@dataclasses.dataclass(frozen=True)
class TextConfig(SectionedConfig):
    data: TextDataConfig = dataclasses.field(default_factory=TextDataConfig)
    vectors: VectorsConfig = dataclasses.field(default_factory=VectorsConfig)
    model: TextModelConfig = dataclasses.field(default_factory=TextModelConfig)
    train: TextTrainConfig = dataclasses.field(default_factory=TextTrainConfig)
    export: TextExportConfig = dataclasses.field(default_factory=TextExportConfig)


def load_text_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TextConfig:
    """Load `path` (TOML; None = defaults only) and apply `section.key=value` overrides.

    Raises:
        ConfigError: unknown section or key (named), a wrong type, a rejected value.
    """
    return load_config(path, overrides, root=TextConfig)


def text_config_from_dict(raw: dict, source: str = "dict") -> TextConfig:
    """A `TextConfig` from {section: {key: value}}, e.g. a run's `config.json`."""
    return config_from_dict(raw, source, root=TextConfig)
