"""scripts/build_modern_val.py: the per-clip normalisation and the source-list parser.

Synthetic signals only: no network, no fetched snapshot, no built cache.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_modern_val.py"
HEADER = "repo,commit,path,label,system,kind,licence,caption"
ROW = "owner/demo,0123abc,audio/gt/1.wav,real,gt-demo-page,vocoder,MIT,Ground truth"


@pytest.fixture(scope="module")
def bmv():
    spec = importlib.util.spec_from_file_location("build_modern_val", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def speech_like(seconds: float, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Voiced speech stand-in: harmonics of a gliding f0 under a 4 Hz syllable envelope."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.2 + 0.8 * np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    return 0.3 * voiced * envelope + 1e-3 * rng.standard_normal(len(t))


def dbfs(x: np.ndarray) -> float:
    return 20.0 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


@pytest.mark.parametrize(
    ("seconds", "rate_hz", "channels"),
    [(3.0, 22_050, 1), (8.0, 44_100, 2), (5.0, 16_000, 1), (2.6, 24_000, 1)],
)
def test_normalise_clip_contract(bmv, seconds, rate_hz, channels):
    rng = np.random.default_rng(7)
    x = speech_like(seconds, rate_hz, rng)
    # 1 s of digital silence on both sides: trimmed, then the padding is the noise floor
    x = np.concatenate([np.zeros(rate_hz), x, np.zeros(rate_hz)])
    if channels == 2:
        x = np.stack([x, 0.5 * x], axis=1)
    clip = bmv.normalise_clip(x, rate_hz, bmv.clip_rng(1125, "owner/demo", "a.wav"))
    assert clip.shape == (160_000,) and clip.dtype == np.float32
    assert np.isfinite(clip).all()
    assert np.max(np.abs(clip)) <= 0.95 + 1e-6
    assert -32.0 - 1e-6 <= dbfs(clip) <= -18.0 + 1e-6
    # no digital silence anywhere: every 10 ms block has a noise floor
    blocks = clip[: 160_000 // 320 * 320].reshape(-1, 320)
    assert np.all(np.max(np.abs(blocks), axis=1) > 0)
    assert np.mean(clip == 0) < 1e-3


def test_normalise_clip_band_limited_to_8khz(bmv):
    rng = np.random.default_rng(3)
    x = speech_like(4.0, 48_000, rng) + 0.05 * rng.standard_normal(4 * 48_000)
    clip = bmv.normalise_clip(x, 48_000, bmv.clip_rng(1, "r", "p"))
    spec = np.abs(np.fft.rfft(clip)) ** 2
    freqs = np.fft.rfftfreq(len(clip), 1 / 32_000)
    above = spec[freqs > 8_300].sum() / spec.sum()
    assert above < 1e-6


def test_normalise_clip_is_deterministic_per_seed_and_path(bmv):
    x = speech_like(6.0, 16_000, np.random.default_rng(0))
    a = bmv.normalise_clip(x, 16_000, bmv.clip_rng(1125, "o/r", "x.wav"))
    b = bmv.normalise_clip(x, 16_000, bmv.clip_rng(1125, "o/r", "x.wav"))
    c = bmv.normalise_clip(x, 16_000, bmv.clip_rng(1125, "o/r", "y.wav"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_normalise_clip_long_input_keeps_the_speech_window(bmv):
    rate = 16_000
    speech = speech_like(4.0, rate, np.random.default_rng(1))
    # 4 s of speech, 6 s of near-silence, 4 s of speech: any 5 s window holds <= 4 s
    x = np.concatenate([speech, 1e-4 * np.ones(6 * rate), speech])
    clip = bmv.normalise_clip(x, rate, bmv.clip_rng(0, "o/r", "long.wav"))
    assert clip.shape == (160_000,)


def test_normalise_clip_drops_too_little_speech(bmv):
    rate = 16_000
    x = np.concatenate([speech_like(1.2, rate, np.random.default_rng(2)), np.zeros(3 * rate)])
    with pytest.raises(bmv.ClipSkipped, match="of speech"):
        bmv.normalise_clip(x, rate, bmv.clip_rng(0, "o/r", "short.wav"))
    with pytest.raises(bmv.ClipSkipped, match="silent"):
        bmv.normalise_clip(np.zeros(4 * rate), rate, bmv.clip_rng(0, "o/r", "zero.wav"))
    short = speech_like(1.5, rate, np.random.default_rng(4))
    with pytest.raises(bmv.ClipSkipped, match=r"only 1.50 s long"):
        bmv.normalise_clip(short, rate, bmv.clip_rng(0, "o/r", "short2.wav"))


def test_coloured_noise_unit_rms_and_slope(bmv):
    rng = np.random.default_rng(5)
    for colour in bmv.NOISE_COLOURS:
        n = bmv.coloured_noise(80_000, colour, rng)
        assert abs(np.sqrt(np.mean(n**2)) - 1.0) < 1e-6
    spec = np.abs(np.fft.rfft(bmv.coloured_noise(80_000, "brown", rng))) ** 2
    freqs = np.fft.rfftfreq(80_000, 1 / 16_000)
    low = spec[(freqs > 100) & (freqs < 200)].mean()
    high = spec[(freqs > 3_000) & (freqs < 6_000)].mean()
    assert low > 100 * high


def test_parse_sources_reads_rows(bmv):
    rows = bmv.parse_sources(f"# a comment\n{HEADER}\n{ROW}\n")
    assert len(rows) == 1
    r = rows[0]
    assert (r.repo, r.path, r.label, r.system, r.kind, r.caption) == (
        "owner/demo",
        "audio/gt/1.wav",
        "real",
        "gt-demo-page",
        "vocoder",
        "Ground truth",
    )


def test_parse_sources_caption_is_optional(bmv):
    header = "repo,commit,path,label,system,kind,licence"
    rows = bmv.parse_sources(f"{header}\nowner/demo,abc,a.wav,fake,hifigan,vocoder,none\n")
    assert rows[0].caption == ""


def test_parse_sources_bad_label(bmv):
    bad = ROW.replace(",real,", ",genuine,")
    with pytest.raises(bmv.SourceListError, match=r"row 2: label 'genuine' is not one of"):
        bmv.parse_sources(f"{HEADER}\n{bad}\n", name="list.csv")


def test_parse_sources_bad_kind(bmv):
    bad = ROW.replace(",vocoder,", ",gan,")
    with pytest.raises(bmv.SourceListError, match=r"kind 'gan' is not one of"):
        bmv.parse_sources(f"{HEADER}\n{bad}\n")


def test_parse_sources_missing_column(bmv):
    header = "repo,commit,path,system,kind"
    with pytest.raises(bmv.SourceListError, match=r"list.csv: missing column\(s\) label, licence"):
        bmv.parse_sources(f"{header}\nowner/demo,abc,a.wav,x,tts\n", name="list.csv")


def test_parse_sources_empty_field_and_duplicate(bmv):
    with pytest.raises(bmv.SourceListError, match="empty commit"):
        bmv.parse_sources(f"{HEADER}\n{ROW.replace('0123abc', '')}\n")
    with pytest.raises(bmv.SourceListError, match="listed twice"):
        bmv.parse_sources(f"{HEADER}\n{ROW}\n{ROW}\n")


@pytest.mark.parametrize(
    ("repo", "path"),
    [
        ("SpeechResearch/speechresearch.github.io", "audio/a.wav"),
        ("neonbjb/tortoise-tts", "tortoise/voices/tom/1.wav"),
        ("resemble-ai/Resemblyzer", "audio_data/x.flac"),
        ("someone/mirror", "debian/sonic-pi-samples/ambi_drone.flac"),
        ("coqui-ai/TTS", "tests/data/ljspeech/wavs/LJ001-0001.wav"),
        ("someone/vocoder-demo", "wav/gt/LJ001-0029.wav"),
    ],
)
def test_parse_sources_refuses_reserved_sources(bmv, repo, path):
    row = f"{repo},abc,{path},real,gt,tts,x"
    with pytest.raises(bmv.SourceListError, match="reserved|dev corpus"):
        bmv.parse_sources(f"{HEADER}\n{row}\n")


def test_committed_source_list_parses(bmv):
    rows = bmv.read_sources(bmv.DEFAULT_SOURCES)
    assert len(rows) > 100
    assert {r.label for r in rows} == {"real", "fake"}


def test_build_from_a_tiny_git_snapshot(bmv, tmp_path):
    """End to end on a 2-file bare repo made here: layout, labels, skips, Vorbis output."""
    import soundfile as sf

    work = tmp_path / "src"
    work.mkdir()
    sf.write(work / "gt.wav", speech_like(3.5, 22_050, np.random.default_rng(0)), 22_050)
    sf.write(work / "fake.flac", speech_like(6.0, 24_000, np.random.default_rng(1)), 24_000)
    sf.write(work / "tiny.wav", speech_like(0.5, 16_000, np.random.default_rng(2)), 16_000)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    mirror = tmp_path / "mirror"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(mirror / "o+demo" / "repo")], check=True
    )
    text = "\n".join(
        [
            HEADER,
            f"o/demo,{commit},gt.wav,real,gt-demo,vocoder,MIT,GT",
            f"o/demo,{commit},fake.flac,fake,hifigan,vocoder,MIT,HiFi-GAN",
            f"o/demo,{commit},tiny.wav,fake,hifigan,vocoder,MIT,HiFi-GAN",
            f"o/demo,{commit},missing.wav,fake,hifigan,vocoder,MIT,HiFi-GAN",
            f"o/absent,{commit},gt.wav,real,gt-absent,tts,MIT,GT",
        ]
    )
    out = tmp_path / "out"
    result = bmv.build(bmv.parse_sources(text), mirror, out, seed=3, readme=None)
    assert result["clips"] == 2
    reasons = sorted(r for _, _, r in result["skipped"])
    assert len(reasons) == 3
    assert any("no snapshot" in r for r in reasons)
    assert any(r.startswith("git:") for r in reasons)
    assert any("s long (< 2.0 s)" in r for r in reasons)
    labels = (out / "labels.csv").read_text().splitlines()
    assert labels[0].startswith("id,path,label,system,kind,source_repo,licence")
    assert (out / "test.csv").read_text().splitlines()[0] == "id,path"
    truth = (out / "test_labels.csv").read_text().splitlines()
    assert truth[0] == "id,fake,real" and sorted(truth[1:]) == sorted(
        [f"{row.split(',')[0]},{int('fake' in row)},{int('real' in row)}" for row in labels[1:]]
    )
    for row in labels[1:]:
        clip_id, rel = row.split(",")[:2]
        info = sf.info(out / rel)
        assert (info.samplerate, info.channels, info.frames) == (32_000, 1, 160_000)
        assert info.format == "OGG" and info.subtype == "VORBIS"
        assert clip_id.startswith("MODERN_")
