"""Build data/noise/: recorded background sounds for the mixing augmentation.

    python scripts/build_noise_bank.py --download            # apt-get download + dpkg -x itself
    python scripts/build_noise_bank.py --unpacked /tmp/noise_x  # DIR/<package>/ from `dpkg -x`

Sources are Debian packages whose copyright files license their audio for
redistribution (GPL, CC0, CC-BY, CC-BY-SA, Expat): instrumental game music and
ringtones, game and city ambience loops, sound effects. Every file is chosen by
an explicit rule in `SOURCES` (package, glob, kind, licence read from that
package's copyright file); anything with a voice in it (speech, singing, shouts,
crowds, spoken jingles) is left out by name, see `EXCLUDE` and data/noise/README.md.
Reserved for evaluation and never read here: asterisk-moh-opsound-*,
sonic-pi-samples, fillets-ng-data, oxygen-sounds, lmms-common, and the demo
audio of audiomentations, speechbrain and librosa.

Each source is decoded, mixed to mono and resampled to 16 kHz (soxr, so the
content is band-limited to 8 kHz like the data). Long files (music, long
ambience) give up to `--pieces-per-track` 5 s pieces at seeded random offsets;
short files are packed into 5 s pieces: ambience loops end to end with short
crossfades, effects with random gaps, only files of one package and one licence
per piece. Near-silent pieces are dropped (RMS under -50 dBFS, or under 25 % of
the 50 ms frames within 40 dB of the loudest one), the rest are normalised to
-20 dBFS RMS (peak at most -1 dBFS) and written as Ogg Vorbis, mono, 16 kHz,
with `sources.csv` (one row per piece) and README.md. Deterministic for a seed:
the same pieces and samples (the Ogg stream serial numbers that libsndfile
picks may differ between runs; the decoded audio does not).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fnmatch
import io
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE_HZ = 16000
PIECE_SECONDS = 5.0
TARGET_DBFS = -20.0
PEAK_DBFS = -1.0
SILENT_DBFS = -50.0
ACTIVE_SHARE = 0.25  # frames within 40 dB of the loudest, at least this share
FORBIDDEN = (
    "asterisk-moh-opsound",
    "sonic-pi-samples",
    "fillets-ng-data",
    "oxygen-sounds",
    "lmms-common",
)
KINDS = ("music", "ambience", "sfx")


@dataclasses.dataclass(frozen=True)
class Source:
    """One selection rule: files of `package` matching `glob` (relative to the package root)."""

    package: str
    glob: str
    kind: str  # music | ambience | sfx
    licence: str


_SFX = "usr/share/sounds/freedesktop/stereo/"
_LOMIRI = "usr/share/sounds/lomiri/ringtones/"
_MT = "usr/share/games/minetest/games/minetest_game/mods/"
_LC = "usr/share/games/lincity-ng/sounds/"
_ETR = "usr/share/games/etr/"
_FB = "usr/share/games/frozen-bubble/snd/"
OPENSFX = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"

SOURCES: tuple[Source, ...] = (
    # --- music: instrumental game soundtracks and ringtones ---
    Source("extremetuxracer-data", _ETR + "music/*.ogg", "music", "GPL-2+"),
    Source("xmoto-data", "usr/share/games/xmoto/Textures/Musics/*.ogg", "music", "GPL-2+"),
    Source("frozen-bubble-data", _FB + "*zik*.ogg", "music", "GPL-2"),
    Source("asc-music", "usr/share/games/asc/music/*.mp3", "music", "GPL-2+"),
    Source("lincity-ng-data", "usr/share/games/lincity-ng/music/default/*.ogg", "music", "GPL-2+"),
    Source("freeciv-data", "usr/share/games/freeciv/stdmusic/*.ogg", "music", "GPL-2+"),
    Source("chromium-bsu-data", "usr/share/games/chromium-bsu/wav/music_*.wav", "music", "Expat"),
    Source("lomiri-sounds", _LOMIRI + "Entropy.ogg", "music", "CC-BY-4.0"),
    Source("lomiri-sounds", _LOMIRI + "Mangor*.ogg", "music", "CC-BY-4.0"),
    Source("lomiri-sounds", _LOMIRI + "Time not Lost.ogg", "music", "CC-BY-4.0"),
    Source("lomiri-sounds", _LOMIRI + "sakenointi.ogg", "music", "CC-BY-4.0"),
    Source("lomiri-sounds", _LOMIRI + "Wooden Drive.ogg", "music", "CC-BY-3.0"),
    Source("lomiri-sounds", _LOMIRI + "*.ogg", "music", "CC-BY-SA-3.0"),  # Canonical's set
    # --- ambience: environment loops ---
    Source("minetest-data", _MT + "env_sounds/sounds/*.ogg", "ambience", "CC-BY-SA-3.0"),
    Source("minetest-data", _MT + "fire/sounds/fire_[fls]*.ogg", "ambience", "CC-BY-SA-3.0"),
    Source(
        "minetest-data",
        _MT + "default/sounds/default_furnace_active.ogg",
        "ambience",
        "CC-BY-SA-3.0",
    ),
    Source("extremetuxracer-data", _ETR + "sounds/*_slide.wav", "ambience", "GPL-2+"),
    *(
        Source("lincity-ng-data", _LC + name + "*.wav", "ambience", "GPL-2+")
        for name in (
            "Water",
            "WindMill",
            "Trafic",
            "Industry",
            "RailTrain",
            "Farm",
            "OrganicFarm",
            "Green",
            "ParklandLake",
            "ParklandPlane",
            "PowerCoal",
            "PowerSolar",
            "Substation",
            "Mill",
            "OreMine",
            "CoalMine",
            "Blacksmith",
            "Recycle",
            "Harbor",
            "DirtTrack",
            "Fire",
            "Rocket",
            "Pottery",
            "Tip",
        )
    ),
    Source("openttd-opensfx", OPENSFX + "#ambience", "ambience", "(per entry)"),
    # --- sound effects ---
    Source("openttd-opensfx", OPENSFX + "#sfx", "sfx", "(per entry)"),
    Source("sound-theme-freedesktop", _SFX + "alarm-clock-elapsed.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "audio-volume-change.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "bell.oga", "sfx", "CC-BY-3.0"),
    Source("sound-theme-freedesktop", _SFX + "complete.oga", "sfx", "CC-BY-3.0"),
    Source("sound-theme-freedesktop", _SFX + "trash-empty.oga", "sfx", "CC-BY-3.0"),
    Source("sound-theme-freedesktop", _SFX + "camera-shutter.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "device-*.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "message.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "dialog-information.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "suspend-error.oga", "sfx", "CC-BY-SA-3.0"),
    Source("sound-theme-freedesktop", _SFX + "phone-*.oga", "sfx", "GPL-2+"),
    Source("sound-theme-freedesktop", _SFX + "message-new-instant.oga", "sfx", "GPL-2+"),
    Source("deepin-sound-theme", "usr/share/sounds/deepin/stereo/*.wav", "sfx", "GPL-3"),
    Source("chromium-bsu-data", "usr/share/games/chromium-bsu/wav/*.wav", "sfx", "Expat"),
    Source("freeciv-data", "usr/share/games/freeciv/stdsounds/*.ogg", "sfx", "GPL-2+"),
    Source("frozen-bubble-data", _FB + "*.ogg", "sfx", "GPL-2"),
    Source("minetest-data", _MT + "tnt/sounds/*.ogg", "sfx", "CC0-1.0"),
    Source("minetest-data", _MT + "default/sounds/*.ogg", "sfx", "CC-BY-SA-3.0"),
    Source("minetest-data", _MT + "fire/sounds/*.ogg", "sfx", "CC-BY-SA-3.0"),
    Source("extremetuxracer-data", _ETR + "sounds/*.wav", "sfx", "GPL-2+"),
)
PACKAGES = tuple(dict.fromkeys(s.package for s in SOURCES))

# Left out although a rule above matches: voices, or not a background sound.
EXCLUDE: dict[str, str] = {
    "*/lomiri/ringtones/Sam's Song.ogg": "may hold a voice (title)",
    "*/lomiri/ringtones/Call me.ogg": "may hold a voice (title)",
    "*/lomiri/ringtones/Ubuntu.ogg": "brand jingle, may hold a voice",
    "*/lomiri/ringtones/UBports.ogg": "brand jingle, may hold a voice",
    "*/frozen-bubble/snd/applause.ogg": "crowd (voices)",
    "*/frozen-bubble/snd/chatted.ogg": "chat cue",
    "*/frozen-bubble/snd/hurry.ogg": "vocal cue",
    "*/frozen-bubble/snd/noh.ogg": "vocal cue",
    "*/frozen-bubble/snd/snore.ogg": "human vocal sound",
    "*/frozen-bubble/snd/lose.ogg": "vocal cue",
    "*/freeciv/stdsounds/wakeup.ogg": "may hold a voice",
    "*/default/sounds/player_damage.ogg": "human vocal sound",
    "*/deepin/stereo/desktop-login.wav": "long startup jingle (kept out: music set is enough)",
}
# opensfx.cat entries by index (the catalogue names each one with its licence).
OPENSFX_AMBIENCE = (11, 12, 13, 24, 33, 36, 40, 51, 52, 56, 57, 66, 72)
OPENSFX_SFX = tuple(i for i in range(73) if i not in OPENSFX_AMBIENCE and i not in (29, 30, 34, 50))
OPENSFX_EXCLUDED = {29: "applause (crowd)", 30: "'Oooh' (crowd voices)", 34: "empty", 50: "empty"}

# Pieces per kind (the most; fewer if the sources run out).
TARGETS = {"music": 64, "ambience": 56, "sfx": 48}


# --------------------------------------------------------------------------- #
# Unpacking and reading
# --------------------------------------------------------------------------- #
def download(dest: Path) -> Path:
    """`apt-get download` every package of `SOURCES` and `dpkg -x` it into dest/<package>/."""
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(dest / deb.name.split("_")[0])], check=True)
    return dest


def package_version(deb_root: Path, package: str) -> str:
    """The version from the package's changelog (its first line), or "" if absent."""
    for name in ("changelog.Debian.gz", "changelog.gz"):
        path = deb_root / package / "usr/share/doc" / package / name
        if path.exists():
            import gzip

            first = gzip.open(path, "rt", errors="replace").readline()
            match = re.search(r"\(([^)]+)\)", first)
            return match.group(1) if match else ""
    return ""


