"""Typed, frozen configuration for every stage, loaded from `configs/*.toml`.

One frozen dataclass per stage (features, prep, data, augment, model, train, tune,
export), grouped in `Config`. A TOML file only lists what it changes; everything
else keeps the defaults below. Unknown sections or keys are errors that name the
key, so a typo can never be silently ignored. Variants are new instances
(`dataclasses.replace` / `Config.replace`), never mutation.

Example:
    cfg = load_config("configs/default.toml", overrides=["train.epochs=1"])
    cfg.features.num_frames  # 313
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
ACTIVATIONS = ("relu", "gelu", "gelu_tanh")  # model.activation (model.activation_layer)


class ConfigError(ValueError):
    """A configuration file or override that cannot be used."""


# The front-ends `features.py` computes, by name. The names are the contract: feature
# dict keys = TFRecord keys = keras.Input names = serving signature names
# (`features.MFCC`, `features.MEL`, ... are these strings).
FRONT_ENDS = ("mfcc", "mel", "linear", "lfcc", "phase")
DELTA_WIDTH_FRAMES = 9  # LFCC deltas: librosa.feature.delta's default window


# --------------------------------------------------------------------------- #
# Stage configs
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Audio front-end. Defaults follow librosa's conventions at 32 kHz.

    Every clip is cut to exactly `clip_seconds` before features are computed:
    longer clips are cropped (`crop`), shorter ones zero-padded (`pad`), so the
    clip length can never give the label away.
    """

    sample_rate_hz: int = 32000
    clip_seconds: float = 5.0
    crop: str = "center"  # "start" | "center": which window of a longer clip is kept
    pad: str = "end"  # "end" | "center": where zeros go for a shorter clip
    n_fft: int = 2048
    win_length_samples: int = 2048
    hop_length_samples: int = 512
    n_mels: int = 128
    fmin_hz: float = 0.0
    fmax_hz: float = 16000.0
    n_mfcc: int = 40
    top_db: float = 80.0
    amin: float = 1e-10
    # Which front-end each model branch reads (README, "Front-ends"): `sequence` feeds the
    # BiLSTM branch, `image` the 2-D CNN; prep stores exactly these tensors (one if equal).
    sequence: str = "mfcc"  # any of FRONT_ENDS
    image: str = "mel"  # any of FRONT_ENDS
    linear_bins: int = 0  # "linear": 0 = every STFT bin (n_fft // 2 + 1); N = N equal bands
    n_lfcc_filters: int = 128  # "lfcc": linear triangular filters over [fmin_hz, fmax_hz]
    n_lfcc: int = 40  # "lfcc": DCT coefficients kept
    lfcc_deltas: int = 0  # "lfcc": 0 = none, 1 = + delta, 2 = + delta and delta-delta
    phase_bands: int = 32  # "phase": equal-width bands over [fmin_hz, fmax_hz], 4 rows each

    def __post_init__(self):
        _check_choice("features.crop", self.crop, ("start", "center"))
        _check_choice("features.pad", self.pad, ("end", "center"))
        _check_choice("features.sequence", self.sequence, FRONT_ENDS)
        _check_choice("features.image", self.image, FRONT_ENDS)
        _check_choice("features.lfcc_deltas", self.lfcc_deltas, (0, 1, 2))
        if self.n_lfcc < 1 or self.n_lfcc > self.n_lfcc_filters:
            raise ConfigError("features.n_lfcc must be in [1, features.n_lfcc_filters]")
        # Equal-width bands each need one STFT bin at least: no narrower than a bin.
        # Checked only for the front-ends this config computes, so older configs stay valid.
        bin_hz = self.sample_rate_hz / self.n_fft
        most = int((self.fmax_hz - self.fmin_hz) / bin_hz)
        for key, name, least in (("linear", "linear_bins", 0), ("phase", "phase_bands", 1)):
            value = getattr(self, name)
            if value < least or (key in self.feature_keys and value > most):
                raise ConfigError(
                    f"features.{name}={value}: bands over [fmin_hz, fmax_hz] must be at least "
                    f"one STFT bin ({bin_hz:g} Hz) wide: from {least} to {most}"
                    + (" (0 = every bin)" if least == 0 else "")
                )
        if self.lfcc_deltas and self.num_frames < DELTA_WIDTH_FRAMES:
            raise ConfigError(
                f"features.lfcc_deltas needs at least {DELTA_WIDTH_FRAMES} frames per clip "
                f"(features give {self.num_frames})"
            )
        if self.fmax_hz > self.sample_rate_hz / 2:
            raise ConfigError(
                f"features.fmax_hz={self.fmax_hz} is above Nyquist ({self.sample_rate_hz / 2})"
            )
        if self.win_length_samples > self.n_fft:
            raise ConfigError("features.win_length_samples must be <= features.n_fft")
        if self.n_mfcc > self.n_mels:
            raise ConfigError("features.n_mfcc must be <= features.n_mels")

    @property
    def num_samples(self) -> int:
        """Samples in one fixed-length clip."""
        return int(round(self.clip_seconds * self.sample_rate_hz))

    @property
    def num_frames(self) -> int:
        """STFT frames of one clip (centred frames, as librosa's `center=True`)."""
        return 1 + self.num_samples // self.hop_length_samples

    @property
    def num_fft_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def mfcc_shape(self) -> tuple[int, int]:
        return (self.num_frames, self.n_mfcc)

    @property
    def mel_shape(self) -> tuple[int, int]:
        return (self.n_mels, self.num_frames)

    @property
    def num_linear_bins(self) -> int:
        """Bands of the "linear" spectrogram."""
        return self.linear_bins or self.num_fft_bins

    @property
    def lfcc_dims(self) -> int:
        """LFCC values per frame: `n_lfcc` coefficients, then their deltas."""
        return self.n_lfcc * (1 + self.lfcc_deltas)

    @property
    def feature_keys(self) -> tuple[str, ...]:
        """The tensors prep stores and the model reads: (sequence, image), once each."""
        return tuple(dict.fromkeys((self.sequence, self.image)))

    def feature_shape(self, key: str) -> tuple[int, int]:
        """Stored shape of front-end `key`, unbatched, as `features.compute_features` returns it.

        Time-major `[frames, dims]` for mfcc and lfcc, band-major `[bands, frames]` for
        mel, linear and phase (`time_major`).
        """
        dims = {
            "mfcc": self.n_mfcc,
            "mel": self.n_mels,
            "linear": self.num_linear_bins,
            "lfcc": self.lfcc_dims,
            "phase": 4 * self.phase_bands,
        }
        if key not in dims:
            raise ConfigError(f"unknown front-end {key!r}: one of {FRONT_ENDS}")
        return (
            (self.num_frames, dims[key]) if self.time_major(key) else (dims[key], self.num_frames)
        )

    @staticmethod
    def time_major(key: str) -> bool:
        """True for the cepstra (`[frames, coefficients]`), False for the spectrogram-like ones."""
        return key in ("mfcc", "lfcc")

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers, as the manifest records them.

        Fields added after the first records were written (`_LATER_FIELDS`) count only
        when they differ from their default, so the default front-end keeps the hash
        (and manifest) it always had and older records and exports stay valid.
        """
        out = _to_plain(dataclasses.asdict(self))
        for name, default in _LATER_FIELDS.items():
            if out[name] == default:
                del out[name]
        return out

    def hash(self) -> str:
        """Stable short hash of every field (see `hashed_fields`): records and models carry it."""
        data = json.dumps(self.hashed_fields(), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


# FeatureConfig fields newer than the first records, with their defaults (`hashed_fields`).
_LATER_FIELDS = {
    name: getattr(FeatureConfig, name)
    for name in (
        "sequence",
        "image",
        "linear_bins",
        "n_lfcc_filters",
        "n_lfcc",
        "lfcc_deltas",
        "phase_bands",
    )
}


@dataclasses.dataclass(frozen=True)
class PrepConfig:
    """Decoding audio and writing sharded TFRecords."""

    backend: str = "soundfile"  # "soundfile" | "tfio"
    num_shards: int = 8  # shards of the train split; val/test get proportionally fewer (>= 1)
    val_fraction: float = 0.1
    seed: int = 1125
    group_column: str = ""  # "" = take speaker_or_voice from meta.csv when present
    store_waveform: bool = False
    compression: str = ""  # "" | "GZIP" | "ZLIB"
    batch_size: int = (
        8  # clips per feature batch (smaller = less CPU per clip: cache; bench_prep.py)
    )
    workers: int = 0  # decode threads; 0 = all cores
    # Unseen-generator protocol: train rows whose `holdout_column` value is in `holdout`
    # become the split "unseen" (never read by fit, tune or calibration), together with
    # the real clips of their speakers and `holdout_real_fraction` of the other real clips
    # (whole speakers), so the split measures held-out generators against held-out voices.
    holdout_column: str = "generator"  # column of train.csv, else meta.csv
    holdout: tuple[str, ...] = ()
    holdout_real_fraction: float = 0.25
    # Generator-disjoint validation: rows whose `holdout_column` value is listed here go
    # to the val split only (with their speakers' real clips), so model selection and
    # calibration see generators that training never saw.
    val_holdout: tuple[str, ...] = ()

    def __post_init__(self):
        _check_choice("prep.backend", self.backend, ("soundfile", "tfio"))
        _check_choice("prep.compression", self.compression, ("", "GZIP", "ZLIB"))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("prep.val_fraction must be in [0, 1)")
        if not 0.0 <= self.holdout_real_fraction < 1.0:
            raise ConfigError("prep.holdout_real_fraction must be in [0, 1)")
        both = sorted(set(self.holdout) & set(self.val_holdout))
        if both:
            raise ConfigError(f"prep.holdout and prep.val_holdout both list {both}")
        if (self.holdout or self.val_holdout) and not self.holdout_column:
            raise ConfigError("prep.holdout/val_holdout need prep.holdout_column")
        if self.num_shards < 1:
            raise ConfigError("prep.num_shards must be >= 1")


@dataclasses.dataclass(frozen=True)
class VocodeConfig:
    """Copy-synthesis fakes written by prep (`deepwave_tf/vocode.py`).

    Each real clip of the train split, and of val unless `val_copies` is false, gets
    `copies_per_real` re-synthesised copies, labelled fake, each by a different vocoder
    drawn (seeded) from `vocoders`.
    Paired copies differ from their source only in how the audio was made (same
    speaker, words and channel), which is the trace a detector should learn.
    """

    vocoders: tuple[str, ...] = ()
    copies_per_real: int = 0
    # false: copies in train only, so that val (early stopping, checkpoint choice and the
    # export's calibration) keeps the corpus's own class balance instead of 1 + K fakes per real
    val_copies: bool = True
    # false: the corpus's own fake clips are left out of train and val (not of `unseen` or test),
    # so the model learns fakes only from the copies of real clips (needs val_copies: val needs fakes)
    corpus_fakes: bool = True

    def __post_init__(self):
        if not self.corpus_fakes and not self.copies_per_real:
            raise ConfigError(
                "vocode.corpus_fakes = false leaves no fake clip to train on: it needs "
                "vocode.copies_per_real > 0 and vocode.vocoders"
            )
        if not self.corpus_fakes and not self.val_copies:
            raise ConfigError(
                "vocode.corpus_fakes = false with vocode.val_copies = false leaves the val split "
                "without a fake clip (no val AUC, no calibration): set val_copies = true"
            )
        if self.copies_per_real < 0:
            raise ConfigError("vocode.copies_per_real must be >= 0")
        if self.copies_per_real and not self.vocoders:
            raise ConfigError("vocode.copies_per_real > 0 needs vocode.vocoders")
        if len(set(self.vocoders)) != len(self.vocoders):
            raise ConfigError(f"vocode.vocoders lists a name twice: {list(self.vocoders)}")


@dataclasses.dataclass(frozen=True)
class WavAugConfig:
    """Augmented views written by prep (`deepwave_tf/wavaug.py`): channel shortcuts out.

    Each train clip (both classes, vocoded copies included) gets `views_per_clip`
    extra views, each through a random chain of 1..`max_ops` waveform augmentations
    (codecs, RawBoost, band-limiting, resampling, gain, reverb) from `names`
    ("" = all available). Same label, same split, same speaker as the clip.
    """

    views_per_clip: int = 0
    names: tuple[str, ...] = ()
    max_ops: int = 3

    def __post_init__(self):
        if self.views_per_clip < 0:
            raise ConfigError("wavaug.views_per_clip must be >= 0")
        if self.max_ops < 1:
            raise ConfigError("wavaug.max_ops must be >= 1")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """tf.data input pipeline."""

    batch_size: int = 32
    shuffle_buffer: int = 2048
    cache: bool = False
    deterministic: bool = False
    seed: int = 1125
    cycle_length: int = 4  # shards read in parallel by the interleave


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Train-split augmentation. Mixing happens on power-mel, before the log."""

    enabled: bool = True
    time_shift: bool = True  # roll each clip by a random number of frames
    mix_prob: float = 0.5  # chance a second voice is overlaid (targets: union)
    mix_gain_db: float = 6.0  # second voice at a random -x..+x dB
    # noise-only / silence shares match the challenge-like test mixtures (10 % each)
    noise_only_prob: float = 0.1  # examples replaced by noise alone, targets (0, 0)
    silence_prob: float = 0.1  # examples replaced by near-silence, targets (0, 0)
    background_prob: float = 0.7  # voiced examples that get background noise
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    time_masks: int = 2
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bins: int = 12
    val_mixing: bool = True  # validation gets a fixed (seeded) mixing too
    noise_floor: bool = True  # faint stationary noise under every example
    floor_db_min: float = 48.0  # floor level, dB under the example's level
    floor_db_max: float = 72.0
    silence_dbfs_min: float = -80.0  # near-silent examples, dB re RMS 1
    silence_dbfs_max: float = -55.0
    silence_zero_prob: float = 0.2  # near-silent examples that are exact digital zero
    noise_bank_per_kind: int = 6  # synthetic noises per kind (see augment.NOISE_KINDS)
    noise_max_hz: float = 8000.0  # band-limit synthetic noise like the data; 0 = full band
    # Recorded background sounds (music, ambience, effects; scripts/build_noise_bank.py),
    # relative to the repo root unless absolute; "" = synthetic noise only. Off by default
    # until the unseen-generator protocol has measured it (README, "Generalisation").
    noise_dir: str = ""
    recorded_noise_share: float = 0.5  # share of bank entries that are recorded (< 1)
    mask_mfcc: bool = False  # recompute MFCC from the masked log-mel (else masks hit mel only)
    # training examples left clean: the clip itself (time shift only), no partner voice, noise,
    # noise floor or mask, so the faint traces of how a voice was made are seen unmasked too
    clean_prob: float = 0.0
    jit_compile: bool = True  # XLA-compile the augmentation (benchmarks/bench_train.py)

    def __post_init__(self):
        for name in (
            "mix_prob",
            "noise_only_prob",
            "silence_prob",
            "background_prob",
            "clean_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must be in [0, 1]")
        if not 0.0 <= self.silence_zero_prob <= 1.0:
            raise ConfigError("augment.silence_zero_prob must be in [0, 1]")
        if self.noise_only_prob + self.silence_prob > 1.0:
            raise ConfigError("augment.noise_only_prob + augment.silence_prob must be <= 1")
        for lo, hi in (
            ("snr_db_min", "snr_db_max"),
            ("floor_db_min", "floor_db_max"),
            ("silence_dbfs_min", "silence_dbfs_max"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"augment.{lo} must be <= augment.{hi}")
        if min(self.time_masks, self.time_mask_frames, self.freq_masks, self.freq_mask_bins) < 0:
            raise ConfigError("augment mask counts and widths must be >= 0")
        if self.noise_bank_per_kind < 1:
            raise ConfigError("augment.noise_bank_per_kind must be >= 1")
        if not 0.0 <= self.recorded_noise_share < 1.0:
            raise ConfigError("augment.recorded_noise_share must be in [0, 1)")


BRANCHES = ("mfcc", "mel", "stats", "waveform")
STATS_MOMENTS = ("mean", "std", "diff_abs", "diff_std")  # model.stats_moments


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Two-input CNN + BiLSTM (see model.build_model)."""

    name: str = "cnn_bilstm"
    lstm_units: int = 64
    lstm_layers: int = 1
    lstm_dropout: float = 0.0
    mfcc_time_pool: int = 1  # average-pool MFCC frames before the LSTM
    lstm_pooling: str = "last"  # "last" state | "avg" | "max" | "avgmax" over time
    conv_filters: tuple[int, ...] = (16, 32, 64)
    conv_kernel: int = 3
    first_conv_stride: int = 1  # stride of conv_0; 2 = about 4x less mel-branch compute
    batch_norm: bool = True
    pool_size: int = 2
    conv_pooling: str = "avg"  # global pooling of the last conv block: "avg" | "max" | "avgmax"
    # "relu" | "gelu" (exact, x * Phi(x)) | "gelu_tanh" (the tanh approximation, as
    # torch's gelu(approximate="tanh")); the GELUs of the conv blocks train as fused XLA kernels.
    activation: str = "relu"
    dense_units: int = 64  # the head's hidden layer; 0 = none (the head is then linear)
    dropout: float = 0.3
    l2: float = 0.0  # L2 penalty on the dense layers' kernels (0 = none)
    head: str = "multilabel"  # "multilabel" | "softmax"
    # What feeds the head: "mfcc" (the BiLSTM), "mel" (the CNN), "stats" (per-band mean
    # and std over time of the normalised log-mel and MFCC through one dense layer: what a
    # linear model on those statistics keeps, which transfers to unseen generators).
    # "waveform": SincNet-style learnable band-pass filters on the raw waveform, then a
    # 1-D residual CNN (`sincnet.py`); the model then also takes the clip's samples.
    branches: tuple[str, ...] = ("mfcc", "mel")
    # Units of the stats branch's dense layer; 0 = none: the statistics, standardised
    # (batch norm without scale or offset, as a StandardScaler), go to the head as they are.
    stats_units: int = 64
    # What the stats branch takes per band over time (STATS_MOMENTS, in that order):
    # "mean", "std", and of the frame-to-frame first difference "diff_abs" (mean of its
    # absolute value) and "diff_std" (its std): how fast each band moves between frames.
    stats_moments: tuple[str, ...] = ("mean", "std")
    # With stats_units = 0: the head also reads the square of each standardised statistic,
    # so that a linear head can call a deviation from the reals fake in either direction
    # (benchmarks/bench_stats_features.py's "lr_sq").
    stats_squares: bool = False
    # waveform branch (used only when "waveform" is in branches):
    waveform_rate_hz: int = 16000  # the branch decimates the clip to this rate in-graph first
    waveform_filters: int = 70  # sinc band-pass filters, mel-initialised
    waveform_kernel_samples: int = 129  # sinc filter length at waveform_rate_hz (odd)
    waveform_stride: int = 1  # stride of the sinc convolution (1 = SincNet/RawNet2)
    waveform_channels: tuple[int, ...] = (32, 32, 64, 64)  # residual blocks, max-pool 3 each

    def __post_init__(self):
        unknown = [b for b in self.branches if b not in BRANCHES]
        if unknown or not self.branches or len(set(self.branches)) != len(self.branches):
            raise ConfigError(
                f"model.branches={list(self.branches)}: choose one or more of {', '.join(BRANCHES)}"
            )
        _check_choice("model.activation", self.activation, ACTIVATIONS)
        _check_choice("model.head", self.head, ("multilabel", "softmax"))
        _check_choice("model.lstm_pooling", self.lstm_pooling, ("last", "avg", "max", "avgmax"))
        _check_choice("model.conv_pooling", self.conv_pooling, ("avg", "max", "avgmax"))
        if not self.conv_filters:
            raise ConfigError("model.conv_filters needs at least one block")
        if self.first_conv_stride < 1:
            raise ConfigError("model.first_conv_stride must be >= 1")
        if (
            not self.stats_moments
            or any(x not in STATS_MOMENTS for x in self.stats_moments)
            or list(self.stats_moments) != [x for x in STATS_MOMENTS if x in self.stats_moments]
        ):
            raise ConfigError(
                f"model.stats_moments={list(self.stats_moments)}: one or more of "
                f"{', '.join(STATS_MOMENTS)}, each once, in that order"
            )
        if self.stats_units < 0 or self.dense_units < 0 or self.l2 < 0:
            raise ConfigError("model.stats_units, model.dense_units and model.l2 must be >= 0")
        if self.stats_squares and self.stats_units:
            raise ConfigError(
                f"model.stats_squares needs model.stats_units = 0 (got {self.stats_units}): "
                "the squares are of the standardised statistics the head reads directly"
            )
        if self.waveform_kernel_samples < 3 or self.waveform_kernel_samples % 2 == 0:
            raise ConfigError(
                f"model.waveform_kernel_samples={self.waveform_kernel_samples} must be odd and "
                ">= 3 (a symmetric, linear-phase filter centred on a sample)"
            )
        if min(self.waveform_filters, self.waveform_stride, self.waveform_rate_hz) < 1:
            raise ConfigError(
                "model.waveform_filters, model.waveform_stride and model.waveform_rate_hz "
                "must be >= 1"
            )
        if not self.waveform_channels or min(self.waveform_channels) < 1:
            raise ConfigError("model.waveform_channels needs at least one block of >= 1 channels")

    @property
    def uses_waveform(self) -> bool:
        """The model takes the clip's samples (`waveform` input) besides mfcc and mel."""
        return "waveform" in self.branches


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser and training loop."""

    epochs: int = 20
    learning_rate: float = 1e-3
    early_stopping_patience: int = 5
    seed: int = 1125
    steps_per_epoch: int = 0  # 0 = one pass over the train split
    tensorboard_images: int = 4
    validation_steps: int = 0  # 0 = the whole val split
    monitor: str = "val_auc"  # best checkpoint/early stopping: val_auc | val_score | val_loss
    # true: the BCE of each output weighs its classes by the train split's clip counts, so
    # fakes and reals carry half the loss each (e.g. with 2 vocoded copies per real clip)
    class_balance: bool = False
    jit_compile: bool = False  # XLA-compile the train step
    # Train steps per call of the compiled train function (Keras `steps_per_execution`): one
    # Python round trip per call instead of per step (stats_views: 0.33 -> 0.14 ms of CPU per
    # example at 16, 0.12 at 64; bench_train.py). Same weights and epochs (`execution_steps`);
    # batch-level callback hooks and the progress bar run once per call (ours are epoch-level).
    steps_per_execution: int = 16

    def __post_init__(self):
        _check_choice("train.monitor", self.monitor, ("val_auc", "val_score", "val_loss"))
        if self.steps_per_execution < 1:
            raise ConfigError(f"train.steps_per_execution={self.steps_per_execution}: must be >= 1")

    def execution_steps(self, steps_per_epoch: int | None = None) -> int:
        """Steps per call for an epoch of `steps_per_epoch` steps (default `train.steps_per_epoch`).

        Keras runs whole calls, so an epoch of N steps would run past N when N is not a
        multiple: the largest divisor of N up to `steps_per_execution` keeps it exact.
        0 / None (one pass over a finite split) needs no divisor: a call stops at its end.
        """
        steps = self.steps_per_epoch if steps_per_epoch is None else steps_per_epoch
        if not steps:
            return self.steps_per_execution
        return max(d for d in range(1, min(self.steps_per_execution, steps) + 1) if steps % d == 0)


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """KerasTuner search: the space lives here."""

    algorithm: str = "hyperband"  # "hyperband" | "bayesian" | "random"
    max_trials: int = 10
    max_epochs: int = 10
    objective: str = "val_score"  # "val_score" (lower is better) | "val_auc"
    lstm_units: tuple[int, ...] = (32, 64, 128)
    lstm_layers: tuple[int, ...] = (1, 2)
    conv_filters: tuple[int, ...] = (16, 32)  # first block's filters; doubles per block
    conv_blocks: tuple[int, ...] = (2, 3, 4)
    activation: tuple[str, ...] = ("relu", "gelu")
    dropout: tuple[float, ...] = (0.1, 0.5)  # [min, max]
    learning_rate: tuple[float, ...] = (1e-4, 3e-3)  # [min, max], log scale
    batch_size: tuple[int, ...] = (16, 32, 64)
    mix_prob: tuple[float, ...] = (0.0, 0.7)  # [min, max]
    time_masks: tuple[int, ...] = (0, 1, 2)
    # "process": each trial trains in a child process that exits afterwards, so the search's
    # memory stays flat (TF/Keras keep ~30 MB per in-process trial); "inline": in this
    # process (the old behaviour, for debugging with breakpoints).
    isolation: str = "process"

    def __post_init__(self):
        _check_choice("tune.isolation", self.isolation, ("process", "inline"))


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """SavedModel export, calibration and scoring windows."""

    calibrate: bool = True  # false: no calibration whatever `calibration` says (--no-calibrate)
    # Calibration of each output on the validation split (calibration.py):
    # "auto" keeps none / temperature / platt by 5-fold out-of-fold log loss (one-SE rule).
    calibration: str = "auto"  # "auto" | "none" | "temperature" | "platt"
    calibration_min_clips: int = 100  # fewer validation clips: keep none, with a warning
    calibration_folds: int = 5  # k of the cross-validation that picks (and checks) the method
    calibration_temperature_range: tuple[float, ...] = (0.25, 4.0)  # [min, max] of T = 1 / scale
    calibration_prior_clips: float = 2.0  # weight (in clips) of a N(0, 1) prior on log T and bias
    # With augment.val_mixing: passes over the validation split, each clip mixed anew
    # (other seeds), so the calibration sees the mixing distribution, not one draw of it.
    # 4 passes did not lower the dev test ECE (README, Calibration): 1 by default.
    calibration_passes: int = 1
    parity_atol: float = 1e-5
    window_hop_seconds: float = 2.5  # predict: hop between windows of long clips
    aggregate: str = "max"  # predict: how window scores combine ("max" | "mean")

    def __post_init__(self):
        _check_choice("export.aggregate", self.aggregate, ("max", "mean"))
        _check_choice(
            "export.calibration", self.calibration, ("auto", "none", "temperature", "platt")
        )
        if self.calibration_min_clips < 0:
            raise ConfigError("export.calibration_min_clips must be >= 0")
        if self.calibration_folds < 2:
            raise ConfigError("export.calibration_folds must be >= 2 (k-fold cross-validation)")
        r = self.calibration_temperature_range
        if len(r) != 2 or not 0 < r[0] <= 1 <= r[1]:
            raise ConfigError(
                f"export.calibration_temperature_range={list(r)} must be [min, max] with "
                "0 < min <= 1 <= max"
            )
        if self.calibration_prior_clips < 0:
            raise ConfigError("export.calibration_prior_clips must be >= 0")
        if self.calibration_passes < 1:
            raise ConfigError("export.calibration_passes must be >= 1")


class SectionedConfig:
    """Methods shared by the top-level configs (audio `Config`, `text.config.TextConfig`).

    A subclass is a frozen dataclass whose fields are the stage dataclasses (the TOML sections).
    """

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: _to_plain(dataclasses.asdict(getattr(self, f.name)))
            for f in dataclasses.fields(self)
        }

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    def replace(self, **sections: Any):
        """New config with whole sections replaced: `cfg.replace(train=...)`."""
        return dataclasses.replace(self, **sections)

    def save(self, directory: str | Path) -> Path:
        """Write the resolved config as `config.json` and `config.toml` in `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.toml").write_text(self.to_toml())
        path = directory / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


@dataclasses.dataclass(frozen=True)
class Config(SectionedConfig):
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    prep: PrepConfig = dataclasses.field(default_factory=PrepConfig)
    vocode: VocodeConfig = dataclasses.field(default_factory=VocodeConfig)
    wavaug: WavAugConfig = dataclasses.field(default_factory=WavAugConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def __post_init__(self):
        # Checks that span sections (each section checks its own fields).
        m, f, a = self.model, self.features, self.augment
        if m.uses_waveform:
            if f.sample_rate_hz % m.waveform_rate_hz:
                raise ConfigError(
                    f"model.waveform_rate_hz={m.waveform_rate_hz} must divide "
                    f"features.sample_rate_hz={f.sample_rate_hz} (the branch decimates by an "
                    "integer factor)"
                )
            if a.enabled or a.val_mixing:
                # augment.py mixes power-mel spectra; the waveform would still be the
                # unmixed clip, so the branch would learn from targets that do not describe it.
                raise ConfigError(
                    "model.branches includes 'waveform', but the augmentation mixes voices and "
                    "noise in the power-mel domain only (augment.py), so the waveform input "
                    "would not match the mixed targets: set augment.enabled = false and "
                    "augment.val_mixing = false"
                )
        # The augmentation mixes in the power-mel domain and recomputes log-mel and MFCC
        # from the mix (augment.py); no other front-end can be rebuilt from a stored mel.
        keys = self.features.feature_keys
        if keys != ("mfcc", "mel"):
            on = [k for k in ("enabled", "val_mixing") if getattr(self.augment, k)]
            if on:
                raise ConfigError(
                    f"augment.{' and augment.'.join(on)} (mixing in the power-mel domain) needs "
                    f"features.sequence='mfcc' and features.image='mel'; this config reads "
                    f"sequence={self.features.sequence!r}, image={self.features.image!r}: "
                    "set augment.enabled=false and augment.val_mixing=false"
                )


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(Config)}
# `from __future__ import annotations` turns field types into strings; resolve them once.
SECTIONS = {name: globals()[t] if isinstance(t, str) else t for name, t in SECTIONS.items()}


# --------------------------------------------------------------------------- #
# Loading
# --------------------------------------------------------------------------- #
def read_toml(path: str | Path) -> dict[str, Any]:
    """The raw `{section: {key: value}}` mapping of a TOML config file (nothing checked yet).

    Raises:
        ConfigError: a missing file or invalid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


SET_ORIGIN = "given with --set"  # how errors name a value that came from an override


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    base: tuple[dict[str, Any], str] | None = None,
    sections: Sequence[str] | None = None,
    context: str = "for a trained model",
    root: type = Config,
):
    """Load `path` (TOML; None = no file) and apply `section.key=value` overrides.

    Precedence, lowest first: `base` (or the dataclass defaults), the keys
    `path` lists, the overrides. Errors name where a bad key or value came
    from: "in FILE" or "given with --set".

    Args:
        path: TOML config file.
        overrides: `section.key=value` strings (`--set`), parsed as TOML values.
        base: `(raw mapping, source name)` to start from instead of the
            defaults, e.g. a run's `config.json` or an export's metadata.
        sections: the only sections `path` and `overrides` may change (e.g.
            `("export",)` for a trained model, whose other sections describe
            how it was trained). The other sections of `path` are still
            checked (a typo is an error) but not used; an override of another
            section is an error.
        context: says when `sections` applies, for that error message.
        root: the top-level config class (default the audio `Config`; the
            text model passes `TextConfig`): its fields are the known sections.

    `root` is the top-level config class (default the audio `Config`; the text
    model passes `TextConfig`): its fields are the known sections.

    Raises:
        ConfigError: unknown section or key (named, with its origin), a value
            of the wrong type, a value a stage rejects, or an override outside
            `sections`.
    """
    raw: dict[str, dict[str, Any]] = {}
    source = "defaults"
    origins: dict[str, str] = {}
    if base is not None:
        raw = {k: dict(v) if isinstance(v, dict) else v for k, v in base[0].items()}
        source = base[1]
    if path is not None:
        from_file = read_toml(path)
        if sections is not None:
            config_from_dict(from_file, source=str(path), root=root)  # typos anywhere are errors
            from_file = {k: v for k, v in from_file.items() if k in sections}
        for name, values in from_file.items():
            if isinstance(values, dict) and isinstance(raw.get(name), dict):
                raw[name].update(values)  # the base's other keys keep the base's origin
                origins.update({f"{name}.{key}": f"in {path}" for key in values})
            else:
                raw[name] = values
                origins[name] = f"in {path}"
        if base is None:
            source = str(path)
    for item in overrides:
        section, key, value = parse_override(item)
        if sections is not None and section not in sections:
            allowed = ", ".join(f"{s}.*" for s in sections)
            raise ConfigError(
                f"override '{item}': only {allowed} can be changed {context} "
                "(the other sections describe the trained model)"
            )
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
            origins.setdefault(section, SET_ORIGIN)
        raw[section][key] = value
        origins[f"{section}.{key}"] = SET_ORIGIN
    return config_from_dict(raw, source=source, origins=origins, root=root)


def config_from_dict(
    raw: dict[str, Any],
    source: str = "dict",
    origins: dict[str, str] | None = None,
    *,
    root: type = Config,
):
    """A `root` config (default the audio `Config`) from `{section: {key: value}}` (a `config.json`).

    Args:
        raw: the sections to set; missing ones keep their defaults.
        source: what `raw` was read from, for error messages ("in SOURCE").
        origins: where single sections or keys came from instead, by
            `"section"` or `"section.key"`, as a phrase ("given with --set").
        root: the top-level config class; its fields are the known sections.
    """
    origins = origins or {}
    known = SECTIONS if root is Config else section_types(root)
    sections = {}
    for name, values in raw.items():
        where = origins.get(name, f"in {source}")
        if name not in known:
            raise ConfigError(f"unknown config section '{name}' {where}; known: {', '.join(known)}")
        if not isinstance(values, dict):
            raise ConfigError(f"config section '{name}' {where} must be a table")
        sections[name] = _build_section(name, known[name], values, source, origins)
    return root(**sections)


def section_types(root: type) -> dict[str, type]:
    """{section name: stage dataclass} of a top-level config class."""
    hints = typing.get_type_hints(root)
    return {f.name: hints[f.name] for f in dataclasses.fields(root)}


def parse_override(item: str) -> tuple[str, str, Any]:
    """`"train.epochs=1"` -> ("train", "epochs", 1). Values are parsed as TOML."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"override '{item}' must look like section.key=value")
    dotted, text = item.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()  # bare words such as gelu are strings
    return section, key, value


def _build_section(
    name: str, cls: type, values: dict[str, Any], source: str, origins: dict[str, str]
):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        where = origins.get(f"{name}.{key}", origins.get(name, f"in {source}"))
        if key not in known:
            raise ConfigError(
                f"unknown config key '{name}.{key}' {where}; "
                f"known keys of [{name}]: {', '.join(sorted(known))}"
            )
        try:
            kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
        except ConfigError as e:
            raise ConfigError(f"{e} ({where})") from None
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{name}] in {source}: {e}") from e


def _coerce(where: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(where, v, item_type) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _check_choice(where: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{where}={value!r} is not one of {choices}")


# --------------------------------------------------------------------------- #
# Serialising
# --------------------------------------------------------------------------- #
def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def config_hash(section: Any) -> str:
    """sha256 (first 16 hex digits) of a dataclass's fields, in key order."""
    data = json.dumps(_to_plain(dataclasses.asdict(section)), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            raise ConfigError(f"cannot write {value} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict[str, dict[str, Any]]) -> str:
    """Write a two-level {section: {key: value}} mapping as TOML."""
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def add_config_arguments(parser, default: Path = CONFIG_DIR / "default.toml") -> None:
    """The `--config` and `--set` arguments every CLI shares (`default`: the `--config` default)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help=f"TOML config (default: configs/{Path(default).name})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=1 (repeatable)",
    )
