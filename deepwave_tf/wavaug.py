"""Offline waveform augmentation that blurs channel cues: RawBoost, codecs, band limits, gain, reverb.

Why this exists: on the dev corpus the model learns *where a clip came from*
(speaker, recording chain, level, bandwidth) instead of the traces that
synthesis leaves, and scores at chance on generators it never saw (issue 10).
Applying the same random channel to both classes makes those source cues
useless to the classifier, so that what is left to separate the classes is the
generation itself.

Where it runs: offline, in prep. Computing features costs ~5 ms of CPU per clip,
so recomputing STFTs in the tf.data pipeline could not feed training at 10x its
speed on 2 cores, and codec round trips are C-library work anyway. Prep writes
N augmented views of each train clip through its "derived copies" mechanism
and calls `random_chain` for each view; the names it returns go into the
record's metadata.

Every augmentation has the same signature and contract::

    fn(waveform: float32 [n], sample_rate_hz: int, rng: np.random.Generator) -> float32 [n]

same length, finite, peak <= 1 (rescaled, never clipped), time-aligned with the
input (zero-phase filters, delay-compensated codecs and resamplers), and a pure
function of its inputs and the generator's state (same seed, same output).
Some take keyword-only overrides of their random draws (tests use them).

The algorithms:

- RawBoost (Tak et al., ICASSP 2022), our own implementation of the paper's
  three algorithms: ``rawboost_lnl`` (linear and non-linear convolutive noise:
  the signal and its powers x^2..x^5 through random multi-band FIR filters,
  the non-linear terms 5-20 dB down), ``rawboost_isd`` (impulsive
  signal-dependent noise on up to 10 % of the samples), ``rawboost_ssi``
  (stationary white noise through a random multi-band filter, SNR 10-40 dB).
  Rescaling from the paper's 16 kHz defaults to 32 kHz: every quantity in Hz
  stays in Hz (centre frequencies 20-8000 Hz, bandwidths 100-1000 Hz) and the
  filter lengths scale with the rate (10-100 taps become 20-200), so that each
  filter keeps its duration (0.6-6.3 ms) and hence its shape in Hz: at 32 kHz
  the filters are the paper's filters. The centres stop at 8 kHz, the paper's
  Nyquist frequency, rather than moving up to 16 kHz: our clips (the dev
  corpus, and anything normalised like it) carry nothing above 8 kHz, and a
  cascade centred up there attenuates the speech band by 60 dB in the median
  (measured over 200 draws; 23 dB with the 8 kHz bound, as at 16 kHz). The
  impulsive noise is defined per sample fraction and needs no change. One
  departure from the paper: ``rawboost_lnl`` restores the input's RMS level
  after filtering (the paper leaves the output at whatever level the filter
  gives, 23 dB down in the median and sometimes 100 dB); level is ``gain``'s job.
- Codec round trips through libsndfile (soundfile's bundled library encodes
  MP3, Opus, Vorbis and GSM 6.10): resample to the codec's rate with soxr,
  encode and decode in memory at a random bitrate, crop the encoder delay,
  resample back. libsndfile removes the MP3 encoder delay itself when the
  decoder finds LAME's gapless header; when it does not (some rates and low
  bitrates), the decoded stream is longer than the input and starts 1105
  samples late (576 of LAME's encoder delay + 529 of mpg123's decoder delay),
  which we crop.
- ``bandlimit`` (zero-phase Butterworth low-pass at 3.4-8 kHz and high-pass at
  50-300 Hz), ``resample_chain`` (through 1-3 of 8 / 11.025 / 16 / 22.05 kHz
  with soxr at a random quality), ``gain`` (-12..+6 dB) and ``reverb`` (a
  synthetic exponentially decaying noise tail, RT60 0.1-0.5 s, 8-20 dB below
  the direct sound).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence

import numpy as np

Augment = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# RawBoost's 16 kHz defaults (Tak et al. 2022, their released code's CLI defaults),
# and the rate they are defined at. See the module docstring for the rescaling.
_RAWBOOST_RATE_HZ = 16000
_RB_BANDS = 5  # filters in each multi-band cascade
_RB_CENTRE_HZ = (20.0, 8000.0)
_RB_BANDWIDTH_HZ = (100.0, 1000.0)
_RB_TAPS_AT_16K = (10, 100)
_RB_ORDER = 5  # x, x^2, ..., x^5
_RB_NONLINEAR_DB = (-20.0, -5.0)  # gain of the non-linear terms against the linear one
_RB_IMPULSE_MAX_PERCENT = 10.0
_RB_IMPULSE_GAIN = 2.0
_RB_SNR_DB = (10.0, 40.0)

# LAME's encoder delay (576) + mpg123's decoder delay (529), in samples at the codec rate.
_MP3_UNCOMPENSATED_DELAY = 1105
_SOXR_QUALITIES = ("LQ", "MQ", "HQ", "VHQ")


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _check_input(waveform: np.ndarray) -> np.ndarray:
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"waveform must be 1-D and non-empty, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("waveform contains NaN or inf")
    return x


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the end of `y` to exactly `n` samples."""
    if y.shape[0] >= n:
        return y[:n]
    return np.pad(y, (0, n - y.shape[0]))


