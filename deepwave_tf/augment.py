"""Batch augmentation on power-mel: voice mixing, noise, silence, time shift, SpecAugment.

Why: train clips hold one clean voice each, while the challenge test clips hold
0, 1 or 2 voices over background noise. The pipeline therefore builds such
mixtures from the training batch itself.

Why power-mel, before the log: the power spectra of independent sources add,
to first order (the cross terms of |A + B|^2 average out over a mel band and a
frame), which is what happens physically when two voices or a voice and noise
are recorded together. Records store the log-mel (dB), so a batch goes
`features.db_to_power` -> mix -> `features.features_from_power_mel`, which
recomputes BOTH the log-mel (with the per-clip `top_db` floor) and the MFCC
through the same code as prep, so the two model inputs always describe the same
mixture. Mixing waveforms would be exact but needs the waveform in the records
(about 3x the size) and an STFT per example per epoch; mixing power-mel costs a
few element-wise ops per batch.

Noise: `make_noise_bank` builds a bank once, seeded, when the pipeline is built,
from two sources. Synthetic: white, pink and brown noise, mains hum with
harmonics, random harmonic note sequences (music-like), clicks and impulses, and
band-limited noise with a level modulation. Recorded (`augment.noise_dir`,
default data/noise/, built by scripts/build_noise_bank.py): 5 s pieces of
instrumental music, ambience and sound effects from licensed Debian packages,
because a synthetic-only bank left noise-only test clips (music, ambience,
effects) looking like a real voice. `augment.recorded_noise_share` of the
entries are random circular crops of recorded pieces. The recorded pieces are
split by a hash of their source (`noise_part`) into a train part and a disjoint
val part, so the validation mixing hears other recordings than training. Every
waveform (RMS 1, band-limited like the data) goes through `features.power_mel`.
Every draw from the bank mixes two entries with a random weight, a random
circular time shift and a random spectral tilt, so a small bank gives many
different noises.

What `apply_plan` does to a batch, per example (all draws are vectorised,
stateless and come from one `seed`, so a plan is reproducible):
1. time shift (training, `time_shift`): roll the clip by a random number of frames;
2. with probability `mix_prob`, overlay a partner from the same batch (a random
   permutation, itself rolled), at `gain_db` in +-`mix_gain_db` relative to the
   clip; targets become the union (fake = max, real = max);
3. `noise_only_prob` of the examples become noise alone and `silence_prob`
   near-silence (faint noise at `silence_dbfs_*`, or exact digital zero with
   probability `silence_zero_prob`, as in the challenge test); targets (0, 0);
4. `background_prob` of the voiced examples get bank noise at an SNR in
   [`snr_db_min`, `snr_db_max`] (SNR of mean powers over the clip);
5. every non-silent example gets a faint stationary noise floor
   `floor_db_min`..`floor_db_max` dB under its level (test clips never hold
   digital silence; zero padding of short train clips does);
6. the result is scaled back to the level of the original clip, so the level
   distribution stays the data's (noise-only examples take that level too);
7. log-mel and MFCC are recomputed from the mixed power;
8. SpecAugment (training only): `time_masks` masks of 0..`time_mask_frames`
   frames and `freq_masks` masks of 0..`freq_mask_bins` mel bands on the
   log-mel, set to the clip's mean log-mel (the SpecAugment "mean value"); the
   MFCC is recomputed from the masked log-mel when `mask_mfcc`.

`clean_prob` of the training examples (0 by default) skip steps 2-5 and 8: the
clip alone, only rolled in time; every other example is drawn as without them.

Validation (`training=False`) uses steps 2-7 with a plan seeded by the batch
index, so the same mixtures come back every epoch (never a clean example).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import math
from pathlib import Path

import numpy as np
import scipy.fft
import tensorflow as tf

from deepwave_tf import features as F
from deepwave_tf.config import REPO_ROOT, AugmentConfig, ConfigError, FeatureConfig

NOISE_KINDS = ("white", "pink", "brown", "hum", "music", "clicks", "band")
STATIONARY_KINDS = ("white", "pink", "brown")  # used for the noise floor
RECORDED_PREFIX = "rec_"  # recorded entries are kind "rec_" + their sources.csv kind
NOISE_PARTS = ("train", "val")
NOISE_SOURCES = "sources.csv"
_VAL_GROUPS = 4  # one recorded group in about 4 goes to the val part (see `noise_part`)
VOICED, NOISE_ONLY, SILENCE = 0, 1, 2
_TILT_DB = 6.0  # random spectral tilt of bank draws, +- dB from lowest to highest band
_EPS = 1e-20
# Philox everywhere: "auto_select" may pick another generator under XLA (or on a
# GPU), and then the same seed would draw another plan.
_RNG = "philox"
_UNIT = 1 << 24  # float draws: an integer in [0, 2^24) / 2^24 (see `_uniform`)


def _uniform(shape, seed, minval=0.0, maxval=1.0) -> tf.Tensor:
    """Float32 uniform in [minval, maxval) from a stateless seed, the same on every backend.

    `tf.random.stateless_uniform` draws the same integers with and without XLA,
    but maps bits to floats differently under XLA; building the float from an
    integer draw keeps a plan identical whether or not it is compiled.
    """
    k = tf.random.stateless_uniform(shape, seed, 0, _UNIT, tf.int32, alg=_RNG)
    return minval + (maxval - minval) * (tf.cast(k, tf.float32) / _UNIT)


# --------------------------------------------------------------------------- #
# Noise bank
# --------------------------------------------------------------------------- #
def _shaped_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (exponent / 2.0), n)


def _band_limit(x: np.ndarray, rate: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1.0 / rate)
    spec[(f < lo_hz) | (f > hi_hz)] = 0.0
    return np.fft.irfft(spec, x.size)


def _harmonics(t: np.ndarray, f0: float, amps: np.ndarray, rate: int, rng) -> np.ndarray:
    out = np.zeros_like(t)
    for h, a in enumerate(amps, start=1):
        if f0 * h < rate / 2:
            out += a * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return out


def synth_noise(kind: str, rng: np.random.Generator, num_samples: int, rate: int) -> np.ndarray:
    """One synthetic background waveform of `kind` (see `NOISE_KINDS`).

    Returns:
        `[num_samples]` float64, not yet level-normalised.
    """
    t = np.arange(num_samples) / rate
    if kind == "white":
        return rng.standard_normal(num_samples)
    if kind == "pink":
        return _shaped_noise(rng, num_samples, 1.0)
    if kind == "brown":
        return _shaped_noise(rng, num_samples, 2.0)
    if kind == "hum":  # mains hum: 50/60 Hz and harmonics, plus a little hiss
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.99, 1.01)
        amps = rng.uniform(0.1, 1.0, 12) / np.arange(1, 13) ** rng.uniform(0.3, 1.5)
        hum = _harmonics(t, f0, amps, rate, rng)
        return hum / hum.std() + 10 ** (-rng.uniform(20, 40) / 20) * rng.standard_normal(
            num_samples
        )
    if kind == "music":  # a sequence of harmonic notes (1-3 at a time) with decaying envelopes
        out = np.zeros(num_samples)
        start = 0
        while start < num_samples:
            length = int(rng.uniform(0.1, 0.6) * rate)
            seg = t[: min(length, num_samples - start)]
            env = np.exp(-seg * rng.uniform(1.0, 8.0)) * np.minimum(1.0, seg / 0.01)
            for _ in range(rng.integers(1, 4)):
                f0 = 440.0 * 2 ** ((rng.integers(36, 85) - 69) / 12)
                amps = 1.0 / np.arange(1, 9) ** rng.uniform(0.5, 2.0)
                out[start : start + seg.size] += env * _harmonics(seg, f0, amps, rate, rng)
            start += length
        return out
    if kind == "clicks":  # Poisson impulses: short decaying noise bursts over faint hiss
        out = 10 ** (-rng.uniform(30, 50) / 20) * rng.standard_normal(num_samples)
        count = rng.poisson(rng.uniform(2, 30) * num_samples / rate)
        for pos in rng.integers(0, num_samples, count):
            length = int(rng.uniform(0.001, 0.01) * rate)
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
            burst = burst[: num_samples - pos]
            out[pos : pos + burst.size] += rng.uniform(0.2, 1.0) * burst
        return out
    if kind == "band":  # band-limited noise with a slow level modulation
        lo = rng.uniform(80.0, 2000.0)
        hi = min(lo * rng.uniform(1.5, 6.0), rate / 2)
        x = _band_limit(rng.standard_normal(num_samples), rate, lo, hi)
        depth = rng.uniform(0.3, 1.0)
        env = 1.0 + depth * np.sin(
            2 * np.pi * rng.uniform(0.2, 4.0) * t + rng.uniform(0, 2 * np.pi)
        )
        return x * env
    raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")


# --------------------------------------------------------------------------- #
# Recorded noise (data/noise/, scripts/build_noise_bank.py)
# --------------------------------------------------------------------------- #
def resolve_noise_dir(noise_dir: str) -> Path:
    """`augment.noise_dir` as a path: relative ones are taken from the repo root."""
    path = Path(noise_dir).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def noise_part(group: str) -> str:
    """The part, "train" or "val", of a recorded piece's `group` (sources.csv), by a stable hash.

    All pieces cut from one original file share a group, so no recording is
    heard by both the training and the validation mixing.
    """
    digest = int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:8], 16)
    return "val" if digest % _VAL_GROUPS == 0 else "train"


def recorded_pieces(noise_dir: str, part: str) -> tuple[tuple[str, Path], ...]:
    """The recorded pieces of one part: `(kind, path)` each, in sources.csv order.

    Args:
        noise_dir: a directory with `sources.csv` (columns file, kind, group, ...)
            and the Ogg files it lists; relative: from the repo root.
        part: "train" or "val" (see `noise_part`).

    Raises:
        ConfigError: no such directory, no sources.csv, a listed file missing,
            or no piece in `part`; each names the path.
    """
    if part not in NOISE_PARTS:
        raise ValueError(f"unknown noise part {part!r}; known: {NOISE_PARTS}")
    root = resolve_noise_dir(noise_dir)
    table = root / NOISE_SOURCES
    if not table.is_file():
        raise ConfigError(
            f"augment.noise_dir: no recorded noise at {root} ({NOISE_SOURCES} missing); "
            'build it with scripts/build_noise_bank.py, or set augment.noise_dir = "" '
            "for synthetic noise only"
        )
    with open(table, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if noise_part(r["group"]) == part]
    if not rows:
        raise ConfigError(f"augment.noise_dir: {table} lists no piece for the {part} part")
    pieces = tuple((row["kind"], root / row["file"]) for row in rows)
    for _, path in pieces:
        if not path.is_file():
            raise ConfigError(f"augment.noise_dir: {path} (listed in {table}) is missing")
    return pieces


def decode_piece(path: Path, rate_hz: int) -> np.ndarray:
    """A recorded piece as mono float64 `[samples]` at `rate_hz` (soxr resampling)."""
    import soundfile as sf
    import soxr

    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != rate_hz:
        x = soxr.resample(x, rate, rate_hz, quality="HQ")
    return np.asarray(x, np.float64)


def recorded_count(aug: AugmentConfig) -> int:
    """Recorded bank entries: `recorded_noise_share` of all, next to the synthetic ones."""
    if not aug.noise_dir or aug.recorded_noise_share <= 0.0:
        return 0
    synthetic = aug.noise_bank_per_kind * len(NOISE_KINDS)
    share = aug.recorded_noise_share
    return max(1, round(synthetic * share / (1.0 - share)))


@dataclasses.dataclass(frozen=True)
class NoiseBank:
    """Power-mel of background noises, each from a waveform of RMS 1.

    Attributes:
        power: `[K, n_mels, frames]` float32 power-mel.
        kinds: the kind of each entry (K names: the synthetic ones grouped by
            kind in `NOISE_KINDS` order, then the recorded ones, "rec_music",
            "rec_ambience", "rec_sfx").
        stationary: `[S]` int32 indices of the white/pink/brown entries (noise floor).
        rows: `[K * frames, n_mels]` the same power, time-major and flattened:
            a rolled draw is then one row gather (contiguous bands), about 7x
            faster than gathering along the last axis.
        band_means: `[K, n_mels]` mean power of each band over time, so the
            mean of a (tilted, weighted) draw is known without reducing it.
    """

    power: tf.Tensor
    kinds: tuple[str, ...]
    stationary: tf.Tensor
    rows: tf.Tensor
    band_means: tf.Tensor

    @classmethod
    def from_power(cls, power: tf.Tensor, kinds: tuple[str, ...]) -> NoiseBank:
        power = tf.convert_to_tensor(power, tf.float32)
        k, n_mels, frames = power.shape
        stationary = [i for i, kind in enumerate(kinds) if kind in STATIONARY_KINDS] or list(
            range(k)
        )
        return cls(
            power=power,
            kinds=tuple(kinds),
            stationary=tf.constant(stationary, tf.int32),
            rows=tf.reshape(tf.transpose(power, [0, 2, 1]), [k * frames, n_mels]),
            band_means=tf.reduce_mean(power, axis=2),
        )

    @property
    def size(self) -> int:
        return len(self.kinds)

    @property
    def frames(self) -> int:
        return int(self.power.shape[2])


def make_noise_bank(
    cfg: FeatureConfig, aug: AugmentConfig, seed: int, *, part: str = "train"
) -> NoiseBank:
    """Synthetic and recorded background noises, seeded, -> power-mel.

    Synthetic: `aug.noise_bank_per_kind` waveforms of each of `NOISE_KINDS`.
    Recorded (unless `aug.noise_dir` is "" or `aug.recorded_noise_share` is 0):
    `recorded_count(aug)` random circular crops (loops if a piece is shorter
    than a clip) of the pieces of `part` in `aug.noise_dir`, taken in a seeded
    order that uses every piece before repeating one. Each waveform is
    band-limited to `aug.noise_max_hz` (0 = full band), scaled to RMS 1 and
    passed through `features.power_mel`, so scaling an entry by `10 ** (L / 10)`
    gives the power-mel of that noise at L dB re RMS 1. The result depends only
    on the features, the bank fields, the seed and the part, so it is cached:
    train and val pipelines, tuner trials and tests do not build it again.

    Args:
        part: "train" (the training mixing) or "val" (the validation mixing):
            which recorded pieces are used; the two sets are disjoint.

    Raises:
        ConfigError: recorded noise asked for, but `aug.noise_dir` has none
            (the message names the path).
    """
    count = recorded_count(aug)
    noise_dir = str(resolve_noise_dir(aug.noise_dir)) if count else ""
    return _make_noise_bank(
        cfg, aug.noise_bank_per_kind, aug.noise_max_hz, seed, noise_dir, count, part
    )


@functools.lru_cache(maxsize=4)
def _make_noise_bank(
    cfg: FeatureConfig,
    per_kind: int,
    max_hz: float,
    seed: int,
    noise_dir: str = "",
    recorded: int = 0,
    part: str = "train",
) -> NoiseBank:
    rng = np.random.default_rng(seed)
    # Synthesise n_fft extra samples on each side and drop the edge frames, whose
    # power dips (zero padding of centred frames): bank draws are rolled, and a
    # dip in the middle of a noise would be an artefact no recording has.
    # The length is rounded up to one with small prime factors: FFTs of
    # num_samples + 2 n_fft (164096 = 2^8 * 641 at 32 kHz) are 50x slower.
    length = scipy.fft.next_fast_len(cfg.num_samples + 2 * cfg.n_fft, real=True)
    skip = -(-cfg.n_fft // cfg.hop_length_samples)
    rate = cfg.sample_rate_hz
    kinds, waves = [], []

    def add(kind: str, x: np.ndarray) -> None:
        if 0 < max_hz < rate / 2:
            x = _band_limit(x, rate, 0.0, max_hz)
        waves.append((x / max(np.sqrt(np.mean(x**2)), 1e-12)).astype(np.float32))
        kinds.append(kind)

    for kind in NOISE_KINDS:
        for _ in range(per_kind):
            add(kind, synth_noise(kind, rng, length, rate))
    if recorded:
        # Its own stream: the synthetic entries stay the same with or without it.
        rec_rng = np.random.default_rng([seed, 1])
        pieces = recorded_pieces(noise_dir, part)
        order = np.concatenate(
            [rec_rng.permutation(len(pieces)) for _ in range(-(-recorded // len(pieces)))]
        )[:recorded]
        decoded: dict[int, np.ndarray] = {}  # only the pieces drawn are decoded
        for i in order:
            kind, path = pieces[i]
            if i not in decoded:
                decoded[i] = decode_piece(path, rate)
            piece = decoded[i]
            start = rec_rng.integers(0, piece.size)
            add(
                RECORDED_PREFIX + kind,
                np.take(piece, start + np.arange(length), mode="wrap"),
            )
    power = tf.concat(
        [
            F.power_mel(tf.constant(np.stack(waves[i : i + 16])), cfg)
            for i in range(0, len(waves), 16)
        ],
        axis=0,
    )[:, :, skip : skip + cfg.num_frames]
    return NoiseBank.from_power(power, tuple(kinds))


# --------------------------------------------------------------------------- #
# Plans: every random draw of one batch
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class NoiseDraw:
    """How one noise per example is drawn from the bank; all `[B]`."""

    index_a: tf.Tensor  # int32 bank entry
    index_b: tf.Tensor  # int32 bank entry
    weight: tf.Tensor  # float32 in [0, 1]: a * weight + b * (1 - weight)
    shift: tf.Tensor  # int32 circular shift, frames
    tilt_db: tf.Tensor  # float32 spectral tilt, lowest -> highest band


@dataclasses.dataclass(frozen=True)
class MixPlan:
    """Every random choice for one batch, `[B]` each; `apply_plan` executes it.

    Tests build plans by hand to check exact results.
    """

    shift: tf.Tensor  # int32 frames the clip is rolled by
    partner: tf.Tensor  # int32 batch index of the overlaid partner
    partner_shift: tf.Tensor  # int32 frames the partner is rolled by
    mix: tf.Tensor  # bool: partner overlaid
    gain_db: tf.Tensor  # float32 partner level relative to the clip
    kind: tf.Tensor  # int32 VOICED | NOISE_ONLY | SILENCE
    background: tf.Tensor  # bool: background noise added (voiced only)
    snr_db: tf.Tensor  # float32
    floor_db: tf.Tensor  # float32 dB under the clip level; inf = no floor
    silence_dbfs: tf.Tensor  # float32 level of a near-silent example (dB re RMS 1)
    silence_zero: tf.Tensor  # bool: exact digital zero
    noise: NoiseDraw  # background / noise-only noise
    floor_noise: NoiseDraw  # noise floor (stationary entries only)
    time_masks: tuple[tf.Tensor, tf.Tensor]  # (start, width) int32 [B, time_masks]
    freq_masks: tuple[tf.Tensor, tf.Tensor]  # (start, width) int32 [B, freq_masks]


def _draw_noise(seed, batch: int, candidates: tf.Tensor, frames: int) -> NoiseDraw:
    s = tf.random.experimental.stateless_split(seed, 5, alg=_RNG)
    n = tf.shape(candidates)[0]

    def pick(k):
        return tf.gather(
            candidates, tf.random.stateless_uniform([batch], s[k], 0, n, tf.int32, alg=_RNG)
        )

    return NoiseDraw(
        index_a=pick(0),
        index_b=pick(1),
        weight=_uniform([batch], s[2]),
        shift=tf.random.stateless_uniform([batch], s[3], 0, frames, tf.int32, alg=_RNG),
        tilt_db=_uniform([batch], s[4], -_TILT_DB, _TILT_DB),
    )


def _draw_masks(seed, batch: int, count: int, max_width: int, length: int):
    """`count` masks per example: width uniform in 0..max_width, start in 0..length-width."""
    s = tf.random.experimental.stateless_split(seed, 2, alg=_RNG)
    max_width = min(max_width, length)
    width = tf.random.stateless_uniform([batch, count], s[0], 0, max_width + 1, tf.int32, alg=_RNG)
    u = _uniform([batch, count], s[1])
    start = tf.cast(tf.floor(u * tf.cast(length - width + 1, tf.float32)), tf.int32)
    return start, width


def draw_plan(
    seed: tf.Tensor,
    batch: tf.Tensor | int,
    cfg: FeatureConfig,
    aug: AugmentConfig,
    bank: NoiseBank,
    *,
    training: bool,
) -> MixPlan:
    """Draw a `MixPlan` for a batch of `batch` examples from a stateless `seed` `[2]`.

    `training=False` (validation mixing) draws no clip shift and no SpecAugment masks.
    """
    frames = cfg.num_frames
    s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 16, alg=_RNG)

    def uni(k, lo=0.0, hi=1.0):  # [B] uniform from the k-th sub-seed
        return _uniform([batch], s[k], lo, hi)

    def roll(k):  # [B] frame shifts
        return tf.random.stateless_uniform([batch], s[k], 0, frames, tf.int32, alg=_RNG)

    shift_on = aug.time_shift
    zeros_i = tf.zeros([batch], tf.int32)
    u_kind = uni(4)
    kind = tf.where(
        u_kind < aug.noise_only_prob,
        NOISE_ONLY,
        tf.where(u_kind < aug.noise_only_prob + aug.silence_prob, SILENCE, VOICED),
    )
    no_masks = (tf.zeros([batch, 0], tf.int32), tf.zeros([batch, 0], tf.int32))
    floor_db = (
        uni(9, aug.floor_db_min, aug.floor_db_max)
        if aug.noise_floor
        else tf.fill([batch], math.inf)
    )
    mix = uni(3) < aug.mix_prob
    background = uni(6) < aug.background_prob
    time_masks = (
        _draw_masks(s[14], batch, aug.time_masks, aug.time_mask_frames, frames)
        if training
        else no_masks
    )
    freq_masks = (
        _draw_masks(s[15], batch, aug.freq_masks, aug.freq_mask_bins, cfg.n_mels)
        if training
        else no_masks
    )
    if training and aug.clean_prob > 0:
        # Clean examples: the clip as it is (time shift only), no partner, noise, floor or mask.
        clean = uni(8) < aug.clean_prob
        kind = tf.where(clean, VOICED, kind)
        mix, background = mix & ~clean, background & ~clean
        floor_db = tf.where(clean, math.inf, floor_db)
        time_masks, freq_masks = (
            (start, tf.where(clean[:, None], 0, width)) for start, width in (time_masks, freq_masks)
        )
    return MixPlan(
        shift=roll(0) if (training and shift_on) else zeros_i,
        partner=tf.cast(tf.argsort(uni(1)), tf.int32),
        partner_shift=roll(2) if shift_on else zeros_i,
        mix=mix,
        gain_db=uni(5, -aug.mix_gain_db, aug.mix_gain_db),
        kind=tf.cast(kind, tf.int32),
        background=background,
        snr_db=uni(7, aug.snr_db_min, aug.snr_db_max),
        floor_db=floor_db,
        silence_dbfs=uni(10, aug.silence_dbfs_min, aug.silence_dbfs_max),
        silence_zero=uni(11) < aug.silence_zero_prob,
        noise=_draw_noise(s[12], batch, tf.range(bank.size, dtype=tf.int32), frames),
        floor_noise=_draw_noise(s[13], batch, bank.stationary, frames),
        time_masks=time_masks,
        freq_masks=freq_masks,
    )


# --------------------------------------------------------------------------- #
# Executing a plan
# --------------------------------------------------------------------------- #
def roll_frames(x: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Circularly roll each example of `x` `[B, n_mels, frames]` by `shift[b]` frames (later)."""
    frames = tf.shape(x)[-1]
    idx = tf.math.floormod(tf.range(frames)[None, :] - shift[:, None], frames)  # [B, frames]
    return tf.gather(x, idx, axis=2, batch_dims=1)


