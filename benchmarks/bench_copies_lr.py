"""Which copy-synthesis fakes teach a linear detector to catch generators it never saw?

    nice -n 5 .venv/bin/python benchmarks/bench_copies_lr.py [--vocoders lpc,psola,...]
        [--copies 2] [--workers 2] [--cache DIR]

A minutes-long check beside the protocol (`bench_unseen.py` trains the real model):
every dev-corpus train clip (../shared/data/deepwave-dev or $DEEPWAVE_DEV) and
`--copies` re-syntheses of every real train clip by each of `--vocoders`
(`deepwave_tf.vocode`, seeded by clip index and copy) become the per-band mean and
standard deviation over time of the librosa log-mel and MFCC of their 5 s centre
crop (as `bench_wavaug_lr.py`). A quarter of the LibriSpeech speakers (by a hash of
the speaker) is held out; the single-voice real sources stay in training. A standardised, class-balanced logistic regression
(`protocol.fit_stats_baseline`, C 0.1) trains on the other real clips against:

- `dev fakes`: the corpus's own fakes (the protocol's baseline, every family seen);
- `copies: V`: the copies of each vocoder V alone, then all vocoders together:
  no fake of the corpus is seen, so all ten dev families are unseen generators;
- `dev fakes + copies`: both.

It prints, per arm, the EER and AUC on the modern-generator set (`data/modern_val`,
from `scripts/build_modern_val.py`; skipped with a message when absent) and, for the
arms that saw no dev fake, on the dev fakes against the held-out real speakers, per
family too. For the corpus's two re-synthesis families (`world`, `griffinlim`: copies of
LibriSpeech speakers whose real clips are in train too), how far they sit from their own
speakers' real clips, whether each vocoder's copies shift the statistics the same way, and
what a logistic regression trained on the family itself reaches (`resynthesis_gap`). Then the
vocoders' cost (CPU seconds per clip) and the clips each one refused (too short, silent,
unvoiced), which are left out and counted, never hidden.
One split and one draw of copies: differences of a couple of points are noise.
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
from bench_wavaug_lr import DEV, RATE, REPO, SEED, _centre, _stats, held_out_reals  # noqa: E402

MODERN = REPO / "data" / "modern_val"
# dev-corpus families that re-synthesise LibriSpeech speakers whose real clips are in train too
RESYNTHESES = ("world", "griffinlim")


def _clean_features(path: Path) -> np.ndarray:
    from deepwave_tf import audio

    return _stats(_centre(audio.load_soundfile(path, RATE)))


def _copy_features(job: tuple[int, str, str, int]) -> tuple[list[np.ndarray], list[str], float]:
    """Stats of `copies` re-syntheses of one clip by one vocoder, the refusals, CPU seconds."""
    index, path, name, copies = job
    from deepwave_tf import audio, vocode

    x = audio.load_soundfile(DEV / path, RATE)
    out, refused = [], []
    start = _common.cpu_seconds()
    for c in range(copies):
        try:
            y = vocode.vocode(name, x, RATE, np.random.default_rng([SEED, index, c]))
        except vocode.VocodeError as e:
            refused.append(f"{path}: {e.reason}")
            continue
        out.append(_stats(_centre(y)))
    return out, refused, _common.cpu_seconds() - start


def resynthesis_gap(
    x_real: np.ndarray,
    x_family: np.ndarray,
    x_family_reals: np.ndarray,
    family_speakers: np.ndarray,
    real_speakers: np.ndarray,
    copy_sets: dict[str, np.ndarray],
) -> dict:
    """How far a re-synthesis family sits from its own speakers' real clips, and whether copies
    point the same way.

    Statistics are standardised on `x_real` (every real train clip). `shift`: the length of the
    family's mean minus the mean of its speakers' real clips (`x_family_reals`); `cosine[v]`:
    the cosine between that shift and copy set v's (its mean minus the real clips' mean);
    `seen_auc`: the AUC of the protocol's logistic regression (`protocol.fit_stats_baseline`)
    trained on the family itself (seen: what these statistics give it when it sees the family),
    scored on held-out speakers (5 speaker-grouped folds).
    """
    from sklearn.model_selection import GroupKFold

    from deepwave_tf import protocol

    mu, sd = x_real.mean(0), x_real.std(0) + 1e-9
    z = lambda v: (np.asarray(v, np.float64) - mu) / sd  # noqa: E731
    shift = z(x_family).mean(0) - z(x_family_reals).mean(0)
    base = z(x_real).mean(0)

    def cosine(a, b):
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    x = np.concatenate([z(x_family), z(x_family_reals)])
    y = np.r_[np.ones(len(x_family)), np.zeros(len(x_family_reals))]
    groups = np.r_[family_speakers, real_speakers]
    score = np.empty(len(y))
    for train, held in GroupKFold(min(5, len(set(groups)))).split(x, y, groups):
        score[held] = protocol.fit_stats_baseline(x[train], y[train]).decision_function(x[held])
    return {
        "shift": float(np.linalg.norm(shift)),
        "cosine": {v: cosine(shift, z(c).mean(0) - base) for v, c in copy_sets.items()},
        "seen_auc": protocol.detection_metrics(y, score)["auc"],
    }


def _map(fn, jobs, workers):
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs, chunksize=4))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocoders", default="lpc,psola,phase_vocoder,codec2")
    p.add_argument("--copies", type=int, default=2, help="copies of every real clip per vocoder")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None, help="keep the features here (.npz)")
    p.add_argument("--modern", type=Path, default=MODERN)
    args = p.parse_args(argv)
    from deepwave_tf import protocol, vocode

    names = [v for v in args.vocoders.split(",") if v]
    missing = {v: r for v, r in vocode.available().items() if v in names and r}
    unknown = [v for v in names if v not in vocode.VOCODERS]
    if unknown or missing:
        sys.exit(
            f"bench_copies_lr: cannot use {unknown or missing} (known: {list(vocode.VOCODERS)})"
        )

    meta = {r["id"]: r for r in csv.DictReader(open(DEV / "meta.csv", newline=""))}
    rows = list(csv.DictReader(open(DEV / "train.csv", newline="")))
    fake = np.array([r["label"] == "fake" for r in rows])
    generator = np.array([meta[r["id"]]["generator"] for r in rows])
    speaker = np.array([meta[r["id"]]["speaker_or_voice"] for r in rows])
    held_real = held_out_reals(rows, meta, librispeech_only=True)
    train_real = ~fake & ~held_real
    print(f"real clips: {int(train_real.sum())} train, {int(held_real.sum())} held out (speakers)")

    def cached(key, make):
        path = args.cache / f"copies_lr_{key}.npz" if args.cache else None
        if path is not None and path.exists():
            return dict(np.load(path, allow_pickle=True))
        value = make()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **value)
        return value

    start = time.perf_counter()
    dev = cached(
        "dev",
        lambda: {
            "x": np.stack(_map(_clean_features, [DEV / r["path"] for r in rows], args.workers))
        },
    )["x"]
    modern = None
    if (args.modern / "labels.csv").is_file():
        mrows = list(csv.DictReader(open(args.modern / "labels.csv", newline="")))
        modern = cached(
            f"modern{len(mrows)}",
            lambda: {
                "x": np.stack(
                    _map(_clean_features, [args.modern / r["path"] for r in mrows], args.workers)
                ),
                "fake": np.array([r["label"] == "fake" for r in mrows]),
            },
        )
    else:
        print(f"no modern-generator set at {args.modern} (scripts/build_modern_val.py): skipped")
    print(f"clean features in {time.perf_counter() - start:.0f} s")

    real_index = np.flatnonzero(train_real)
    copies, costs = {}, []
    for name in names:

        def make(name=name):
            jobs = [(int(i), rows[i]["path"], name, args.copies) for i in real_index]
            t0 = time.perf_counter()
            res = _map(_copy_features, jobs, args.workers)
            return {
                "x": np.array([f for feats, _, _ in res for f in feats]).reshape(-1, dev.shape[1]),
                "refused": np.array([m for _, refused, _ in res for m in refused], dtype=object),
                "cpu": np.array([c for _, _, c in res]),
                "wall": np.array(time.perf_counter() - t0),
            }

        # the key names the real clips copied, so a changed split never reuses stale copies
        which = hashlib.md5(real_index.tobytes()).hexdigest()[:8]
        c = cached(f"{name}_k{args.copies}_{which}", make)
        copies[name] = c["x"]
        n_try = len(real_index) * args.copies
        costs.append(
            [
                name,
                f"{len(c['x'])} / {n_try}",
                f"{c['cpu'].sum() / n_try:.3f}",
                f"{float(c['wall']):.0f}",
            ]
        )
        for m in c["refused"][:5]:
            print(f"  {name} refused {m}")
        if len(c["refused"]) > 5:
            print(f"  {name} refused {len(c['refused']) - 5} more clip(s)")

    results = []

    def arm(label, x_fake, dev_eval):
        x = np.concatenate([dev[train_real], x_fake])
        y = np.r_[np.zeros(int(train_real.sum())), np.ones(len(x_fake))]
        model = protocol.fit_stats_baseline(x, y)
        row = [label, str(len(x_fake))]
        if modern is not None:
            m = protocol.detection_metrics(modern["fake"], model.decision_function(modern["x"]))
            row += [f"{100 * m['eer']:.1f}", f"{m['auc']:.3f}"]
        if dev_eval:
            keep = fake | held_real
            s = model.decision_function(dev[keep])
            d = protocol.detection_metrics(fake[keep], s)
            fam = protocol.per_generator(generator[keep], fake[keep], s)
            row += [
                f"{100 * d['eer']:.1f}",
                " ".join(f"{g} {100 * v['eer']:.0f}" for g, v in fam.items()),
            ]
        else:
            row += ["n/a (seen)", ""]
        results.append(row)

    arm("dev fakes", dev[fake], False)
    for name in names:
        arm(f"copies: {name}", copies[name], True)
    if len(names) > 1:
        arm(f"copies: {' + '.join(names)}", np.concatenate(list(copies.values())), True)
    arm("dev fakes + copies", np.concatenate([dev[fake], *copies.values()]), False)
    head = ["trained against", "fakes"]
    if modern is not None:
        head += ["modern EER %", "modern AUC"]
    head += ["dev fakes vs held-out reals EER %", "per family EER %"]
    load = os.getloadavg()[0]
    _common.table(
        f"per-band-statistics LR, {args.copies} copies per real clip (load average {load:.1f})",
        head,
        results,
        str,
    )
    # the corpus's own re-syntheses of LibriSpeech voices: their speakers' real clips are in train
    gaps = []
    for family in RESYNTHESES:
        m = generator == family
        ref = ~fake & np.isin(speaker, sorted(set(speaker[m])))
        if not m.any() or ref.sum() < 2:
            print(
                f"  {family}: {int(m.sum())} clips, {int(ref.sum())} real clips of its speakers: no gap"
            )
            continue
        g = resynthesis_gap(dev[~fake], dev[m], dev[ref], speaker[m], speaker[ref], copies)
        gaps.append(
            [family, f"{int(m.sum())} / {int(ref.sum())}", f"{g['shift']:.1f}"]
            + [f"{g['cosine'][v]:+.2f}" for v in names]
            + [f"{g['seen_auc']:.3f}"]
        )
    if gaps:
        _common.table(
            "the corpus's re-syntheses against their own speakers' real clips (standardised "
            "statistics): mean shift, its cosine with each vocoder's copies' shift, and the AUC "
            "of an LR trained on the family itself (seen; speaker-grouped 5-fold)",
            ["family", "fakes / reals", "shift", *(f"cos {v}" for v in names), "seen AUC"],
            gaps,
            str,
        )
    _common.table(
        "vocoders: copies made / tried, CPU seconds per copy, wall seconds",
        ["vocoder", "copies", "CPU s / copy", "wall s"],
        costs,
        str,
    )


if __name__ == "__main__":
    main()
