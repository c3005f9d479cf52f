"""Copy-synthesis vocoders: fakes made from real clips, so that only the generation traces differ.

Why: a real clip and its re-synthesis share speaker, words, channel and level;
what separates them is what the vocoder did to the signal (Wang & Yamagishi,
"Spoofed training data for speech spoofing countermeasure can be efficiently
created using neural vocoders", ICASSP 2023). Paired copies of the user's own
real audio therefore teach the artifacts of generation rather than who speaks.
Here the vocoders are classic signal-processing ones that install from PyPI
and run on a CPU, each with its settings drawn widely per call from a numpy
`Generator`, so that no single setting becomes the thing a model learns.

One function per algorithm, a registry by name (`VOCODERS`), one entry point
(`vocode`). Every function takes `(waveform, sample_rate_hz, rng)` and shares
the same wrapper (`_Vocoder.__call__`):
1. checks: 1-D, finite, at least the algorithm's minimum duration, not silent
   (RMS under `SILENT_DBFS`); F0-driven algorithms also need at least
   `MIN_VOICED_SECONDS` of voicing (`_voicing`, one autocorrelation tracker for
   all of them), else `VocodeError`, whose `reason` prep records in errors.csv;
2. DC removed, resampled (soxr HQ) to the algorithm's natural rate (16 kHz, or
   8 kHz for codec2) and scaled to -20 dBFS RMS, the level the C libraries'
   thresholds expect;
3. the algorithm;
4. resampled back to `sample_rate_hz`, cut or zero-padded to the input length
   (each algorithm is time-aligned to within a frame already), scaled to the
   input RMS, and scaled down if the peak would pass `PEAK_MAX`.

The natural rates band-limit every copy to 8 kHz (codec2: 4 kHz). The dev
corpus is band-limited to 8 kHz anyway; full-band user audio needs
band-limiting augmentation on both classes, or the bandwidth becomes the cue.

| name | algorithm | package | settings drawn per call |
| --- | --- | --- | --- |
| `world` | WORLD: harvest or dio+stonemask, cheaptrick, d4c, synthesis | pyworld | F0 method, range, frame period 2.5-10 ms, cheaptrick q1, d4c threshold, envelope coded to 24-60 mel-cepstra (half), F0 x 0.8-1.25 (half) |
| `mlsa` | mel-cepstrum (mcep or cepstral smoothing) + MLSA filter on pulse/noise excitation | pysptk | order 20-40, alpha, window 20-64 ms, hop 5-10 ms, RAPT F0 range and voice bias, spectral floor, noise mix |
| `lpc` | LPC vocoder: pulse/noise excitation, or residual-excited (RELP: baseband residual, high band regenerated) | librosa, scipy | order 10-24, frame 20-40 ms, pre-emphasis, excitation mode, baseband cutoff |
| `psola` | Praat Manipulation, PSOLA overlap-add resynthesis | praat-parselmouth | pitch range, F0 scaling or stylisation, duration tier averaging 1 (length restored) or a constant stretch cropped |
| `griffinlim` | mel or linear magnitude, Griffin-Lim phase | librosa | n_fft, hop, n_mels 40-128, power, NNLS or pseudo-inverse mel inversion, 8-64 iterations, momentum, initial phase |
| `phase_vocoder` | STFT phase-vocoder time-stretch by r and back by 1/r, or random-phase resynthesis | librosa | n_fft, r in 0.6-1.5, mode |
| `codec2` | Codec 2 low-bitrate speech codec at 8 kHz | pycodec2 | mode 700C-3200 bit/s, input level, frame alignment |

`world` and `griffinlim` share their names with dev-corpus generator families
on purpose: the unseen-generator protocol drops a vocoder in the folds that
hold its family out.

Cost: CPU ms per second of audio in README "Copy-synthesis vocoders"
(`benchmarks/bench_vocode.py`). Everything here is single-threaded C or numpy;
run clips in parallel processes (with BLAS threads at 1) to use all cores, not in
threads: `psola` seeds Praat's process-global random generator per call, and two
threads doing so at once would make copies depend on timing.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

import numpy as np

# Below this RMS (dBFS) a clip is "silent": nothing to re-synthesise.
SILENT_DBFS = -70.0
# Output peak bound (the dev corpus normalises with a 0.95 peak ceiling).
PEAK_MAX = 0.99
# F0-driven algorithms refuse clips with less voicing than this (s).
MIN_VOICED_SECONDS = 0.1
# The level (RMS, linear) a clip is scaled to before an algorithm sees it: -20 dBFS.
_WORK_RMS = 0.1
# An algorithm's output may differ from the input length by this much (s) before it is cut/padded.
_LENGTH_TOLERANCE_SECONDS = 0.05


class VocodeError(ValueError):
    """A clip the vocoder cannot process; `reason` says why (too short, silent, unvoiced...)."""

    def __init__(self, reason: str, vocoder: str | None = None):
        super().__init__(f"{vocoder}: {reason}" if vocoder else reason)
        self.reason = reason
        self.vocoder = vocoder


class VocoderUnavailableError(RuntimeError):
    """The vocoder's optional package is missing or does not load (a setup problem, not a clip problem)."""


VocoderFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Vocoder:
    """One registered algorithm: its core at `rate_hz` plus the shared checks and level handling."""

    name: str
    core: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    rate_hz: int
    min_seconds: float
    modules: tuple[str, ...]  # import names the core needs
    packages: tuple[str, ...]  # their PyPI names, for the error message
    needs_voicing: bool  # F0-driven: refuse clips `_voicing` finds (almost) unvoiced

    def __call__(
        self, waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Re-synthesise one clip (see the module docstring for the steps).

        Args:
            waveform: `[samples]` mono float in [-1, 1].
            sample_rate_hz: rate of `waveform`, also the output rate.
            rng: source of every random setting; the same state gives the same output.

        Returns:
            `[samples]` float32, same length as `waveform`, finite, peak <= `PEAK_MAX`,
            RMS equal to the input's unless the peak bound lowered it.

        Raises:
            VocodeError: the clip is too short, silent, unvoiced (F0-driven
                algorithms) or the algorithm failed on it.
            VocoderUnavailableError: the algorithm's package is missing.
        """
        reason = _unavailable_reason(self)
        if reason:
            raise VocoderUnavailableError(f"vocoder {self.name!r} is unavailable: {reason}")
        x = np.asarray(waveform)
        if x.ndim != 1:
            raise ValueError(f"waveform must be 1-D [samples], got shape {x.shape}")
        n = x.size
        duration_s = n / sample_rate_hz
        if duration_s < self.min_seconds:
            raise VocodeError(
                f"too short for {self.name} ({duration_s:.2f} s < {self.min_seconds} s)", self.name
            )
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise VocodeError("non-finite samples in the input", self.name)
        x = x - x.mean()
        rms_in = _rms(x)
        if rms_in <= 10.0 ** (SILENT_DBFS / 20.0):
            raise VocodeError(
                f"silent (RMS {_dbfs(rms_in):.0f} dBFS <= {SILENT_DBFS:.0f} dBFS)", self.name
            )

        y = _resample(x, sample_rate_hz, self.rate_hz)
        y = y * (_WORK_RMS / max(_rms(y), 1e-12))
        try:
            # one voicing rule for all F0-driven algorithms, whatever F0 tracker each one uses
            if self.needs_voicing:
                _require_voiced(_voicing(y, self.rate_hz, self.rate_hz // 100), 0.01)
            y = np.asarray(self.core(y, rng), dtype=np.float64)
        except VocodeError as e:
            raise VocodeError(e.reason, self.name) from None
        except (RuntimeError, ValueError, ArithmeticError) as e:
            # what the C libraries raise on a clip they choke on (PraatError is a RuntimeError):
            # a clip problem for errors.csv. Programming errors (TypeError...) still propagate.
            raise VocodeError(f"failed: {type(e).__name__}: {e}", self.name) from e
        y = _resample(y, self.rate_hz, sample_rate_hz)

        if abs(y.size - n) > _LENGTH_TOLERANCE_SECONDS * sample_rate_hz:
            raise RuntimeError(
                f"{self.name} returned {y.size} samples for {n} (a bug in vocode.py)"
            )
        y = y[:n] if y.size >= n else np.pad(y, (0, n - y.size))
        if not np.all(np.isfinite(y)):
            raise VocodeError("non-finite output", self.name)
        rms_out = _rms(y)
        if rms_out < 1e-6:  # the algorithm ran at -20 dBFS: this is a failure, not a quiet clip
            raise VocodeError(f"silent output (RMS {_dbfs(rms_out):.0f} dBFS)", self.name)
        y = y * (rms_in / rms_out)
        peak = float(np.max(np.abs(y)))
        if peak > PEAK_MAX:
            y = y * (PEAK_MAX / peak)
        return y.astype(np.float32)


VOCODERS: dict[str, VocoderFn] = {}


def _register(
    name: str,
    rate_hz: int,
    min_seconds: float,
    modules: tuple[str, ...],
    packages: tuple[str, ...],
    needs_voicing: bool = False,
):
    def decorator(core):
        VOCODERS[name] = _Vocoder(
            name, core, rate_hz, min_seconds, modules, packages, needs_voicing
        )
        return core

    return decorator


def vocode(
    name: str, waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator
) -> np.ndarray:
    """Re-synthesise `waveform` with the vocoder `name`, settings drawn from `rng`.

    Args:
        name: a key of `VOCODERS`.
        waveform: `[samples]` mono float in [-1, 1] at `sample_rate_hz`.
        sample_rate_hz: input and output rate (32000 in the project).
        rng: the same state gives the same output.

    Returns:
        `[samples]` float32 at `sample_rate_hz`, the input's length and RMS, peak <= `PEAK_MAX`.

    Raises:
        ValueError: unknown `name` (the message lists the known ones).
        VocodeError: a clip this vocoder cannot process (`reason`: too short, silent, unvoiced...).
        VocoderUnavailableError: the vocoder's package is not installed.
    """
    if name not in VOCODERS:
        raise ValueError(f"unknown vocoder {name!r}; known: {', '.join(VOCODERS)}")
    return VOCODERS[name](waveform, sample_rate_hz, rng)


def available() -> dict[str, str | None]:
    """Each vocoder name -> None if it can run here, else why not (the package to install and the import error)."""
    return {name: _unavailable_reason(v) for name, v in VOCODERS.items()}


def _unavailable_reason(v: _Vocoder) -> str | None:
    for module, package in zip(v.modules, v.packages):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - an ABI mismatch raises more than ImportError
            return f"needs `pip install {package}` ({type(e).__name__}: {e})"
    return None


# --------------------------------------------------------------------------- #
# Shared helpers
# --------------------------------------------------------------------------- #
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _dbfs(rms: float) -> float:
    return 20.0 * np.log10(max(rms, 1e-12))


def _resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    if from_hz == to_hz:
        return x
    import soxr

    return soxr.resample(x, from_hz, to_hz, quality="HQ")


def _frames(x: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """`[frames, frame_length]` centred frames: frame t covers x around sample t * hop (zero padded)."""
    padded = np.pad(x, (frame_length // 2, frame_length // 2 + hop))
    count = 1 + (x.size + hop - 1) // hop
    idx = np.arange(frame_length)[None, :] + hop * np.arange(count)[:, None]
    return padded[idx]


def _voicing(
    x: np.ndarray, fs: int, hop: int, f0_min_hz: float = 60.0, f0_max_hz: float = 500.0
) -> np.ndarray:
    """F0 track by normalised autocorrelation, 0 where unvoiced.

    40 ms frames of the first difference (which keeps brown or hum-like noise from looking
    periodic); a frame is voiced when its autocorrelation has an interior peak in the F0 lag
    range above 0.5 (unbiased normalisation) and its energy is within 40 dB of the loudest
    frame. The shortest lag whose peak reaches 90 % of the best one is the period (fewer
    octave-down errors). Crude next to RAPT or harvest, but numpy-only, fast, and it calls
    white noise unvoiced.

    Args:
        x: `[samples]` at `fs`.
        fs: sample rate (Hz).
        hop: frame step (samples).

    Returns:
        `[frames]` F0 (Hz) at sample t * hop, 0 for unvoiced frames; frames = 1 + ceil(len / hop).
    """
    frame_length = int(0.04 * fs)
    frames = _frames(np.diff(x, prepend=x[:1]), frame_length, hop)
    frames = frames - frames.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * frame_length - 1).bit_length()
    spectrum = np.fft.rfft(frames, nfft)
    r = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, nfft)[:, :frame_length]
    energy = r[:, 0]
    lags = np.arange(frame_length)
    r = r / np.maximum(energy[:, None], 1e-20) * (frame_length / (frame_length - lags))[None, :]
    lo, hi = int(fs / f0_max_hz), min(int(fs / f0_min_hz), frame_length // 2)
    mid = r[:, lo:hi]
    is_peak = (mid > r[:, lo - 1 : hi - 1]) & (mid >= r[:, lo + 1 : hi + 1])
    peaks = np.where(is_peak, mid, -np.inf)
    best = peaks.max(axis=1)
    first = np.argmax(peaks >= 0.9 * best[:, None], axis=1)
    loud = 10.0 * np.log10(np.maximum(energy, 1e-20))
    voiced = (best > 0.5) & (loud > loud.max() - 40.0)
    # parabolic interpolation around the chosen lag
    k = lo + first
    a, b, c = r[np.arange(k.size), k - 1], r[np.arange(k.size), k], r[np.arange(k.size), k + 1]
    denom = a - 2 * b + c
    offset = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    f0 = fs / (k + np.clip(offset, -0.5, 0.5))
    return np.where(voiced, f0, 0.0)


def _require_voiced(f0: np.ndarray, frame_seconds: float) -> None:
    voiced_s = float(np.count_nonzero(f0 > 0)) * frame_seconds
    if voiced_s < MIN_VOICED_SECONDS:
        raise VocodeError(f"unvoiced ({voiced_s:.2f} s voiced < {MIN_VOICED_SECONDS} s)")


def _excitation(
    f0: np.ndarray, hop: int, n: int, fs: int, noise_mix: float, rng: np.random.Generator
) -> np.ndarray:
    """Pulse/noise excitation of unit power: a pulse train at F0 where voiced (plus `noise_mix` of noise), noise elsewhere.

    Args:
        f0: `[frames]` F0 (Hz) per `hop` samples, 0 = unvoiced.
        n: output length (samples).

    Returns:
        `[n]` float64.
    """
    f0_s = np.repeat(f0, hop)[:n]
    f0_s = np.pad(f0_s, (0, n - f0_s.size))
    voiced = f0_s > 0
    phase = np.cumsum(np.where(voiced, f0_s / fs, 0.0))
    pulse_at = np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)
    pulses = np.zeros(n)
    pulses[pulse_at] = np.sqrt(fs / f0_s[pulse_at])
    noise = rng.standard_normal(n)
    return np.where(voiced, np.sqrt(1.0 - noise_mix) * pulses + np.sqrt(noise_mix) * noise, noise)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


# --------------------------------------------------------------------------- #
# world: pyworld
# --------------------------------------------------------------------------- #
@_register("world", 16000, 0.5, ("pyworld",), ("pyworld",), needs_voicing=True)
def _world(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """WORLD analysis/synthesis; half the calls code the envelope to a TTS-like mel-cepstrum, half scale F0."""
    import pyworld

    fs = 16000
    frame_ms = float(_pick(rng, (2.5, 5.0, 5.0, 8.0, 10.0)))
    f0_floor, f0_ceil = float(rng.uniform(50.0, 80.0)), float(rng.uniform(450.0, 800.0))
    if rng.random() < 0.5:
        f0, t = pyworld.harvest(x, fs, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_ms)
    else:
        f0, t = pyworld.dio(
            x,
            fs,
            f0_floor=f0_floor,
            f0_ceil=f0_ceil,
            frame_period=frame_ms,
            allowed_range=rng.uniform(0.05, 0.2),
        )
        f0 = pyworld.stonemask(x, f0, t, fs)
    _require_voiced(f0, frame_ms / 1000.0)
    fft_size = pyworld.get_cheaptrick_fft_size(fs, f0_floor)
    sp = pyworld.cheaptrick(
        x, f0, t, fs, q1=float(rng.uniform(-0.3, 0.0)), f0_floor=f0_floor, fft_size=fft_size
    )
    ap = pyworld.d4c(x, f0, t, fs, threshold=float(rng.uniform(0.6, 0.95)), fft_size=fft_size)
    if rng.random() < 0.5:  # the resolution of a TTS acoustic model's features
        dim = int(rng.integers(24, 61))
        sp = pyworld.decode_spectral_envelope(
            pyworld.code_spectral_envelope(sp, fs, dim), fs, fft_size
        )
        ap = pyworld.decode_aperiodicity(pyworld.code_aperiodicity(ap, fs), fs, fft_size)
    if rng.random() < 0.5:
        f0 = f0 * rng.uniform(0.8, 1.25)
    return pyworld.synthesize(f0, sp, ap, fs, frame_period=frame_ms)


# --------------------------------------------------------------------------- #
# mlsa: pysptk
# --------------------------------------------------------------------------- #
@_register("mlsa", 16000, 0.3, ("pysptk",), ("pysptk",), needs_voicing=True)
def _mlsa(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mel-cepstral analysis and MLSA-filter synthesis from a pulse/noise excitation on a RAPT F0 track."""
    import pysptk
    from pysptk.synthesis import MLSADF, Synthesizer

    fs, nfft = 16000, 1024
    hop = int(_pick(rng, (80, 100, 120, 160)))
    win = int(rng.integers(320, nfft + 1))
    order = int(rng.integers(20, 41))
    alpha = float(pysptk.util.mcepalpha(fs) + rng.uniform(-0.05, 0.05))
    x = x + rng.normal(0.0, 1e-4, x.size)  # a floor for log spectra of digital silence
    f0_min, f0_max = float(rng.uniform(50.0, 80.0)), float(rng.uniform(400.0, 600.0))
    # RAPT only: pysptk's SWIPE returns different tracks for the same input from call to call.
    f0 = pysptk.rapt(
        (x * 32768.0).astype(np.float32),
        fs,
        hop,
        min=f0_min,
        max=f0_max,
        voice_bias=float(rng.uniform(-0.2, 0.3)),
    )
    _require_voiced(f0, hop / fs)

    window = np.zeros(nfft)
    window[(nfft - win) // 2 : (nfft - win) // 2 + win] = np.blackman(win)
    power = np.abs(np.fft.rfft(_frames(x, nfft, hop) * window, nfft)) ** 2
    # A floor 50-80 dB under each frame's peak bounds the cepstrum's dynamic range: without it a
    # tonal frame gives coefficients the MLSA filter's Pade approximation cannot follow (it diverges).
    power = np.maximum(
        power, power.max(axis=1, keepdims=True) * 10.0 ** (-rng.uniform(5.0, 8.0)) + 1e-12
    )
    if rng.random() < 0.5:  # UELS mel-cepstral analysis (Tokuda et al.)
        mc = pysptk.mcep(power, order=order, alpha=alpha, etype=1, eps=0.0, itype=4)
    else:  # cepstral smoothing of the periodogram, warped to the mel scale
        mc = pysptk.sp2mc(power, order=order, alpha=alpha)
    f0 = np.pad(f0, (0, max(0, mc.shape[0] - f0.size)))[: mc.shape[0]]
    source = _excitation(
        f0.astype(np.float64), hop, mc.shape[0] * hop, fs, float(rng.uniform(0.0, 0.3)), rng
    )
    synthesizer = Synthesizer(MLSADF(order=order, alpha=alpha, pd=5), hop)
    y = synthesizer.synthesis(source, pysptk.mc2b(mc, alpha))
    return y[: x.size]


# --------------------------------------------------------------------------- #
# lpc: numpy / scipy / librosa
# --------------------------------------------------------------------------- #
@_register("lpc", 16000, 0.3, ("librosa", "scipy"), ("librosa", "scipy"), needs_voicing=True)
def _lpc(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """LPC vocoder: all-pole envelope per frame driven by pulse/noise (half) or a residual-excited RELP excitation."""
    import librosa
    import scipy.signal

    fs = 16000
    hop = int(_pick(rng, (80, 120, 160)))
    f0 = _voicing(
        x,
        fs,
        hop,
        f0_min_hz=float(rng.uniform(55.0, 75.0)),
        f0_max_hz=float(rng.uniform(400.0, 500.0)),
    )
    _require_voiced(f0, hop / fs)
    frame_length = int(rng.uniform(0.02, 0.04) * fs)
    order = int(rng.integers(10, 25))
    pre = float(rng.uniform(0.85, 0.97))
    xp = scipy.signal.lfilter([1.0, -pre], [1.0], x) + rng.normal(0.0, 1e-5, x.size)
    frames = _frames(xp, frame_length, hop) * np.hanning(frame_length)
    a = librosa.lpc(frames, order=order, axis=-1)  # [frames, order + 1], a[:, 0] == 1
    count = a.shape[0]
    padded = np.pad(xp, (0, count * hop - xp.size))

    # residual through the per-frame inverse filter A(z), FIR state carried over block edges
    residual = np.empty_like(padded)
    state = np.zeros(order)
    for t in range(count):
        block = slice(t * hop, (t + 1) * hop)
        residual[block], state = scipy.signal.lfilter(a[t], [1.0], padded[block], zi=state)
    gains = np.sqrt(np.mean(residual.reshape(count, hop) ** 2, axis=1) + 1e-12)

    if rng.random() < 0.5:  # pulse/noise: F0 and gain only
        source = _excitation(f0, hop, count * hop, fs, float(rng.uniform(0.0, 0.2)), rng)
        source *= np.repeat(gains, hop)
    else:  # RELP: keep the residual's baseband, regenerate the band above it
        cutoff = float(rng.uniform(500.0, 1500.0))
        sos = scipy.signal.butter(8, cutoff, fs=fs, output="sos")
        base = scipy.signal.sosfilt(sos, residual)
        if rng.random() < 0.5:  # spectral folding: decimate without anti-aliasing, zero-stuff back
            step = max(2, int(fs / 2 / cutoff))
            high = np.zeros_like(base)
            high[::step] = base[::step] * step
        else:  # full-wave rectification spreads harmonics of the baseband upwards
            high = np.abs(base) - np.abs(base).mean()
        high = scipy.signal.sosfilt(
            scipy.signal.butter(8, cutoff, btype="high", fs=fs, output="sos"), high
        )
        high_rms = np.sqrt(np.mean(high.reshape(count, hop) ** 2, axis=1) + 1e-12)
        base_rms = np.sqrt(np.mean(base.reshape(count, hop) ** 2, axis=1) + 1e-12)
        target_high = np.sqrt(np.maximum(gains**2 - base_rms**2, 0.0))
        source = base + high * np.repeat(target_high / high_rms, hop)

    y = np.empty_like(source)
    state = np.zeros(order)
    for t in range(count):
        block = slice(t * hop, (t + 1) * hop)
        y[block], state = scipy.signal.lfilter([1.0], a[t], source[block], zi=state)
    y = scipy.signal.lfilter([1.0], [1.0, -pre], y)
    return y[: x.size]


# --------------------------------------------------------------------------- #
# psola: praat-parselmouth
# --------------------------------------------------------------------------- #
@_register("psola", 16000, 0.3, ("parselmouth",), ("praat-parselmouth",), needs_voicing=True)
def _psola(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Praat Manipulation + overlap-add (PSOLA) resynthesis with a changed pitch contour and local tempo."""
    import parselmouth
    from parselmouth.praat import call, run

    fs = 16000
    # Praat's PSOLA draws from Praat's own global generator (unvoiced stretches under a duration
    # change): seed it from `rng` so that a copy depends on the rng alone.
    run(f"random_initializeWithSeedUnsafelyButPredictably ({int(rng.integers(1, 2**31))})")
    duration_s = x.size / fs
    sound = parselmouth.Sound(x, sampling_frequency=fs)
    pitch_floor, pitch_ceiling = float(rng.uniform(60.0, 90.0)), float(rng.uniform(350.0, 600.0))
    manipulation = call(
        sound,
        "To Manipulation",
        float(_pick(rng, (0.005, 0.01, 0.015))),
        pitch_floor,
        pitch_ceiling,
    )
    pitch = call(manipulation, "Extract pitch tier")
    points = call(pitch, "Get number of points")
    _require_voiced(np.ones(points), 0.01)
    pitch_mode = rng.random()
    if pitch_mode < 0.4:
        call(pitch, "Multiply frequencies", 0.0, duration_s, float(rng.uniform(0.8, 1.25)))
    elif pitch_mode < 0.7:  # piecewise-linear contour, as rule-based and unit-selection TTS produce
        call(pitch, "Stylize...", float(rng.uniform(1.0, 4.0)), "Semitones")
        call(pitch, "Multiply frequencies", 0.0, duration_s, float(rng.uniform(0.9, 1.1)))
    call([pitch, manipulation], "Replace pitch tier")

    duration_mode = rng.random()
    crop = False
    if duration_mode < 0.4:  # local tempo varies, the total is restored: mean of the tier == 1
        k = int(rng.integers(3, 9))
        times = np.sort(rng.uniform(0.0, duration_s, k))
        values = rng.uniform(0.8, 1.25, k)
        grid = np.linspace(0.0, duration_s, 2001)
        values = values / np.trapz(np.interp(grid, times, values), grid) * duration_s
        crop = True  # the integral is exact to a few samples; cut the rest
    elif duration_mode < 0.7:  # slower throughout, then cropped to the input length
        times, values = np.array([0.0]), np.array([rng.uniform(1.05, 1.25)])
        crop = True
    else:
        times, values = np.array([]), np.array([])
    if times.size:
        tier = call(manipulation, "Extract duration tier")
        for t, v in zip(times, values):
            call(tier, "Add point", float(t), float(v))
        call([tier, manipulation], "Replace duration tier")
    y = call(manipulation, "Get resynthesis (overlap-add)").values[0]
    if crop:
        y = y[: x.size]
    return np.pad(y, (0, max(0, x.size - y.size)))


# --------------------------------------------------------------------------- #
# griffinlim and phase_vocoder: librosa
# --------------------------------------------------------------------------- #
@_register("griffinlim", 16000, 0.3, ("librosa",), ("librosa",))
def _griffinlim(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Magnitude (mel, 70 %, or linear) kept, phase rebuilt by Griffin-Lim."""
    import librosa

    fs = 16000
    n_fft = int(_pick(rng, (512, 768, 1024, 1024, 2048)))
    if n_fft == 2048:  # Griffin-Lim's cost is frames x n_fft: keep the long window at a long hop
        hop = int(_pick(rng, (256, 512)))
    else:
        hop = int(_pick(rng, (n_fft // 8, n_fft // 4, 128, 160, 200, 256)))
    power = float(_pick(rng, (1.0, 2.0)))
    magnitude = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
    if rng.random() < 0.7:
        n_mels = int(rng.integers(40, 129))
        fmin = float(rng.uniform(0.0, 80.0))
        basis = librosa.filters.mel(sr=fs, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fs / 2)
        mel = basis @ magnitude**power
        if (
            rng.random() < 0.3
        ):  # librosa's non-negative least squares (what mel_to_audio does): slow
            magnitude = librosa.feature.inverse.mel_to_stft(
                mel, sr=fs, n_fft=n_fft, power=power, fmin=fmin, fmax=fs / 2
            )
        else:  # pseudo-inverse, clipped at 0: ~100x faster, smears differently
            magnitude = np.maximum(np.linalg.pinv(basis) @ mel, 0.0) ** (1.0 / power)
    return librosa.griffinlim(
        magnitude,
        n_iter=int(rng.integers(8, 65)),
        hop_length=hop,
        n_fft=n_fft,
        momentum=float(rng.uniform(0.5, 0.99)),
        init=_pick(rng, ("random", None)),
        random_state=int(rng.integers(2**31)),
        length=x.size,
    )


@_register("phase_vocoder", 16000, 0.3, ("librosa",), ("librosa",))
def _phase_vocoder(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """STFT phase vocoder: time-stretch by r and back by 1/r (70 %), or the magnitude with random phase."""
    import librosa

    n_fft = int(_pick(rng, (256, 512, 1024, 2048)))
    hop = n_fft // int(_pick(rng, (4, 4, 8)))
    spectrum = librosa.stft(x, n_fft=n_fft, hop_length=hop)
    if rng.random() < 0.7:
        rate = float(np.exp(rng.uniform(0.1, np.log(1.5)) * _pick(rng, (-1.0, 1.0))))
        stretched = librosa.istft(
            librosa.phase_vocoder(spectrum, rate=rate, hop_length=hop), hop_length=hop
        )
        back = librosa.phase_vocoder(
            librosa.stft(stretched, n_fft=n_fft, hop_length=hop), rate=1 / rate, hop_length=hop
        )
        return librosa.istft(back, hop_length=hop, length=x.size)
    phase = np.exp(2j * np.pi * rng.random(spectrum.shape))
    return librosa.istft(np.abs(spectrum) * phase, hop_length=hop, length=x.size)


# --------------------------------------------------------------------------- #
# codec2: pycodec2
# --------------------------------------------------------------------------- #
CODEC2_MODES = (3200, 2400, 1600, 1400, 1300, 1200, 700)  # bit/s; 700 is 700C


def _in_fresh_process(fn: Callable[[], np.ndarray], n: int) -> np.ndarray:
    """`fn()` (returning `[n]` int16) in a forked child, so that it starts from the same C library state.

    Why: codec2's decoder draws random phases from a process-global generator
    (`codec2_rand`, a static LCG that no API resets), so in-process results depend on
    every earlier decode. A fork of a process that never decodes starts from the
    library's initial state each time, which makes a copy a function of the rng alone.
    Costs one fork (a few ms; more for a parent with a large heap). Without `os.fork`
    (Windows) it runs in-process and is not reproducible.
    """
    import os

    if not hasattr(os, "fork"):
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: compute, write, leave without running any parent cleanup
        status = 1
        try:
            os.close(read_fd)
            data = np.ascontiguousarray(fn(), dtype=np.int16).tobytes()
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or len(data) != 2 * n:
        raise VocodeError(f"codec2 child process failed (status {status}, {len(data)} bytes)")
    return np.frombuffer(data, dtype=np.int16)


@_register("codec2", 8000, 0.3, ("pycodec2",), ("pycodec2>=3.1,<4",))
def _codec2(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Codec 2 encode + decode at 8 kHz, random mode, input level and frame alignment."""
    import pycodec2

    codec = pycodec2.Codec2(int(_pick(rng, CODEC2_MODES)))
    frame = codec.samples_per_frame()
    offset = int(rng.integers(frame))
    level = 10.0 ** (rng.uniform(-26.0, -14.0) / 20.0) / _WORK_RMS
    count = -(-(offset + x.size) // frame)
    pcm = np.zeros(count * frame)
    pcm[offset : offset + x.size] = x * level
    pcm = np.clip(np.round(pcm * 32767.0), -32768, 32767).astype(np.int16)

    def encode_decode() -> np.ndarray:
        frames = [pcm[i * frame : (i + 1) * frame] for i in range(count)]
        return np.concatenate([codec.decode(codec.encode(f)) for f in frames])

    out = _in_fresh_process(encode_decode, count * frame)
    return out[offset : offset + x.size].astype(np.float64) / 32767.0
