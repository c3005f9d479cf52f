"""Quick check of `wavaug` on held-out generator families, with a per-band-statistics logistic regression.

    nice -n 5 .venv/bin/python benchmarks/bench_wavaug_lr.py [--views 1] [--names mp3,gain,...]
        [--real-holdout librispeech|all] [--workers 2] [--cache DIR]

Not the project's protocol (issue 10's `bench_unseen.py` trains the real model): a
minutes-long look at whether training on `wavaug.random_chain` views moves a cheap
detector's EER on generator families it never saw. For each dev-corpus train clip
(../shared/data/deepwave-dev or $DEEPWAVE_DEV), the 5 s centre crop and `--views`
augmented views of it (seeded by clip index and view) become per-band mean and
standard deviation over time of the librosa log-mel (128 bands, ref 1, top_db 80)
and its 40 MFCC. Per fold ({piper, world, griffinlim}, {festival-hts, rhvoice},
{festival-diphone, mbrola}, {flite, espeak-ng, pico}), the fold's fakes and a
quarter of the real speakers (by a hash of the speaker; `librispeech`: only
LibriSpeech speakers, so that the single-voice sources stay in train) are held
out; a standardised logistic regression (C 0.1) trains on the rest, three ways:
clean clips, clean + views, views only. It is scored (AUC, EER of "fake") on the
held-out clips, clean and as one augmented view. One draw of augmentation, one
split: differences of a few points are noise.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("DEEPWAVE_DEV", REPO.parent / "shared" / "data" / "deepwave-dev"))
RATE = 32000
CLIP = 5 * RATE
SEED = 1125
FOLDS = [
    ("piper", "world", "griffinlim"),
    ("festival-hts", "rhvoice"),
    ("festival-diphone", "mbrola"),
    ("flite", "espeak-ng", "pico"),
]


def _centre(x: np.ndarray) -> np.ndarray:
    if x.shape[0] >= CLIP:
        start = (x.shape[0] - CLIP) // 2
        return x[start : start + CLIP]
    return np.pad(x, (0, CLIP - x.shape[0]))


def _stats(y: np.ndarray) -> np.ndarray:
    """Per-band mean and std over time of the log-mel and the MFCC: `[2 * 128 + 2 * 40]`."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=y, sr=RATE, n_fft=2048, hop_length=512, n_mels=128, power=2.0
    )
    db = librosa.power_to_db(power, ref=1.0, top_db=80)
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=40)
    return np.concatenate([db.mean(1), db.std(1), mfcc.mean(1), mfcc.std(1)])


def held_out_reals(rows: list[dict], meta: dict, librispeech_only: bool) -> np.ndarray:
    """Mask of the real train rows whose speaker a hash puts in the held-out quarter
    (`librispeech_only`: LibriSpeech speakers only, so the single-voice sources stay in)."""
    out = np.array(
        [
            r["label"] == "real"
            and int(hashlib.md5(meta[r["id"]]["speaker_or_voice"].encode()).hexdigest(), 16) % 4
            == 0
            and (not librispeech_only or meta[r["id"]]["source"] == "librispeech")
            for r in rows
        ]
    )
    return out


def _clip_features(job: tuple[int, str, int, tuple[str, ...] | None]) -> np.ndarray:
    """`[1 + views, dims]`: the clean crop, then each view."""
    index, path, views, names = job
    from deepwave_tf import audio, wavaug

    x = _centre(audio.load_soundfile(DEV / path, RATE))
    out = [_stats(x)]
    for v in range(views):
        y, _ = wavaug.random_chain(x, RATE, np.random.default_rng([SEED, index, v]), names=names)
        out.append(_stats(y))
    return np.stack(out)


def _eer(target: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(target, score)
    k = np.argmin(np.abs((1 - tpr) - fpr))
    return float((fpr[k] + 1 - tpr[k]) / 2)


def _cells(row) -> list[str]:
    """AUC, EER %, AUC, EER % as table cells."""
    return [f"{v:.3f}" if k % 2 == 0 else f"{v:.1f}" for k, v in enumerate(row)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--views", type=int, default=1)
    p.add_argument(
        "--names", default="", help="comma-separated pool for random_chain (default all)"
    )
    p.add_argument("--real-holdout", choices=["librispeech", "all"], default="librispeech")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="keep the features here (.npy)")
    args = p.parse_args(argv)
    names = tuple(args.names.split(",")) if args.names else None

    meta = {r["id"]: r for r in csv.DictReader(open(DEV / "meta.csv", newline=""))}
    rows = list(csv.DictReader(open(DEV / "train.csv", newline="")))
    tag = f"v{args.views}-{'-'.join(names) if names else 'all'}"
    cache = args.cache / f"wavaug_lr_{tag}.npy" if args.cache else None
    start = time.perf_counter()
    if cache is not None and cache.exists():
        feats = np.load(cache)
    else:
        jobs = [(i, r["path"], args.views, names) for i, r in enumerate(rows)]
        with ProcessPoolExecutor(args.workers) as pool:
            feats = np.stack(list(pool.map(_clip_features, jobs, chunksize=8)))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, feats)
    load = os.getloadavg()[0]
    print(
        f"features {feats.shape} in {time.perf_counter() - start:.0f} s (load average {load:.1f})"
    )

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fake = np.array([r["label"] == "fake" for r in rows])
    generator = np.array([meta[r["id"]]["generator"] for r in rows])
    real_out = held_out_reals(rows, meta, librispeech_only=args.real_holdout == "librispeech")
    print(f"held-out real clips: {int(real_out.sum())} ({args.real_holdout})")

    arms = {"clean": [0], "clean + views": list(range(args.views + 1))}
    arms["views only"] = list(range(1, args.views + 1))
    table, means = [], {a: [] for a in arms}
    for fold in FOLDS:
        held = np.isin(generator, fold)
        train, test = ~held & ~real_out, held | real_out
        for arm, views in arms.items():
            x = np.concatenate([feats[train, v] for v in views])
            y = np.concatenate([fake[train]] * len(views))
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
            clf.fit(x, y)
            row = []
            for v in (0, 1):  # the held-out clips clean, and as their first view
                score = clf.predict_proba(feats[test, v])[:, 1]
                row += [roc_auc_score(fake[test], score), 100 * _eer(fake[test], score)]
            table.append([", ".join(fold), arm, *_cells(row)])
            means[arm].append(row)
    for arm, rows_ in means.items():
        table.append(["**mean**", arm, *_cells(np.mean(rows_, axis=0))])
    _common.table(
        f"per-band-statistics LR on held-out families, {args.views} view(s) per clip ({tag})",
        ["held-out fakes", "train on", "AUC clean", "EER % clean", "AUC aug", "EER % aug"],
        table,
        str,
    )


if __name__ == "__main__":
    main()
