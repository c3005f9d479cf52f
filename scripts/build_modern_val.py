"""Build the modern-generator validation set (issue 10) into a local cache.

    python scripts/build_modern_val.py [--sources scripts/modern_val_sources.csv]
        [--mirror /work/.mirror] [--out data/modern_val] [--seed 1125]

Reads a committed source list (one row per audio file published in a public GitHub
repository: `repo,commit,path,label,system,kind,licence[,caption]`), takes each file
from a fetched snapshot of that repository (a bare git dir under `--mirror`, read with
`git cat-file blob COMMIT:PATH`) and writes, in the challenge layout:

    OUT/clips/MODERN_xxxxx.ogg   clean 5.000 s single-voice clips, mono 32 kHz Ogg Vorbis
    OUT/labels.csv               id,path,label,system,kind,source_repo,licence,source_commit,source_path
    OUT/test.csv                 id,path                     (what `predict`/`submit` read)
    OUT/test_labels.csv          id,fake,real                (what `evaluate` reads)
    OUT/meta.csv                 id,split,label,source,generator,speaker_or_voice,license
                                 (label single_real/single_fake, generator = system, so
                                 `evaluate` prints a per-system breakdown)
    OUT/skipped.csv              source rows that gave no clip, with the reason
    OUT/README.md                copy of scripts/modern_val_README.md

Each clip goes through the dev corpus's normalisation (its README, "Normalisation") so
that no level, bandwidth or silence cue separates real from fake: mono; soxr HQ to
16 kHz (band limit 8 kHz); DC removed; leading/trailing silence (frames 40 dB under the
loud frames) trimmed to a random 0.05-0.30 s; a 5 s window holding the most speech;
a stationary white/pink/brown noise floor 48-72 dB under the active-speech level over
the whole 5 s (a shorter voice sits at a random offset, padded by that floor, never by
digital zero); soxr HQ to 32 kHz; a random RMS of -32..-18 dBFS with the peak at most
0.95; Ogg Vorbis quality 0.3 (libsndfile, `compression_level=0.7`, i.e. `-q:a 3`).
Less than 2 s of speech: the row is skipped. Every random draw comes from a generator
seeded by (seed, repo, path), so a clip does not change when rows are added; a rebuild gives
the same csv files and bit-identical decoded audio (the .ogg bytes differ only in the Ogg stream
serial number, which libsndfile draws at random).

Unreadable, missing or too short files are skipped and reported, never fatal. The
audio stays out of git (licences vary): only the source list and this script are
committed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES = REPO_ROOT / "scripts" / "modern_val_sources.csv"
DEFAULT_README = REPO_ROOT / "scripts" / "modern_val_README.md"
DEFAULT_MIRROR = Path("/work/.mirror")
DEFAULT_OUT = REPO_ROOT / "data" / "modern_val"
SEED = 1125

REQUIRED_COLUMNS = ("repo", "commit", "path", "label", "system", "kind", "licence")
LABELS = ("real", "fake")
KINDS = ("tts", "vc", "vocoder", "codec")  # for a real row: the kind of page it is on
# Reserved for evaluation (issue 10): never a source of this set, not even in part.
RESERVED_REPOS = frozenset(
    r.lower()
    for r in (
        "SpeechResearch/speechresearch.github.io",
        "neonbjb/tortoise-tts",
        "resemble-ai/Resemblyzer",
        "iver56/audiomentations",
        "speechbrain/speechbrain",
        "librosa/librosa",
        "librosa/data",
    )
)
RESERVED_WORDS = (  # Debian packages and demo audio reserved for evaluation
    "asterisk-moh-opsound-g722",
    "sonic-pi-samples",
    "fillets-ng-data",
    "oxygen-sounds",
    "lmms-common",
    "audiomentations",
)
# Already in the dev corpus: coqui's LJSpeech test clips, whose 32 utterances
# (LJ001-0001 .. LJ001-0032) are dev real clips; a demo page's copy of one of them (or
# a vocoded copy) would be a seen utterance, so those file names are refused anywhere.
DEV_CORPUS_PATHS = (("coqui-ai/tts", "tests/data/ljspeech"),)
DEV_CORPUS_UTTERANCE = re.compile(r"LJ001-00(0[1-9]|[12][0-9]|3[0-2])(?![0-9])")

# Normalisation constants (deepwave-dev README, "Normalisation").
MID_RATE_HZ = 16_000
OUT_RATE_HZ = 32_000
CLIP_SECONDS = 5.0
MIN_SPEECH_SECONDS = 2.0
FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
SILENCE_DB = 40.0
LOUD_PERCENTILE = 99.0
TRIM_KEEP_SECONDS = (0.05, 0.30)
NOISE_BELOW_SPEECH_DB = (48.0, 72.0)
NOISE_COLOURS = ("white", "pink", "brown")
NOISE_CORNER_HZ = 50.0
RMS_DBFS = (-32.0, -18.0)
PEAK_MAX = 0.95
VORBIS_COMPRESSION_LEVEL = 0.7  # libsndfile: vorbis quality = 1 - level = 0.3 (ffmpeg -q:a 3)


class SourceListError(ValueError):
    """The source list is malformed (missing column, bad label/kind, reserved source)."""


class ClipSkipped(Exception):
    """One source file gives no clip; `reason` is reported in skipped.csv."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    """One row of the source list: an audio file in a public repository, labelled."""

    repo: str
    commit: str
    path: str
    label: str
    system: str
    kind: str
    licence: str
    caption: str = ""


# --------------------------------------------------------------------------- #
# Source list
# --------------------------------------------------------------------------- #
def reserved_reason(repo: str, path: str) -> str | None:
    """Why a repository/path may not be used (None if it may)."""
    key = repo.strip().lower()
    where = f"{key}/{path.strip().lower()}"
    if key in RESERVED_REPOS:
        return f"{repo} is reserved for evaluation"
    for word in RESERVED_WORDS:
        if word in where:
            return f"{repo}/{path} matches the reserved source '{word}'"
    for dev_repo, dev_path in DEV_CORPUS_PATHS:
        if key == dev_repo and path.strip().lower().startswith(dev_path):
            return f"{repo}/{path} is already in the dev corpus"
    if DEV_CORPUS_UTTERANCE.search(path):
        return f"{repo}/{path} is an LJSpeech utterance already in the dev corpus"
    return None


def parse_sources(text: str, name: str = "<sources>") -> list[Source]:
    """Parses and checks a source list (csv text).

    Args:
        text: csv with at least the columns `REQUIRED_COLUMNS`; `caption` is optional;
            lines starting with '#' are comments.
        name: file name used in error messages.

    Returns:
        The rows, in file order.

    Raises:
        SourceListError: a missing column, an empty required field, a label not in
            `LABELS`, a kind not in `KINDS`, a reserved source, or the same (repo, path) twice.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SourceListError(f"{name}: missing column(s) {', '.join(missing)}")
    rows: list[Source] = []
    seen: set[tuple[str, str]] = set()
    for line_no, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        where = f"{name} row {line_no}"
        empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
        if empty:
            raise SourceListError(f"{where}: empty {', '.join(empty)}")
        if row["label"] not in LABELS:
            raise SourceListError(f"{where}: label {row['label']!r} is not one of {LABELS}")
        if row["kind"] not in KINDS:
            raise SourceListError(f"{where}: kind {row['kind']!r} is not one of {KINDS}")
        reason = reserved_reason(row["repo"], row["path"])
        if reason:
            raise SourceListError(f"{where}: {reason}")
        key = (row["repo"].lower(), row["path"])
        if key in seen:
            raise SourceListError(f"{where}: {row['repo']}/{row['path']} listed twice")
        seen.add(key)
        rows.append(Source(**{c: row[c] for c in REQUIRED_COLUMNS}, caption=row.get("caption", "")))
    return rows