def _finish(y: np.ndarray, n: int) -> np.ndarray:
    """Exact length `n`, float32, finite, peak <= 1 (rescaled, not clipped)."""
    y = _fit_length(np.asarray(y, dtype=np.float64), n)
    if not np.all(np.isfinite(y)):  # every algorithm here is finite on finite input
        raise RuntimeError("augmentation produced NaN or inf")
    peak = float(np.max(np.abs(y))) if n else 0.0
    if peak > 1.0:
        y = y / peak
    return y.astype(np.float32)


def _resample(x: np.ndarray, rate_hz: int, target_hz: int, quality: str = "HQ") -> np.ndarray:
    if rate_hz == target_hz:
        return x
    import soxr

    return soxr.resample(x, rate_hz, target_hz, quality=quality)


def _multiband_fir(rng: np.random.Generator, sample_rate_hz: int, gain_db: float) -> np.ndarray:
    """RawBoost's random filter: a cascade of `_RB_BANDS` random band-pass FIRs.

    Each band-pass is a Hamming-windowed linear-phase FIR with a random centre
    (20-8000 Hz, below Nyquist), bandwidth (100-1000 Hz) and odd length; the cascade is
    scaled so that its largest gain is `gain_db`.

    Returns:
        `[taps]` float64, odd length (linear phase, delay (taps - 1) / 2).
    """
    from scipy import signal

    nyquist = sample_rate_hz / 2
    scale = sample_rate_hz / _RAWBOOST_RATE_HZ
    lo_taps, hi_taps = (int(round(t * scale)) for t in _RB_TAPS_AT_16K)
    b = np.ones(1)
    for _ in range(_RB_BANDS):
        centre = rng.uniform(_RB_CENTRE_HZ[0], min(_RB_CENTRE_HZ[1], nyquist))
        width = rng.uniform(*_RB_BANDWIDTH_HZ)
        taps = int(rng.integers(lo_taps, hi_taps + 1)) | 1  # odd: a type I linear-phase FIR
        f1 = max(centre - width / 2, 1e-3)
        f2 = min(centre + width / 2, nyquist - 1e-3)
        band = signal.firwin(taps, [f1, f2], pass_zero=False, window="hamming", fs=sample_rate_hz)
        b = np.convolve(b, band)
    peak_gain = np.max(np.abs(np.fft.rfft(b, 8192)))
    return b * (10 ** (gain_db / 20) / max(peak_gain, 1e-12))


def _fir_aligned(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Filter with an odd-length linear-phase FIR, its group delay removed (same length)."""
    from scipy import signal

    return signal.oaconvolve(x, b, mode="same")


def _encode_decode(x: np.ndarray, rate_hz: int, fmt: str, subtype: str, **kwargs) -> np.ndarray:
    """One in-memory libsndfile round trip; returns what the decoder gives (any length)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate_hz, format=fmt, subtype=subtype, **kwargs)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32", always_2d=False)
    return y