def opensfx_entries(path: Path):
    """(index, description, licence, wav bytes) of OpenTTD's opensfx.cat.

    The catalogue starts with (offset | 1 << 31, size) pairs; each entry is a
    length-prefixed description, which ends with the entry's licence, then a RIFF WAV.
    """
    data = path.read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        n = data[offset]
        text = data[offset + 1 : offset + 1 + n].rstrip(b"\0").decode("latin-1")
        match = re.search(r"License: ([^.]*(?:\d\.\d)?[^.]*)\.", text)
        licence = _short_licence(match.group(1) if match else "")
        yield i, text.split(".")[0].strip('"'), licence, data[offset + 1 + n : offset + size]


def _short_licence(text: str) -> str:
    if "Zero" in text:
        return "CC0-1.0"
    if "ShareAlike" in text:
        return "CC-BY-SA-3.0"
    if "Attribution" in text:
        return "CC-BY-3.0"
    return text or "CC-BY-SA-3.0"  # the collection as a whole (debian/copyright)


def to_mono_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """`[samples]` or `[samples, channels]` -> mono float64 at `RATE_HZ` (band-limited by soxr)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != RATE_HZ:
        x = soxr.resample(x, rate, RATE_HZ, quality="HQ")
    return x - x.mean()


def collect(deb_root: Path):
    """Every selected file once (first matching rule wins): dicts with audio and provenance."""
    seen, items, excluded = set(), [], []
    for src in SOURCES:
        if any(src.package.startswith(f) for f in FORBIDDEN):
            raise SystemExit(f"{src.package} is reserved for evaluation")
        root = deb_root / src.package
        if not root.is_dir():
            raise SystemExit(f"{root} missing: unpack {src.package} there (or use --download)")
        version = package_version(deb_root, src.package)
        if "#" in src.glob:  # an opensfx.cat selection
            cat, which = src.glob.split("#")
            wanted = OPENSFX_AMBIENCE if which == "ambience" else OPENSFX_SFX
            for i, desc, licence, wav in opensfx_entries(root / cat):
                key = (src.package, f"{cat}#{i}")
                if i not in wanted or key in seen:
                    continue
                seen.add(key)
                x, rate = sf.read(io.BytesIO(wav), always_2d=False)
                items.append(
                    dict(
                        package=src.package,
                        version=version,
                        original=f"/{cat}#{i} ({desc})",
                        licence=licence,
                        kind=src.kind,
                        audio=to_mono_16k(x, rate),
                    )
                )
            continue
        for path in sorted(root.glob(src.glob)):
            rel = "/" + str(path.relative_to(root))
            key = (src.package, rel)
            if key in seen:
                continue
            seen.add(key)
            reason = next((r for pat, r in EXCLUDE.items() if fnmatch.fnmatch(rel, pat)), None)
            if reason:
                excluded.append((src.package, rel, reason))
                continue
            x, rate = sf.read(str(path), always_2d=False)
            items.append(
                dict(
                    package=src.package,
                    version=version,
                    original=rel,
                    licence=src.licence,
                    kind=src.kind,
                    audio=to_mono_16k(x, rate),
                )
            )
    return items, excluded


# --------------------------------------------------------------------------- #
# Cutting pieces
# --------------------------------------------------------------------------- #
def _db(x: float) -> float:
    return 20.0 * np.log10(max(x, 1e-12))


def is_audible(piece: np.ndarray) -> bool:
    """Not near-silent: RMS over -50 dBFS and enough 50 ms frames near the loudest."""
    if _db(np.sqrt(np.mean(piece**2))) < SILENT_DBFS:
        return False
    hop = RATE_HZ // 20
    frames = piece[: piece.size // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return float(np.mean(level > level.max() - 40.0)) >= ACTIVE_SHARE


def normalise(piece: np.ndarray) -> np.ndarray:
    """RMS to `TARGET_DBFS`, then down further if the peak would pass `PEAK_DBFS`."""
    piece = piece * 10 ** (TARGET_DBFS / 20) / max(np.sqrt(np.mean(piece**2)), 1e-12)
    peak = np.max(np.abs(piece))
    limit = 10 ** (PEAK_DBFS / 20)
    return piece * (limit / peak) if peak > limit else piece


def long_pieces(item, rng: np.random.Generator, per_track: int, n: int):
    """Up to `per_track` non-overlapping pieces of a long file at random offsets."""
    x = item["audio"]
    slots = x.size // n
    starts = sorted(
        rng.permutation(slots)[:per_track] * n + rng.integers(0, x.size - slots * n + 1)
    )
    for s in starts:
        yield x[s : s + n], [item], f"{s / RATE_HZ:.1f}s"


def packed_pieces(items, rng: np.random.Generator, n: int, *, crossfade: bool):
    """Short files of one group end to end (ambience: 50 ms crossfades; sfx: 0.1-0.8 s gaps)."""
    order = list(rng.permutation(len(items)))
    fade = RATE_HZ // 20
    while order:
        out, used, pos = np.zeros(n), [], 0
        while order and pos < n:
            item = items[order.pop()]
            x = item["audio"][: n - pos].copy()
            if crossfade and used and x.size > 2 * fade:
                ramp = np.linspace(0.0, 1.0, fade)
                x[:fade] *= ramp
                out[max(pos - fade, 0) : pos] *= ramp[::-1][: min(fade, pos)]
                pos = max(pos - fade, 0)
            out[pos : pos + x.size] += x
            used.append(item)
            pos += x.size + (0 if crossfade else int(rng.uniform(0.1, 0.8) * RATE_HZ))
        if crossfade and pos < n and used:  # loop what we have to fill the piece
            filled = out[:pos]
            out = np.resize(filled, n) if filled.size else out
        yield out, used, "packed"


def build(deb_root: Path, out: Path, seed: int, per_track: int, max_kb: float) -> None:
    items, excluded = collect(deb_root)
    rng = np.random.default_rng(seed)
    n = int(PIECE_SECONDS * RATE_HZ)
    pieces = {k: [] for k in KINDS}
    for kind in KINDS:
        mine = [it for it in items if it["kind"] == kind]
        long = [it for it in mine if it["audio"].size >= n]
        short = [it for it in mine if it["audio"].size < n]
        cands = []
        for it in long:
            cands += list(long_pieces(it, rng, per_track, n))
        groups: dict[tuple[str, str], list] = {}
        for it in short:
            groups.setdefault((it["package"], it["licence"]), []).append(it)
        for key in sorted(groups):
            cands += list(packed_pieces(groups[key], rng, n, crossfade=kind == "ambience"))
        cands = [c for c in cands if is_audible(c[0])]
        # Spread over packages: round-robin over packages in a seeded order.
        by_pkg: dict[str, list] = {}
        for c in cands:
            by_pkg.setdefault(c[1][0]["package"], []).append(c)
        for lst in by_pkg.values():
            rng.shuffle(lst)
        while len(pieces[kind]) < TARGETS[kind] and any(by_pkg.values()):
            for pkg in sorted(by_pkg):
                if by_pkg[pkg] and len(pieces[kind]) < TARGETS[kind]:
                    pieces[kind].append(by_pkg[pkg].pop())
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ogg"):
        old.unlink()
    rows = []
    for kind in KINDS:
        for i, (piece, used, where) in enumerate(pieces[kind]):
            name = f"{kind}_{i:03d}.ogg"
            sf.write(
                out / name,
                normalise(piece).astype(np.float32),
                RATE_HZ,
                format="OGG",
                subtype="VORBIS",
            )
            size_kb = (out / name).stat().st_size / 1024
            if size_kb > max_kb:
                raise SystemExit(f"{name} is {size_kb:.0f} KB > {max_kb} KB")
            originals = [u["original"] for u in used]
            rows.append(
                dict(
                    file=name,
                    kind=kind,
                    package=used[0]["package"],
                    version=used[0]["version"],
                    licence=" + ".join(sorted({u["licence"] for u in used})),
                    original=" ; ".join(originals) + ("" if where == "packed" else f" @ {where}"),
                    group=_group(used[0]["package"], originals, where, name),
                )
            )
    with open(out / "sources.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    total = sum(p.stat().st_size for p in out.glob("*.ogg")) / 1e6
    counts = {k: len(v) for k, v in pieces.items()}
    print(f"{len(rows)} pieces {counts}, {total:.2f} MB in {out}")
    for pkg, rel, reason in excluded:
        print(f"excluded {pkg}:{rel}: {reason}")


def _group(package: str, originals: list[str], where: str, name: str) -> str:
    """The unit the train/val split hashes: a long file's pieces share one group."""
    return f"{package}:{originals[0]}" if where != "packed" else f"{package}:{name}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--unpacked", type=Path, help="DIR/<package>/ trees from `dpkg -x`")
    how.add_argument(
        "--download", action="store_true", help="apt-get download + dpkg -x to a temp dir"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "data/noise"
    )
    parser.add_argument("--seed", type=int, default=1125)
    parser.add_argument("--pieces-per-track", type=int, default=2)
    parser.add_argument("--max-kb", type=float, default=200.0)
    args = parser.parse_args(argv)
    if args.download:
        with tempfile.TemporaryDirectory() as tmp:
            build(download(Path(tmp)), args.out, args.seed, args.pieces_per_track, args.max_kb)
    else:
        build(args.unpacked, args.out, args.seed, args.pieces_per_track, args.max_kb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