def read_sources(path: Path) -> list[Source]:
    """`parse_sources` of a file."""
    return parse_sources(Path(path).read_text(encoding="utf-8"), name=str(path))


# --------------------------------------------------------------------------- #
# Reading the snapshots
# --------------------------------------------------------------------------- #
def git_dir(mirror: Path, repo: str) -> Path:
    """The bare git dir of `repo` under `mirror` (`owner+name/repo` or `owner+name`)."""
    base = Path(mirror) / repo.replace("/", "+")
    for cand in (base / "repo", base):
        if (cand / "objects").is_dir() and (cand / "HEAD").is_file():
            return cand
    raise ClipSkipped(f"no snapshot of {repo} under {mirror} (fetch it first)")


def read_blob(mirror: Path, src: Source) -> bytes:
    """The bytes of `src.path` at `src.commit` in the snapshot of `src.repo`."""
    gd = git_dir(mirror, src.repo)
    proc = subprocess.run(
        ["git", "--git-dir", str(gd), "cat-file", "blob", f"{src.commit}:{src.path}"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ClipSkipped(f"git: {msg[-1] if msg else 'cannot read blob'}")
    if not proc.stdout:
        raise ClipSkipped("empty file")
    if proc.stdout.startswith(b"version https://git-lfs"):
        raise ClipSkipped("Git LFS pointer, not audio")
    return proc.stdout


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Audio bytes (wav/flac/ogg/opus/mp3, what libsndfile reads) -> (samples, channels) float32, rate."""
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types; all mean "unreadable"
        raise ClipSkipped(f"undecodable: {type(exc).__name__}: {exc}") from None
    if audio.size == 0:
        raise ClipSkipped("no samples")
    if not np.isfinite(audio).all():
        raise ClipSkipped("non-finite samples")
    return audio, int(rate)


# --------------------------------------------------------------------------- #
# Normalisation
# --------------------------------------------------------------------------- #
def clip_rng(seed: int, repo: str, path: str) -> np.random.Generator:
    """A generator that depends only on (seed, repo, path): clips survive list edits."""
    digest = hashlib.sha256(f"{seed}\0{repo.lower()}\0{path}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def frame_db(x: np.ndarray, rate_hz: int) -> np.ndarray:
    """Per-frame power in dB (25 ms frames, 10 ms hop); shape (num_frames,)."""
    frame, hop = round(FRAME_SECONDS * rate_hz), round(HOP_SECONDS * rate_hz)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n = 1 + (len(x) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    power = np.mean(x[idx].astype(np.float64) ** 2, axis=1)
    return 10.0 * np.log10(power + 1e-20)


def active_frames(db: np.ndarray) -> np.ndarray:
    """Frames within `SILENCE_DB` of the loud frames (99th percentile); bool (num_frames,)."""
    loud = np.percentile(db, LOUD_PERCENTILE)
    return db > loud - SILENCE_DB


def coloured_noise(
    n: int, colour: str, rng: np.random.Generator, rate_hz: int = MID_RATE_HZ
) -> np.ndarray:
    """Stationary noise with unit RMS: white (flat), pink (1/f) or brown (1/f^2) power.

    The pink/brown slope stops at `NOISE_CORNER_HZ`: below it the spectrum is flat, so
    the floor's energy is not all subsonic (Vorbis rounds such a floor to digital zero).
    """
    white = rng.standard_normal(n)
    if colour == "white":
        noise = white
    else:
        exponent = {"pink": 0.5, "brown": 1.0}[colour]  # amplitude ~ f^-exponent
        spec = np.fft.rfft(white)
        f_hz = np.maximum(np.arange(len(spec)) * rate_hz / n, NOISE_CORNER_HZ)
        spec = spec / f_hz**exponent
        spec[0] = 0.0
        noise = np.fft.irfft(spec, n)
    noise = noise - noise.mean()
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-20)


def normalise_clip(audio: np.ndarray, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """One source file -> one clean 5 s clip, as the dev corpus normalises its clips.

    Args:
        audio: (samples,) or (samples, channels) float, any rate.
        rate_hz: its sample rate.
        rng: the clip's random generator (`clip_rng`).

    Returns:
        (160000,) float32 at 32 kHz: 5.000 s, RMS -32..-18 dBFS (lower only when the
        peak would pass 0.95), peak <= 0.95, a noise floor everywhere (no digital silence).

    Raises:
        ClipSkipped: less than `MIN_SPEECH_SECONDS` of speech, or silent.
    """
    import soxr

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:  # 1. mono: channel mean
        x = x.mean(axis=1)
    if rate_hz != MID_RATE_HZ:  # 2. 16 kHz, soxr HQ: band-limited to 8 kHz whatever the source
        x = soxr.resample(x, rate_hz, MID_RATE_HZ, quality="HQ")
    x = x - x.mean()  # 3. DC
    if np.max(np.abs(x), initial=0.0) < 1e-6:
        raise ClipSkipped("silent")
    if len(x) < round(MIN_SPEECH_SECONDS * MID_RATE_HZ):
        raise ClipSkipped(f"only {len(x) / MID_RATE_HZ:.2f} s long (< {MIN_SPEECH_SECONDS} s)")
    hop = round(HOP_SECONDS * MID_RATE_HZ)
    frame = round(FRAME_SECONDS * MID_RATE_HZ)
    db = frame_db(x, MID_RATE_HZ)
    active = active_frames(db)
    first, last = int(np.argmax(active)), len(active) - 1 - int(np.argmax(active[::-1]))
    keep_before, keep_after = rng.uniform(*TRIM_KEEP_SECONDS, size=2)
    start = max(0, first * hop - round(keep_before * MID_RATE_HZ))
    stop = min(len(x), last * hop + frame + round(keep_after * MID_RATE_HZ))
    x = x[start:stop]
    db = frame_db(x, MID_RATE_HZ)
    active = active_frames(db)

    clip_len = round(CLIP_SECONDS * MID_RATE_HZ)
    if len(x) > clip_len:  # the 5 s window holding the most speech (first of the best)
        win = (clip_len - frame) // hop + 1
        counts = np.convolve(active.astype(np.int64), np.ones(win, np.int64), mode="valid")
        best = np.flatnonzero(counts == counts.max())
        s = int(best[0]) * hop
        x = x[s : s + clip_len]
        db = frame_db(x, MID_RATE_HZ)
        active = active_frames(db)
    speech_seconds = float(active.sum()) * HOP_SECONDS
    if speech_seconds < MIN_SPEECH_SECONDS:
        raise ClipSkipped(f"only {speech_seconds:.2f} s of speech (< {MIN_SPEECH_SECONDS} s)")

    # 4. noise floor over the whole 5 s, 48-72 dB under the active-speech level
    speech_db = 10.0 * np.log10(np.mean(10.0 ** (db[active] / 10.0)))
    noise_db = speech_db - rng.uniform(*NOISE_BELOW_SPEECH_DB)
    colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    out = np.zeros(clip_len)
    offset = int(rng.integers(0, clip_len - len(x) + 1))
    out[offset : offset + len(x)] = x
    out += coloured_noise(clip_len, colour, rng) * 10.0 ** (noise_db / 20.0)

    # 5. 32 kHz
    y = soxr.resample(out, MID_RATE_HZ, OUT_RATE_HZ, quality="HQ")
    n_out = round(CLIP_SECONDS * OUT_RATE_HZ)
    y = np.pad(y, (0, max(0, n_out - len(y))), mode="reflect")[:n_out]

    # 6. random RMS, peak bound
    rms = np.sqrt(np.mean(y**2))
    gain = 10.0 ** (rng.uniform(*RMS_DBFS) / 20.0) / rms
    peak = np.max(np.abs(y))
    gain = min(gain, PEAK_MAX / peak)
    return (y * gain).astype(np.float32)


def write_ogg(path: Path, clip: np.ndarray) -> None:
    """Ogg Vorbis, quality 0.3, via libsndfile (atomic: temp file then rename)."""
    import soundfile as sf

    tmp = path.with_suffix(".tmp")
    sf.write(
        tmp,
        clip,
        OUT_RATE_HZ,
        format="OGG",
        subtype="VORBIS",
        compression_level=VORBIS_COMPRESSION_LEVEL,
    )
    tmp.replace(path)


# --------------------------------------------------------------------------- #
# Build
# --------------------------------------------------------------------------- #
def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def build(
    sources: list[Source],
    mirror: Path,
    out: Path,
    seed: int = SEED,
    readme: Path | None = DEFAULT_README,
) -> dict[str, object]:
    """Builds the cache at `out` (replacing its clips and csv files).

    Returns:
        {"clips": n, "skipped": [(repo, path, reason), ...], "by_system": {...}}.
    """
    out = Path(out)
    clips_dir = out / "clips"
    if clips_dir.exists():
        shutil.rmtree(clips_dir)
    clips_dir.mkdir(parents=True)

    made: list[tuple[Source, np.ndarray]] = []
    skipped: list[tuple[Source, str]] = []
    for i, src in enumerate(sources):
        try:
            audio, rate = decode(read_blob(mirror, src))
            clip = normalise_clip(audio, rate, clip_rng(seed, src.repo, src.path))
            made.append((src, clip))
        except ClipSkipped as exc:
            skipped.append((src, exc.reason))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(sources)} rows, {len(made)} clips", file=sys.stderr)

    # Ids in a seeded random order, so neither label nor source follows the id.
    order = np.random.default_rng(seed).permutation(len(made))
    labels, test, test_labels, meta = [], [], [], []
    for new_id, k in enumerate(order):
        src, clip = made[k]
        cid = f"MODERN_{new_id:05d}"
        rel = f"./clips/{cid}.ogg"
        write_ogg(clips_dir / f"{cid}.ogg", clip)
        labels.append(
            [cid, rel, src.label, src.system, src.kind, src.repo, src.licence, src.commit, src.path]
        )
        test.append([cid, rel])
        test_labels.append([cid, str(int(src.label == "fake")), str(int(src.label == "real"))])
        meta.append(
            [
                cid,
                "test",
                f"single_{src.label}",
                src.repo,
                src.system if src.label == "fake" else "-",
                src.system,
                src.licence,
            ]
        )
    labels.sort(key=lambda r: r[0])
    write_csv(
        out / "labels.csv",
        "id,path,label,system,kind,source_repo,licence,source_commit,source_path".split(","),
        labels,
    )
    write_csv(out / "test.csv", ["id", "path"], sorted(test))
    write_csv(out / "test_labels.csv", ["id", "fake", "real"], sorted(test_labels))
    write_csv(
        out / "meta.csv",
        "id,split,label,source,generator,speaker_or_voice,license".split(","),
        sorted(meta),
    )
    write_csv(
        out / "skipped.csv",
        ["repo", "commit", "path", "system", "reason"],
        [[s.repo, s.commit, s.path, s.system, r] for s, r in skipped],
    )
    if readme is not None and Path(readme).is_file():
        shutil.copyfile(readme, out / "README.md")

    by_system: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for s in sources:
        by_system[(s.system, s.kind, s.label)]["rows"] += 1
    for s, _ in made:
        by_system[(s.system, s.kind, s.label)]["clips"] += 1
    for s, _ in skipped:
        by_system[(s.system, s.kind, s.label)]["skipped"] += 1
    return {
        "clips": len(made),
        "skipped": [(s.repo, s.path, r) for s, r in skipped],
        "by_system": {k: dict(v) for k, v in by_system.items()},
    }


def print_summary(result: dict[str, object], sources: list[Source]) -> None:
    """Per-system table (clips, skipped), totals per label and kind, then the skip reasons."""
    by_system = result["by_system"]
    print(f"\n{'system':<28} {'kind':<8} {'label':<5} {'clips':>5} {'skipped':>7}")
    totals: Counter = Counter()
    kinds: Counter = Counter()
    for (system, kind, label), c in sorted(by_system.items(), key=lambda kv: (kv[0][2], kv[0][0])):
        print(f"{system:<28} {kind:<8} {label:<5} {c.get('clips', 0):>5} {c.get('skipped', 0):>7}")
        totals[label] += c.get("clips", 0)
        kinds[kind] += c.get("clips", 0)
    n_fake_systems = len(
        {name for (name, _, lab), c in by_system.items() if lab == "fake" and c.get("clips")}
    )
    repos = sorted({s.repo for s in sources})
    print(
        f"\n{result['clips']} clips: {totals['real']} real, {totals['fake']} fake; "
        f"{n_fake_systems} fake systems; by kind: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        + f"; {len(repos)} source repositories"
    )
    skipped = result["skipped"]
    if skipped:
        print(f"{len(skipped)} rows skipped:")
        for reason, n in Counter(
            re.sub(r"[0-9]+\.[0-9]{2} s", "N s", r) for _, _, r in skipped
        ).most_common():
            print(f"  {n:>4}  {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES, help="source list csv")
    parser.add_argument(
        "--mirror", type=Path, default=DEFAULT_MIRROR, help="dir of fetched bare git snapshots"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache directory to write")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    try:
        sources = read_sources(args.sources)
    except SourceListError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(sources)} source rows from {args.sources}; writing {args.out}", file=sys.stderr)
    result = build(sources, args.mirror, args.out, seed=args.seed)
    print_summary(result, sources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
