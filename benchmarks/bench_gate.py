"""Can a gate learnt on training data tell a clean single voice from one of the challenge's mixtures?

    nice -n 5 .venv/bin/python benchmarks/bench_gate.py [--clips 500] [--noise-only 0.15]
        [--seed 0] [--modern data/modern_val]

The question behind a two-path model: `configs/clean_voice.toml` catches the modern
generators on clean single voices (README, "Session 7") but reads a trace more than 80 dB
under each clip's peak, which the challenge's backgrounds bury; the default handles the
mixtures. A gate in front of both would send each clip to the path that can score it, if
something learnt from training data alone can tell the two kinds of clip apart.

The gate here: a standardised logistic regression (C 0.1) on 52 level statistics of a clip's
5 s centre crop (STFT 1024 / hop 320 at 32 kHz): the 5th, 50th and 95th percentiles over
time of the power in 16 log-spaced bands, and the 5th, 10th, 25th and 50th percentiles of the
frame energy, all in dB under the clip's peak (what separates a voice over a noise floor from
a voice over a background, if anything of this kind does). It trains on `--clips` dev-corpus
train clips as they are ("clean") against the same clips mixed with a piece of the training
part of the recorded noise bank (`data/noise`, `augment.noise_part` "train") at an SNR drawn
from the default augmentation's 5-30 dB, a `--noise-only` share of them noise alone
("mixture"). It is scored on:

- held-out train clips, clean and mixed with the bank's *val* part (in domain);
- the dev test's 600 clips, per condition (what a gate must send to the mixture path);
- the modern-generator set's 653 clean clips (what it must send to the clean path);

and prints the share of each sent to the clean path (gate > 0.5), the mean gate, and the
AUC of the gate between the modern set and the dev test (1.0: a perfect router). The dev test
and the modern set are evaluation data: nothing is fitted on them. One draw, one split.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import numpy as np  # noqa: E402
from bench_wavaug_lr import CLIP, DEV, RATE, REPO, _centre  # noqa: E402

MODERN = REPO / "data" / "modern_val"
N_FFT, HOP = 1024, 320
BAND_EDGES = np.r_[0, np.geomspace(4, N_FFT // 2, 16)].astype(int)  # 16 bands of rfft bins


def level_statistics(y: np.ndarray) -> np.ndarray:
    """`[52]` level statistics (see the module docstring) of a `[CLIP]` crop."""
    frames = 1 + (len(y) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(y[idx] * np.hanning(N_FFT), axis=1)) ** 2
    bands = np.stack(
        [power[:, a:b].mean(1) for a, b in zip(BAND_EDGES[:-1], BAND_EDGES[1:])], axis=1
    )
    db = 10 * np.log10(bands + 1e-20)
    db -= db.max()
    energy = 10 * np.log10(power.mean(1) + 1e-20)
    energy -= energy.max()
    return np.concatenate(
        [np.percentile(db, [5, 50, 95], axis=0).ravel(), np.percentile(energy, [5, 10, 25, 50])]
    )


def _tile(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random `[CLIP]` stretch of a noise piece, looped when it is shorter."""
    x = np.tile(x, 1 + CLIP // max(1, len(x)))
    start = int(rng.integers(0, len(x) - CLIP + 1))
    return x[start : start + CLIP]


def mixture(voice: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`voice + g * noise` with `g` such that the power ratio over the crop is `snr_db`."""
    gain = np.sqrt((np.mean(voice**2) + 1e-12) / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return voice + gain * noise


def peak_normalised(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    return x / max(1e-6, float(np.abs(x).max())) * peak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=500, help="train clips for the gate")
    p.add_argument("--noise-only", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modern", type=Path, default=MODERN)
    args = p.parse_args(argv)
    if not (args.modern / "labels.csv").is_file():
        sys.exit(
            f"bench_gate: no modern-generator set at {args.modern} (scripts/build_modern_val.py)"
        )

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepwave_tf import audio, augment
    from deepwave_tf.config import AugmentConfig

    aug = AugmentConfig()  # the default mixing's SNR range
    snr_range = (aug.snr_db_min, aug.snr_db_max)

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    def load(path) -> np.ndarray:
        return _centre(audio.load(path, RATE).astype(np.float64))

    bank = {
        part: [
            augment.decode_piece(path, RATE)
            for _, path in augment.recorded_pieces("data/noise", part)
        ]
        for part in ("train", "val")
    }
    rows = list(csv.DictReader(open(DEV / "train.csv", newline="")))
    order = rng.permutation(len(rows))
    fit_rows = [rows[i] for i in order[: args.clips]]
    held_rows = [rows[i] for i in order[args.clips : 2 * args.clips]]

    def clean_and_mixed(rows_, part):
        x, y = [], []
        for r in rows_:
            voice = load(DEV / r["path"])
            noise = _tile(bank[part][int(rng.integers(len(bank[part])))], rng)
            if rng.random() < args.noise_only:
                mixed = noise * rng.uniform(0.05, 1.0)
            else:
                mixed = peak_normalised(mixture(voice, noise, rng.uniform(*snr_range)))
            x += [level_statistics(voice), level_statistics(mixed)]
            y += [1, 0]
        return np.array(x), np.array(y)

    x, y = clean_and_mixed(fit_rows, "train")
    gate = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)).fit(x, y)
    xh, yh = clean_and_mixed(held_rows, "val")
    gh = gate.predict_proba(xh)[:, 1]

    conditions = {r["id"]: r["condition"] for r in csv.DictReader(open(DEV / "test_mix.csv"))}
    test = list(csv.DictReader(open(DEV / "test.csv", newline="")))
    gt = gate.predict_proba(np.array([level_statistics(load(DEV / r["path"])) for r in test]))[:, 1]
    cond = np.array([conditions[r["id"]] for r in test])
    modern = list(csv.DictReader(open(args.modern / "labels.csv", newline="")))
    gm = gate.predict_proba(
        np.array([level_statistics(load(args.modern / r["path"])) for r in modern])
    )[:, 1]

    def row(name, g):
        return [name, str(len(g)), f"{(g > 0.5).mean():.2f}", f"{g.mean():.2f}"]

    table = [
        row("held-out train clips, clean", gh[yh == 1]),
        row("held-out train clips, mixed (bank's val part)", gh[yh == 0]),
        *[row(f"dev test: {c}", gt[cond == c]) for c in sorted(set(cond))],
        row("dev test: all", gt),
        row("modern set (clean single voices)", gm),
    ]
    auc_held = roc_auc_score(yh, gh)
    auc_route = roc_auc_score(np.r_[np.ones(len(gm)), np.zeros(len(gt))], np.r_[gm, gt])
    _common.table(
        f"gate (LR on level statistics, {len(x)} training examples): share sent to the clean path",
        ["clips", "n", "gate > 0.5", "mean gate"],
        table,
        str,
    )
    print(f"gate AUC, held-out clean vs mixed: {auc_held:.3f}")
    print(f"gate AUC, modern set vs dev test (routing): {auc_route:.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    print(
        json.dumps(
            {
                "auc_held_out": auc_held,
                "auc_modern_vs_devtest": auc_route,
                "modern_clean_share": float((gm > 0.5).mean()),
                "devtest_clean_share": float((gt > 0.5).mean()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
