"""Which per-band statistics let a linear detector catch generators it never saw?

    nice -n 5 .venv/bin/python benchmarks/bench_stats_features.py [--cache DIR]
        [--features base,dlcep30,...] [--workers 2]

A minutes-long check beside the protocol (`bench_unseen.py` trains the real model), as
`bench_copies_lr.py` but over feature families instead of vocoders. Every dev-corpus train
clip (../shared/data/deepwave-dev or $DEEPWAVE_DEV), two `lpc` and two `psola` copies of every
real train clip outside a held-out quarter of the LibriSpeech speakers (`deepwave_tf.vocode`,
seeded by clip index and copy), and every clip of the modern-generator set (`data/modern_val`,
from `scripts/build_modern_val.py`) become two frame-level spectra of their 5 s centre
crop (STFT 2048 / hop 512 at 32 kHz, as the project's front-end): the power in dB of every
STFT bin up to 8 kHz (513 bins, 15.6 Hz apart; the corpus and the modern set are band-limited
there) and the 128-band log-mel. From those, per clip, one feature vector per family:

- `base`: per-band mean and std over time of the log-mel and its 40 MFCC (the protocol's
  logistic-regression baseline, `bench_copies_lr.py`'s features);
- `mfcc`: the MFCC half of `base`; `dmfcc`: mean |d| and std of d, d the frame-to-frame
  first difference of the MFCC;
- `lcep60`: mean and std of the first 60 DCT-II coefficients of the dB spectrum of every
  bin (a cepstrum without filterbank);
- `dlcep30` / `dlcep60`: mean |d| and std of d of its first 30 / 60 coefficients;
- `lfcc510d`: as `dlcep30` after 510 triangular filters over 0-8 kHz (what `features.lfcc`
  with `n_lfcc_filters = 510`, `fmax_hz = 8000`, `n_lfcc = 30` and `model.stats_moments =
  ["diff_abs", "diff_std"]` gives the network);
- `lfcc510d_top80`: `lfcc510d` with every bin floored at 80 dB under the clip's peak first,
  as the project's front-end does by default (`features.top_db = 80`);
- `dlcep30_loud`: `dlcep30` over the pairs of adjacent frames whose log-mel energy are
  both at least the clip's median (the louder half: speech, not pauses);
- `lfcc128d`: `lfcc510d` after the default 128 filters;
- `lfcc128delta`: the mean and std of librosa's smoothed delta (width 9) of that cepstrum,
  which is what `features.lfcc_deltas = 1` stores;
- `lfcc510ms`: the mean and std over time of `lfcc510d`'s cepstrum (not of its difference);
  `lfcc510all`: both, the four moments `model.stats_moments` offers.

`--scorers` (default `lr`): how the vectors are scored, each trained on the same clips:
`lr` (below); `lr_sq`: the same on the standardised vector and its square (a linear model
that can flag a deviation from the reals in either direction); `real_distance`: one-class,
the Mahalanobis distance to the real training clips (Ledoit-Wolf covariance of the
standardised vectors; no fake is used); `gauss_llr`: the log-likelihood ratio of two such
Gaussians, copies against reals. With `--per-family` it also prints, per scorer, the EER
of each of the corpus's ten families against the held-out reals (mean over the quarters).

For each family a standardised, class-balanced logistic regression
(`protocol.fit_stats_baseline`, C 0.01 and 0.1) trains on the real clips outside the held-out
quarter against the copies alone (no fake of the corpus: its ten families are all unseen),
for each of the four quarters in turn (copies of the held-out speakers' clips left out); and,
for the first quarter, against the corpus's fakes plus the copies. It prints the modern-set
EER per quarter and their mean, the EER of the corpus's fakes against the held-out real
speakers (copies-only arm), and the modern-set AUC per source repository (first quarter).
The families were chosen by looking at the modern set: the best of them is optimistic as
an estimate for a new set, and the per-repository AUCs say how broad a gain is.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np  # noqa: E402
from bench_wavaug_lr import DEV, RATE, REPO, SEED, _centre  # noqa: E402

MODERN = REPO / "data" / "modern_val"
VOCODERS = ("lpc", "psola")
COPIES = 2
FAMILIES = (
    "base",
    "mfcc",
    "dmfcc",
    "lcep60",
    "dlcep30",
    "dlcep60",
    "lfcc510d",
    "lfcc510d_top80",
    "dlcep30_loud",
    "lfcc128d",
    "lfcc128delta",
    "lfcc510ms",
    "lfcc510all",
)
# how a family's vectors become a score (`--scorers`); the first is the protocol's baseline
SCORERS = ("lr", "lr_sq", "real_distance", "gauss_llr")
BINS = 513  # STFT bins up to 8 kHz


def _spectra(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`([513, T] dB of every bin to 8 kHz, [128, T] log-mel dB)`, float16."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    lin = 10 * np.log10(power[:BINS] + 1e-10)
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=RATE, n_mels=128), ref=1.0, top_db=80
    )
    return lin.astype(np.float16), mel.astype(np.float16)


def _clean(path: Path):
    from deepwave_tf import audio

    return _spectra(_centre(audio.load_soundfile(path, RATE)))


def _copies(job: tuple[int, str, str]):
    index, path, name = job
    from deepwave_tf import audio, vocode

    x = audio.load_soundfile(DEV / path, RATE)
    out = []
    for c in range(COPIES):
        try:
            y = vocode.vocode(name, x, RATE, np.random.default_rng([SEED, index, c]))
        except vocode.VocodeError:
            continue  # too short, silent or unvoiced: counted below, never hidden
        out.append(_spectra(_centre(y)))
    return out


def _map(fn, jobs, workers):
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs, chunksize=4))


def triangles(n: int) -> np.ndarray:
    """`[n, 513]` triangular filters of peak 1 over 0-8 kHz, `n + 2` equally spaced edges."""
    f = np.linspace(0, 8000, BINS)
    edges = np.linspace(0, 8000, n + 2)
    fb = np.zeros((n, BINS))
    for i in range(n):
        lo, mid, hi = edges[i : i + 3]
        fb[i] = np.clip(np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), 0, None)
    return fb.astype(np.float32)


def _dct(x: np.ndarray, n: int) -> np.ndarray:
    import scipy.fft

    return scipy.fft.dct(x, axis=1, type=2, norm="ortho")[:, :n]


def _diff_stats(c: np.ndarray, pairs: np.ndarray | None = None) -> list[np.ndarray]:
    """mean |d| and std of d per band, d the first difference over time of `[N, bands, T]`;
    `pairs` (`[N, T - 1]` bool): only those adjacent-frame pairs."""
    d = np.diff(c, axis=2)
    if pairs is None:
        return [np.abs(d).mean(2), d.std(2)]
    w = pairs.astype(np.float32)[:, None, :]
    n = w.sum(2) + 1e-6
    mean = (d * w).sum(2) / n
    return [(np.abs(d) * w).sum(2) / n, np.sqrt(((d - mean[..., None]) ** 2 * w).sum(2) / n)]


def _filtered(lin: np.ndarray, n: int) -> np.ndarray:
    fb = triangles(n)
    out = np.empty((lin.shape[0], n, lin.shape[2]), np.float32)
    for i in range(0, len(out), 128):
        p = 10 ** (lin[i : i + 128].astype(np.float32) / 10)
        out[i : i + 128] = 10 * np.log10(np.maximum(np.matmul(fb, p), 1e-10))  # BLAS, batched
    return out


_LFCC: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _lfcc(lin: np.ndarray, n: int) -> np.ndarray:
    """The 30-coefficient cepstrum over `n` triangles, computed once per spectra array: the
    `lfcc510*` families share it (45 s for the dev corpus's spectra alone, README)."""
    hit = _LFCC.get((id(lin), n))
    if hit is not None and hit[0] is lin:  # the same array, not a new one at a reused address
        return hit[1]
    c = _dct(_filtered(lin, n), 30)
    _LFCC[(id(lin), n)] = (lin, c)
    return c


def features(lin: np.ndarray, mel: np.ndarray, family: str) -> np.ndarray:
    """`[N, dims]` for one family (see the module docstring) of `[N, 513, T]` / `[N, 128, T]`."""
    import librosa

    mel = mel.astype(np.float32)
    if family in ("base", "mfcc", "dmfcc"):
        m = _dct(mel, 40)  # librosa.feature.mfcc(S=log-mel dB, n_mfcc=40)
        if family == "dmfcc":
            parts = _diff_stats(m)
        else:
            parts = [m.mean(2), m.std(2)]
            if family == "base":
                parts = [mel.mean(2), mel.std(2), *parts]
    elif family == "lcep60":
        c = _dct(lin.astype(np.float32), 60)
        parts = [c.mean(2), c.std(2)]
    elif family in ("dlcep30", "dlcep60"):
        parts = _diff_stats(_dct(lin.astype(np.float32), int(family[-2:])))
    elif family == "dlcep30_loud":
        energy = mel.mean(1)  # [N, T]
        loud = energy >= np.median(energy, axis=1, keepdims=True)
        parts = _diff_stats(_dct(lin.astype(np.float32), 30), loud[:, 1:] & loud[:, :-1])
    elif family in ("lfcc510d", "lfcc128d"):
        parts = _diff_stats(_lfcc(lin, int(family[4:7])))
    elif family in ("lfcc510ms", "lfcc510all"):
        c = _lfcc(lin, 510)
        parts = [c.mean(2), c.std(2)] + (_diff_stats(c) if family == "lfcc510all" else [])
    elif family == "lfcc510d_top80":
        lin = lin.astype(np.float32)
        lin = np.maximum(lin, lin.max(axis=(1, 2), keepdims=True) - 80.0)
        parts = _diff_stats(_dct(_filtered(lin, 510), 30))
    elif family == "lfcc128delta":
        d = librosa.feature.delta(_lfcc(lin, 128), width=9, axis=2)
        parts = [d.mean(2), d.std(2)]
    else:
        raise ValueError(f"unknown feature family {family!r}; known: {', '.join(FAMILIES)}")
    return np.nan_to_num(np.concatenate(parts, axis=1))


def fit_scorer(name: str, x: np.ndarray, y: np.ndarray, c: float):
    """A function `[N, dims] -> [N]` scores (higher: more fake) trained on `x`, `y` (1: fake)."""
    from sklearn.covariance import LedoitWolf
    from sklearn.preprocessing import StandardScaler

    from deepwave_tf import protocol

    if name == "lr":
        return protocol.fit_stats_baseline(x, y, c=c).decision_function
    if name == "lr_sq":
        scaler = StandardScaler().fit(x)

        def expand(v):
            z = scaler.transform(v)
            return np.concatenate([z, z**2], axis=1)

        model = protocol.fit_stats_baseline(expand(x), y, c=c)
        return lambda v: model.decision_function(expand(v))
    if name == "real_distance":
        scaler = StandardScaler().fit(x[y == 0])
        real = LedoitWolf().fit(scaler.transform(x[y == 0]))
        return lambda v: real.mahalanobis(scaler.transform(v))
    if name == "gauss_llr":
        scaler = StandardScaler().fit(x)
        real = LedoitWolf().fit(scaler.transform(x[y == 0]))
        fake = LedoitWolf().fit(scaler.transform(x[y == 1]))

        def llr(v):
            z = scaler.transform(v)
            return _gauss_loglik(fake, z) - _gauss_loglik(real, z)

        return llr
    raise ValueError(f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")


def _gauss_loglik(model, z: np.ndarray) -> np.ndarray:
    """Per-row Gaussian log-likelihood (up to a shared constant) under a fitted covariance."""
    d = z - model.location_
    return (
        -0.5 * np.einsum("ij,jk,ik->i", d, model.precision_, d)
        + 0.5 * np.linalg.slogdet(model.precision_)[1]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", default=",".join(FAMILIES))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="keep the spectra here (.npz)")
    p.add_argument("--modern", type=Path, default=MODERN)
    p.add_argument("--scorers", default="lr", help=f"comma-separated, of {', '.join(SCORERS)}")
    p.add_argument("--per-family", action="store_true", help="EER of each corpus family too")
    args = p.parse_args(argv)
    from deepwave_tf import protocol, vocode

    families = [f for f in args.features.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        sys.exit(f"bench_stats_features: unknown families {unknown} (known: {list(FAMILIES)})")
    scorers = [x for x in args.scorers.split(",") if x]
    if not scorers or any(x not in SCORERS for x in scorers):
        sys.exit(f"bench_stats_features: --scorers {args.scorers!r}: known {list(SCORERS)}")
    missing = {v: r for v, r in vocode.available().items() if v in VOCODERS and r}
    if missing:
        sys.exit(f"bench_stats_features: cannot use {missing}")
    if not (args.modern / "labels.csv").is_file():
        sys.exit(
            f"bench_stats_features: no modern-generator set at {args.modern} "
            "(python scripts/build_modern_val.py)"
        )

    meta = {r["id"]: r for r in csv.DictReader(open(DEV / "meta.csv", newline=""))}
    rows = list(csv.DictReader(open(DEV / "train.csv", newline="")))
    fake = np.array([r["label"] == "fake" for r in rows])
    quarter = np.array(
        [
            int(hashlib.md5(meta[r["id"]]["speaker_or_voice"].encode()).hexdigest(), 16) % 4
            for r in rows
        ]
    )
    libri = np.array([meta[r["id"]]["source"] == "librispeech" for r in rows])
    mrows = list(csv.DictReader(open(args.modern / "labels.csv", newline="")))
    mfake = np.array([r["label"] == "fake" for r in mrows])
    mrepo = np.array([r["source_repo"] for r in mrows])

    def cached(key, make):
        path = args.cache / f"stats_features_{key}.npz" if args.cache else None
        if path is not None and path.exists():
            return dict(np.load(path))
        value = make()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **value)
        return value

    def stack(items):
        return {"lin": np.stack([a for a, _ in items]), "mel": np.stack([b for _, b in items])}

    t0 = time.perf_counter()
    dev = cached("dev", lambda: stack(_map(_clean, [DEV / r["path"] for r in rows], args.workers)))
    modern = cached(
        f"modern{len(mrows)}",
        lambda: stack(_map(_clean, [args.modern / r["path"] for r in mrows], args.workers)),
    )
    # copies of every real clip outside quarter 0 (the first split's held-out speakers);
    # the other splits drop the copies of their own held-out speakers' clips
    first_held = ~fake & libri & (quarter == 0)
    source = np.flatnonzero(~fake & ~first_held)
    which = hashlib.md5(source.tobytes()).hexdigest()[:8]
    copies, refused = [], 0
    for name in VOCODERS:

        def make(name=name):
            res = _map(_copies, [(int(i), rows[i]["path"], name) for i in source], args.workers)
            out = stack([s for r in res for s in r])
            out["src"] = np.array([i for i, r in zip(source, res) for _ in r])
            return out

        c = cached(f"{name}_k{COPIES}_{which}", make)
        refused += COPIES * len(source) - len(c["src"])
        copies.append(c)
    src = np.concatenate([c["src"] for c in copies])
    print(
        f"spectra in {time.perf_counter() - t0:.0f} s: {len(rows)} dev train clips, "
        f"{len(src)} copies ({refused} refused by the vocoder), {len(mrows)} modern clips"
    )

    generator = np.array([meta[r["id"]]["generator"] for r in rows])
    dev_families = sorted(set(generator[fake]))
    results, repo_rows, family_rows = [], [], []
    for family in families:
        xd = features(dev["lin"], dev["mel"], family)
        xm = features(modern["lin"], modern["mel"], family)
        xc = np.concatenate([features(c["lin"], c["mel"], family) for c in copies])
        for scorer in scorers:
            # the one-class and Gaussian scorers have no C: one row each
            for c_reg in (0.01, 0.1) if scorer.startswith("lr") else (0.01,):
                modern_eer, dev_eer, per_family = [], [], {g: [] for g in dev_families}
                for q in range(4):
                    held = ~fake & libri & (quarter == q)
                    train_real = ~fake & ~held
                    keep = ~held[src]
                    x = np.concatenate([xd[train_real], xc[keep]])
                    y = np.r_[np.zeros(int(train_real.sum())), np.ones(int(keep.sum()))]
                    score = fit_scorer(scorer, x, y, c_reg)
                    s = score(xm)
                    modern_eer.append(protocol.detection_metrics(mfake, s)["eer"])
                    sel = fake | held
                    sd = score(xd)
                    dev_eer.append(protocol.detection_metrics(fake[sel], sd[sel])["eer"])
                    for g in dev_families:
                        m = (generator == g) | held
                        per_family[g].append(protocol.detection_metrics(fake[m], sd[m])["eer"])
                    if q == 0 and c_reg == 0.01:
                        repo_rows.append(
                            [family, scorer]
                            + [
                                f"{protocol.detection_metrics(mfake[mrepo == r], s[mrepo == r])['auc']:.2f}"
                                for r in sorted(set(mrepo))
                            ]
                        )
                held = ~fake & libri & (quarter == 0)
                train_real = ~fake & ~held
                keep = ~held[src]
                x = np.concatenate([xd[train_real], xd[fake], xc[keep]])
                y = np.r_[np.zeros(int(train_real.sum())), np.ones(int(fake.sum() + keep.sum()))]
                both = fit_scorer(scorer, x, y, c_reg)
                both_eer = protocol.detection_metrics(mfake, both(xm))["eer"]
                c_text = f"{c_reg:g}" if scorer.startswith("lr") else "-"
                results.append(
                    [
                        family,
                        str(xd.shape[1]),
                        scorer,
                        c_text,
                        " / ".join(f"{100 * e:.1f}" for e in modern_eer),
                        f"**{100 * np.mean(modern_eer):.1f}**",
                        f"{100 * np.mean(dev_eer):.1f}",
                        f"{100 * both_eer:.1f}",
                    ]
                )
                family_rows.append(
                    [family, scorer, c_text]
                    + [f"{100 * np.mean(per_family[g]):.0f}" for g in dev_families]
                )
                print(" | ".join(results[-1]), flush=True)
    _common.table(
        "per-band statistics, scored by a logistic regression or --scorers: modern-set EER % "
        "(copies only, per quarter held out, and mean); the corpus's fakes vs held-out reals; "
        "corpus fakes + copies",
        [
            "features",
            "dims",
            "scorer",
            "C",
            "modern EER per quarter",
            "mean",
            "dev fakes EER",
            "modern EER, + corpus fakes",
        ],
        results,
        str,
    )
    _common.table(
        "modern-set AUC per source repository (copies only, quarter 0, C 0.01)",
        ["features", "scorer", *[r.split("/")[0][:12] for r in sorted(set(mrepo))]],
        repo_rows,
        str,
    )
    if args.per_family:
        _common.table(
            "EER % of each corpus family against the held-out real speakers (copies only, mean "
            "of the quarters; over 50: the family looks more real than the reals)",
            ["features", "scorer", "C", *dev_families],
            family_rows,
            str,
        )


if __name__ == "__main__":
    main()