def _codec_roundtrip(
    x: np.ndarray,
    sample_rate_hz: int,
    codec_rate_hz: int,
    fmt: str,
    subtype: str,
    uncompensated_delay: int = 0,
    **kwargs,
) -> np.ndarray:
    """Resample to `codec_rate_hz`, encode, decode, crop the delay, resample back (same length)."""
    n = x.shape[0]
    xc = _resample(x.astype(np.float64), sample_rate_hz, codec_rate_hz)
    m = xc.shape[0]
    if m == 0:  # shorter than one sample at the codec rate: nothing to encode
        return _finish(x, n)
    peak = float(np.max(np.abs(xc)))
    headroom = 0.98 / peak if peak > 0.98 else 1.0  # the encoders clip at full scale
    yc = _encode_decode(xc * headroom, codec_rate_hz, fmt, subtype, **kwargs) / headroom
    # A decoder that returns more than was encoded may not have removed the encoder
    # delay: keep whichever start (0 or the known delay) matches the input best.
    yc = yc.astype(np.float64)
    lag = 0
    if yc.shape[0] > m and uncompensated_delay:
        scores = [np.dot(_fit_length(yc[c:], m), xc) for c in (0, uncompensated_delay)]
        lag = uncompensated_delay if scores[1] > scores[0] else 0
    yc = _fit_length(yc[lag:], m)
    return _finish(_resample(yc, codec_rate_hz, sample_rate_hz), n)


# --------------------------------------------------------------------------- #
# RawBoost
# --------------------------------------------------------------------------- #
def rawboost_lnl(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """RawBoost 1: linear and non-linear convolutive noise.

    y = sum over k = 1..5 of FIR_k(x^k): each power of the signal through its own
    random multi-band filter, the linear term at 0 dB peak gain, the non-linear
    ones 5-20 dB down; then DC removed and the input's RMS level restored.

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate.
        rng: the source of every random draw.

    Returns:
        `[n]` float32, peak <= 1.
    """
    x = _check_input(waveform).astype(np.float64)
    from scipy import fft

    n = x.shape[0]
    filters = [
        _multiband_fir(rng, sample_rate_hz, 0.0 if k == 1 else rng.uniform(*_RB_NONLINEAR_DB))
        for k in range(1, _RB_ORDER + 1)
    ]
    # The filters are linear: sum the five filtered powers in one frequency-domain
    # pass (one FFT per power, one inverse) instead of five convolutions. Each
    # odd-length linear-phase filter is centred in a common odd length, so that
    # one crop removes every filter's delay.
    taps = max(b.shape[0] for b in filters)
    size = fft.next_fast_len(n + taps - 1, real=True)
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex128)
    power = np.ones_like(x)
    for b in filters:
        power = power * x
        side = (taps - b.shape[0]) // 2
        spectrum += fft.rfft(power, size) * fft.rfft(np.pad(b, (side, side)), size)
    y = fft.irfft(spectrum, size)[(taps - 1) // 2 : (taps - 1) // 2 + n]
    y -= y.mean()
    rms_in, rms_out = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(y**2))
    if rms_out > 0:
        y *= rms_in / rms_out
    return _finish(y, x.shape[0])