def _db(x):
    return tf.pow(10.0, x / 10.0)


def _rolled_rows(source: tf.Tensor, frames: int, index: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Example `index[b]` of a time-major flat `source` `[N * frames, n_mels]`, rolled by `shift[b]`.

    Returns:
        `[B, frames, n_mels]`.
    """
    t = tf.range(frames)[None, :]
    rows = index[:, None] * frames + tf.math.floormod(t - shift[:, None], frames)
    return tf.gather(source, rows)


def _tilt(bank: NoiseBank, tilt_db: tf.Tensor) -> tf.Tensor:
    """`[B, n_mels]` power gains of a linear (in dB) spectral tilt."""
    ramp = tf.linspace(-1.0, 1.0, bank.power.shape[1])
    return _db(tilt_db[:, None] * ramp[None, :])


def _noise_mean(bank: NoiseBank, draw: NoiseDraw) -> tf.Tensor:
    """`[B]` mean power of each drawn noise (closed form: a roll keeps the mean)."""
    w = draw.weight[:, None]
    bands = w * tf.gather(bank.band_means, draw.index_a) + (1.0 - w) * tf.gather(
        bank.band_means, draw.index_b
    )
    return tf.reduce_mean(_tilt(bank, draw.tilt_db) * bands, axis=1)


def _noise_terms(bank: NoiseBank, draw: NoiseDraw, scale: tf.Tensor):
    """The two rolled bank entries of a draw and their band gains, time-major.

    The draw's power times `scale` `[B]` is `a * ga + b * gb` (`[B, frames,
    n_mels]`); the gains `[B, 1, n_mels]` fold in the weights, tilt and scale.
    """
    tilt = _tilt(bank, draw.tilt_db)  # [B, n_mels]
    w = draw.weight[:, None]
    a = _rolled_rows(bank.rows, bank.frames, draw.index_a, draw.shift)
    b = _rolled_rows(bank.rows, bank.frames, draw.index_b, draw.shift)
    ga = (scale[:, None] * w * tilt)[:, None, :]
    gb = (scale[:, None] * (1.0 - w) * tilt)[:, None, :]
    return a, ga, b, gb


def noise_power(bank: NoiseBank, draw: NoiseDraw) -> tf.Tensor:
    """`[B, n_mels, frames]` noise power-mel of a draw, at about RMS-1 level."""
    a, ga, b, gb = _noise_terms(bank, draw, tf.ones_like(draw.weight))
    return tf.transpose(a * ga + b * gb, [0, 2, 1])


def mix_targets(labels: dict[str, tf.Tensor], plan: MixPlan) -> dict[str, tf.Tensor]:
    """Union targets for mixtures, (0, 0) for noise-only / silence. Values `[B]` float32."""
    out = {}
    for key, y in labels.items():
        y = tf.cast(y, tf.float32)
        mixed = tf.where(plan.mix, tf.maximum(y, tf.gather(y, plan.partner)), y)
        out[key] = tf.where(plan.kind == VOICED, mixed, tf.zeros_like(y))
    return out


def _mix_time_major(power_tm: tf.Tensor, plan: MixPlan, bank: NoiseBank) -> tf.Tensor:
    """Steps 1-6 of the module docstring on time-major power `[B, frames, n_mels]`.

    Every component's mean power is known in closed form (a roll keeps the
    mean; a mean of a sum is the sum of the means), so all levels reduce to
    per-example coefficients and the whole mixture is one weighted sum of
    gathered rows: no full-size reductions, no full-size `where`.
    """
    frames = power_tm.shape[1]
    batch = tf.shape(power_tm)[0]
    flat = tf.reshape(power_tm, [-1, power_tm.shape[2]])
    level = tf.reduce_mean(power_tm, axis=[1, 2])  # [B], restored at the end
    voiced = tf.cast(plan.kind == VOICED, tf.float32)
    noise_only = tf.cast(plan.kind == NOISE_ONLY, tf.float32)
    silence = plan.kind == SILENCE
    mix = tf.cast(plan.mix, tf.float32)
    background = tf.cast(plan.background, tf.float32)

    # Level bookkeeping, [B] each.
    gain = _db(plan.gain_db)
    voice_level = level * (1.0 + mix * gain)
    snr = _db(-plan.snr_db)
    noise_mean = tf.maximum(_noise_mean(bank, plan.noise), _EPS)
    floor_mean = _noise_mean(bank, plan.floor_noise)
    total_mean = voiced * voice_level * (1.0 + background * snr) + noise_only * noise_mean
    floor_rel = _db(-plan.floor_db)  # 0 for floor_db = inf
    final = level / tf.maximum(total_mean * (1.0 + floor_rel), _EPS)  # back to the clip's level

    k_clip = voiced * final
    k_partner = (
        voiced * mix * final * level * gain / tf.maximum(tf.gather(level, plan.partner), _EPS)
    )
    k_noise = final * (voiced * background * voice_level * snr / noise_mean + noise_only)
    k_floor = final * total_mean * floor_rel / tf.maximum(floor_mean, _EPS)
    # Near-silent examples: the floor noise alone at an absolute level (or zero).
    quiet = tf.where(plan.silence_zero, 0.0, _db(plan.silence_dbfs))
    k_floor = tf.where(silence, quiet, k_floor)

    clip = _rolled_rows(flat, frames, tf.range(batch), plan.shift)
    # The partner is the partner's rolled clip, rolled again.
    partner = _rolled_rows(
        flat, frames, plan.partner, tf.gather(plan.shift, plan.partner) + plan.partner_shift
    )
    na, ga, nb, gb = _noise_terms(bank, plan.noise, k_noise)
    fa, fga, fb, fgb = _noise_terms(bank, plan.floor_noise, k_floor)
    return tf.add_n(
        [
            clip * k_clip[:, None, None],
            partner * k_partner[:, None, None],
            na * ga,
            nb * gb,
            fa * fga,
            fb * fgb,
        ]
    )


def mix_power(power: tf.Tensor, plan: MixPlan, bank: NoiseBank) -> tf.Tensor:
    """Steps 1-6 of the module docstring on power-mel `[B, n_mels, frames]` -> same shape."""
    mixed = _mix_time_major(tf.transpose(power, [0, 2, 1]), plan, bank)
    return tf.transpose(mixed, [0, 2, 1])


def _masks_time_major(plan: MixPlan, frames: int, n_mels: int) -> tf.Tensor:
    """`[B, frames, n_mels]` bool: True inside the plan's SpecAugment masks."""

    def band(masks, length):
        start, width = masks  # [B, count]
        pos = tf.range(length)[None, None, :]
        inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # [B, count, L]
        return tf.reduce_any(inside, axis=1)  # [B, L]

    return band(plan.time_masks, frames)[:, :, None] | band(plan.freq_masks, n_mels)[:, None, :]


def _mix_time_major_features(
    mel_db_tm: tf.Tensor, plan: MixPlan, bank: NoiseBank, cfg: FeatureConfig, aug: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Steps 1-8 on a time-major log-mel `[B, frames, n_mels]` -> (log-mel, MFCC), time-major.

    Time-major throughout: bank draws and rolls are row gathers, the MFCC is a
    product on the last axis, and no transpose is needed in between.
    The log is natural (`features.power_to_ln`); its dB factor is folded
    into what reads it: the DCT matrix, the masks' mean and the final
    multiply, which XLA fuses with the caller's transpose. Written as
    `power_to_db` then DCT, XLA:CPU wrote the dB-scaled batch out once for
    each reader: two extra passes over the data (seen in its HLO dump).
    """
    frames, n_mels = mel_db_tm.shape[1], mel_db_tm.shape[2]
    mixed = _mix_time_major(F.db_to_power(mel_db_tm), plan, bank)
    ln_mel = F.power_to_ln(mixed, cfg)  # the per-clip peak is layout-free
    dct = F.dct_matrix(cfg, scale=F.DB_PER_NEPER)
    masked = plan.time_masks[0].shape[-1] or plan.freq_masks[0].shape[-1]
    if not masked:
        return F.DB_PER_NEPER * ln_mel, tf.tensordot(ln_mel, dct, axes=1)
    # SpecAugment (training only): the masks take the clip's mean log-mel.
    mask = _masks_time_major(plan, frames, n_mels)
    masked_ln = tf.where(mask, tf.reduce_mean(ln_mel, axis=[1, 2], keepdims=True), ln_mel)
    mfcc = tf.tensordot(masked_ln if aug.mask_mfcc else ln_mel, dct, axes=1)
    return F.DB_PER_NEPER * masked_ln, mfcc


def apply_plan(
    features: dict[str, tf.Tensor],
    labels: dict[str, tf.Tensor],
    plan: MixPlan,
    bank: NoiseBank,
    cfg: FeatureConfig,
    aug: AugmentConfig,
    *,
    time_major: bool = False,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Execute `plan` on a batch.

    Args:
        features: `{"mel": [B, n_mels, frames, 1]}` (log-mel dB; any "mfcc" is
            ignored), or with `time_major` `{"mel": [B, frames, n_mels]}` (as
            the records store it).
        labels: `{"fake": [B], "real": [B]}`.

    Returns:
        `({"mfcc": [B, frames, n_mfcc], "mel": [B, n_mels, frames, 1]}, targets)`:
        features recomputed from the mixed power-mel, float32 targets.
    """
    mel = features[F.MEL]
    mel_tm = mel if time_major else tf.transpose(mel[..., 0], [0, 2, 1])
    log_mel, mfcc = _mix_time_major_features(mel_tm, plan, bank, cfg, aug)
    mel = tf.transpose(log_mel, [0, 2, 1])
    return {F.MFCC: mfcc, F.MEL: mel[..., None]}, mix_targets(labels, plan)


def augment_batch(
    features: dict[str, tf.Tensor],
    labels: dict[str, tf.Tensor],
    seed: tf.Tensor,
    cfg: FeatureConfig,
    aug: AugmentConfig,
    bank: NoiseBank,
    *,
    training: bool,
    time_major: bool = False,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Draw a plan from `seed` `[2]` and apply it (see `apply_plan`, also for `time_major`).

    With `aug.jit_compile`, everything from the batch's log-mel to its new
    log-mel, MFCC and targets (plan, transposes, mixing, log, DCT, masks)
    compiles into one XLA computation: about half the CPU time per example of
    plain TensorFlow ops (benchmarks/bench_train.py).
    """

    def core(features, labels, seed):
        plan = draw_plan(seed, tf.shape(features[F.MEL])[0], cfg, aug, bank, training=training)
        return apply_plan(features, labels, plan, bank, cfg, aug, time_major=time_major)

    if aug.jit_compile:
        core = tf.function(core, jit_compile=True, autograph=False, reduce_retracing=True)
    # Only the mel goes in: the MFCC is recomputed (and may not have been parsed).
    return core({F.MEL: features[F.MEL]}, labels, seed)