def rawboost_isd(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """RawBoost 2: impulsive signal-dependent additive noise.

    A random 0-10 % of the samples get x[i] * 2 * u1 * u2 added (u1, u2 uniform
    in [-1, 1]): clicks whose size follows the signal. Independent of the rate.

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate (unused: the noise is per sample).
        rng: the source of every random draw.

    Returns:
        `[n]` float32, peak <= 1.
    """
    del sample_rate_hz
    x = _check_input(waveform).astype(np.float64)
    n = x.shape[0]
    count = int(n * rng.uniform(0, _RB_IMPULSE_MAX_PERCENT) / 100)
    where = rng.permutation(n)[:count]
    factor = rng.uniform(-1, 1, count) * rng.uniform(-1, 1, count)
    y = x.copy()
    y[where] += _RB_IMPULSE_GAIN * x[where] * factor
    return _finish(y, n)


def rawboost_ssi(
    waveform: np.ndarray,
    sample_rate_hz: int,
    rng: np.random.Generator,
    *,
    snr_db: float | None = None,
) -> np.ndarray:
    """RawBoost 3: stationary signal-independent additive noise.

    White Gaussian noise through a random multi-band filter, added at a random
    SNR of 10-40 dB (signal and noise energies over the whole clip). A silent
    clip gets no noise (the SNR is undefined).

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate.
        rng: the source of every random draw.
        snr_db: fixed SNR instead of the random one.

    Returns:
        `[n]` float32, peak <= 1.
    """
    x = _check_input(waveform).astype(np.float64)
    noise = _fir_aligned(rng.standard_normal(x.shape[0]), _multiband_fir(rng, sample_rate_hz, 0.0))
    snr = rng.uniform(*_RB_SNR_DB) if snr_db is None else snr_db
    signal_norm, noise_norm = np.linalg.norm(x), np.linalg.norm(noise)
    if signal_norm == 0 or noise_norm == 0:
        return _finish(x, x.shape[0])
    noise *= signal_norm / noise_norm / 10 ** (snr / 20)
    return _finish(x + noise, x.shape[0])


# --------------------------------------------------------------------------- #
# Codec round trips
# --------------------------------------------------------------------------- #
def mp3(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """MP3 (LAME through libsndfile), constant bitrate, at 16 / 22.05 / 24 / 32 kHz.

    libsndfile maps its compression level linearly onto the bitrates of the MPEG
    version the rate implies: 320-32 kb/s at 32 kHz (MPEG-1), 160-8 kb/s at
    16-24 kHz (MPEG-2). We draw a bitrate (32-128 kb/s at 32 kHz, 16-64 kb/s
    below, log-uniform) and set the level for it; LAME snaps it to the nearest
    allowed bitrate. The codec rates also band-limit the clip (LAME low-passes
    further at low bitrates).

    Returns:
        `[n]` float32, peak <= 1, aligned with the input.
    """
    x = _check_input(waveform)
    rate = int(rng.choice([16000, 22050, 24000, 32000]))
    lo, hi, top, bottom = (32, 128, 320, 32) if rate >= 32000 else (16, 64, 160, 8)
    kbps = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    level = min((top - kbps) / (top - bottom), 0.99)  # libsndfile refuses level 1.0
    return _codec_roundtrip(
        x,
        sample_rate_hz,
        rate,
        "MP3",
        "MPEG_LAYER_III",
        uncompensated_delay=_MP3_UNCOMPENSATED_DELAY,
        compression_level=level,
        bitrate_mode="CONSTANT",
    )


def opus(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Opus in Ogg (libopus through libsndfile) at 8 / 12 / 16 / 24 / 48 kHz.

    Compression level 0.6-0.97: about 110 down to 13 kb/s (measured on white
    noise with libsndfile 1.2.2, at every rate; the level-to-bitrate map is
    libsndfile's, and it is not linear).
    Opus only takes those five rates.

    Returns:
        `[n]` float32, peak <= 1, aligned with the input.
    """
    x = _check_input(waveform)
    rate = int(rng.choice([8000, 12000, 16000, 24000, 48000]))
    level = float(rng.uniform(0.6, 0.97))
    return _codec_roundtrip(x, sample_rate_hz, rate, "OGG", "OPUS", compression_level=level)


def vorbis(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Ogg Vorbis (libvorbis through libsndfile, VBR) at 16 / 22.05 / 32 kHz.

    Compression level 0.3-0.99: about 55-95 down to 35-52 kb/s, depending on
    the rate (measured on white noise with libsndfile 1.2.2).

    Returns:
        `[n]` float32, peak <= 1, aligned with the input.
    """
    x = _check_input(waveform)
    rate = int(rng.choice([16000, 22050, 32000]))
    level = float(rng.uniform(0.3, 0.99))
    return _codec_roundtrip(x, sample_rate_hz, rate, "OGG", "VORBIS", compression_level=level)


def gsm(waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """GSM 6.10 full-rate (13 kb/s) in WAV at 8 kHz: the telephone-network codec.

    GSM 6.10 has one bitrate; the randomness is in the clip's level going in
    (-6..0 dB), which the codec's quantisation is sensitive to.

    Returns:
        `[n]` float32, peak <= 1, aligned with the input.
    """
    x = _check_input(waveform)
    drive = 10 ** (rng.uniform(-6, 0) / 20)
    y = _codec_roundtrip(x * drive, sample_rate_hz, 8000, "WAV", "GSM610")
    return _finish(y.astype(np.float64) / drive, x.shape[0])


# --------------------------------------------------------------------------- #
# Band limits, resampling, gain, reverb
# --------------------------------------------------------------------------- #
def bandlimit(
    waveform: np.ndarray,
    sample_rate_hz: int,
    rng: np.random.Generator,
    *,
    lowpass_hz: float | None = None,
    highpass_hz: float | None = None,
) -> np.ndarray:
    """Zero-phase Butterworth low-pass (3.4-8 kHz) and high-pass (50-300 Hz).

    Each filter has a random order of 4-8, run forwards and backwards
    (`sosfiltfilt`: zero phase, twice the order, -6 dB at the cut-off), so the
    roll-off is 48-96 dB per octave: band limits as steep as real channels'.

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate.
        rng: the source of every random draw.
        lowpass_hz: fixed low-pass cut-off instead of the random one.
        highpass_hz: fixed high-pass cut-off instead of the random one.

    Returns:
        `[n]` float32, peak <= 1.
    """
    from scipy import signal

    x = _check_input(waveform).astype(np.float64)
    low = rng.uniform(3400, 8000) if lowpass_hz is None else lowpass_hz
    high = rng.uniform(50, 300) if highpass_hz is None else highpass_hz
    low = min(low, 0.45 * sample_rate_hz)
    orders = rng.integers(4, 9, size=2)
    y = x
    for order, kind, cutoff in zip(orders, ("lowpass", "highpass"), (low, high)):
        sos = signal.butter(int(order), cutoff, btype=kind, fs=sample_rate_hz, output="sos")
        # scipy's default edge padding (3 x (2 x sections + 1)), shortened for a tiny clip
        y = signal.sosfiltfilt(sos, y, padlen=min(3 * (2 * len(sos) + 1), y.shape[0] - 1))
    return _finish(y, x.shape[0])


def resample_chain(
    waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator
) -> np.ndarray:
    """Down to and through 1-3 of 8 / 11.025 / 16 / 22.05 kHz, then back, with soxr.

    Each hop uses a random soxr quality (LQ, MQ, HQ, VHQ), so the anti-alias
    filters' roll-offs vary as much as the bandwidths do. soxr compensates its
    filter delay, so the output stays aligned.

    Returns:
        `[n]` float32, peak <= 1.
    """
    x = _check_input(waveform).astype(np.float64)
    hops = int(rng.integers(1, 4))
    rates = [int(r) for r in rng.choice([8000, 11025, 16000, 22050], size=hops, replace=False)]
    y, rate = x, sample_rate_hz
    for target in [*rates, sample_rate_hz]:
        y = _resample(y, rate, target, quality=str(rng.choice(_SOXR_QUALITIES)))
        rate = target
    return _finish(y, x.shape[0])


def gain(
    waveform: np.ndarray,
    sample_rate_hz: int,
    rng: np.random.Generator,
    *,
    gain_db: float | None = None,
) -> np.ndarray:
    """Random gain of -12..+6 dB; a result over full scale is scaled back to peak 1.

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate (unused).
        rng: the source of every random draw.
        gain_db: fixed gain instead of the random one.

    Returns:
        `[n]` float32, peak <= 1.
    """
    del sample_rate_hz
    x = _check_input(waveform).astype(np.float64)
    g = rng.uniform(-12, 6) if gain_db is None else gain_db
    return _finish(x * 10 ** (g / 20), x.shape[0])


def reverb(
    waveform: np.ndarray,
    sample_rate_hz: int,
    rng: np.random.Generator,
    *,
    rt60_s: float | None = None,
) -> np.ndarray:
    """Light synthetic room: direct sound plus an exponentially decaying noise tail.

    The tail is Gaussian noise under exp(-ln(1000) t / RT60) (60 dB down at
    RT60 = 0.1-0.5 s), starting 1-5 ms after the direct sound, with its energy
    8-20 dB below the direct sound's (a small wet mix). The direct path stays
    at lag 0, so the output is aligned with the input.

    Args:
        waveform: `[n]` float32, mono.
        sample_rate_hz: its rate.
        rng: the source of every random draw.
        rt60_s: fixed RT60 instead of the random one.

    Returns:
        `[n]` float32, peak <= 1.
    """
    from scipy import signal

    x = _check_input(waveform).astype(np.float64)
    rt60 = rng.uniform(0.1, 0.5) if rt60_s is None else rt60_s
    predelay = int(rng.uniform(0.001, 0.005) * sample_rate_hz)
    length = max(int(rt60 * sample_rate_hz), 1)
    t = np.arange(length) / sample_rate_hz
    tail = rng.standard_normal(length) * np.exp(-np.log(1000.0) * t / rt60)
    tail *= 10 ** (-rng.uniform(8, 20) / 20) / np.linalg.norm(tail)  # unit energy, then wet level
    rir = np.concatenate([[1.0], np.zeros(max(predelay - 1, 0)), tail])
    y = signal.oaconvolve(x, rir, mode="full")
    return _finish(y, x.shape[0])


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
AUGMENTS: dict[str, Augment] = {
    "rawboost_lnl": rawboost_lnl,
    "rawboost_isd": rawboost_isd,
    "rawboost_ssi": rawboost_ssi,
    "mp3": mp3,
    "opus": opus,
    "vorbis": vorbis,
    "gsm": gsm,
    "bandlimit": bandlimit,
    "resample_chain": resample_chain,
    "gain": gain,
    "reverb": reverb,
}

# What each codec needs from libsndfile: (format, subtype, a rate it must accept).
_CODEC_NEEDS = {
    "mp3": ("MP3", "MPEG_LAYER_III", 16000),
    "opus": ("OGG", "OPUS", 16000),
    "vorbis": ("OGG", "VORBIS", 16000),
    "gsm": ("WAV", "GSM610", 8000),
}


@functools.lru_cache(maxsize=1)
def available() -> dict[str, str | None]:
    """Which augmentations work here: `name -> None` if usable, else why not.

    The codecs depend on the libsndfile that soundfile loads (its wheels bundle
    one with MP3, Opus and Vorbis; a system libsndfile may lack them): each is
    checked by listing and by a 0.1 s round trip. Cached for the process.
    """
    status: dict[str, str | None] = {}
    for name in AUGMENTS:
        status[name] = None
        try:
            if name in _CODEC_NEEDS:
                import soundfile as sf

                fmt, subtype, rate = _CODEC_NEEDS[name]
                if subtype not in sf.available_subtypes(fmt):
                    raise RuntimeError(
                        f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}"
                    )
                probe = 0.1 * np.sin(np.arange(rate // 10) * 0.3)
                _encode_decode(probe, rate, fmt, subtype)
            else:
                import scipy.signal  # noqa: F401
                import soxr  # noqa: F401
        except Exception as e:  # a missing library or codec: report it, do not fail the import
            status[name] = f"{type(e).__name__}: {e}"
    return status


def _usable(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {sorted(AUGMENTS)}")
    status = available()
    broken = {n: status[n] for n in names if status[n] is not None}
    if broken:
        raise ValueError(f"augmentation(s) not available here: {broken}")
    return list(names)


def apply(
    name: str, waveform: np.ndarray, sample_rate_hz: int, rng: np.random.Generator
) -> np.ndarray:
    """Run one augmentation by name (a clear error for an unknown or unavailable one)."""
    (name,) = _usable([name])
    return AUGMENTS[name](waveform, sample_rate_hz, rng)


def random_chain(
    waveform: np.ndarray,
    sample_rate_hz: int,
    rng: np.random.Generator,
    names: Sequence[str] | None = None,
    max_ops: int = 3,
) -> tuple[np.ndarray, list[str]]:
    """Apply 1..`max_ops` distinct augmentations, chosen at random, in random order.

    Args:
        waveform: `[n]` float32, mono, at `sample_rate_hz`.
        sample_rate_hz: its rate.
        rng: the source of every random draw (the same state gives the same
            chain and the same output).
        names: the pool to draw from; default every augmentation `available()`
            says works here. Unknown or unavailable names are a ValueError.
        max_ops: most augmentations applied (at least 1, at most the pool size).

    Returns:
        `([n] float32, names applied in order)`; peak <= 1.
    """
    if names is None:
        pool = [n for n, why in available().items() if why is None]
    else:
        pool = _usable(list(dict.fromkeys(names)))  # each at most once per chain
    if not pool:
        raise ValueError("no augmentation to choose from")
    if max_ops < 1:
        raise ValueError(f"max_ops must be >= 1, got {max_ops}")
    x = _check_input(waveform)
    count = int(rng.integers(1, min(max_ops, len(pool)) + 1))
    chosen = [pool[i] for i in rng.permutation(len(pool))[:count]]
    for name in chosen:
        x = AUGMENTS[name](x, sample_rate_hz, rng)
    return x, chosen
