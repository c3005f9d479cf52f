"""The unseen-generator protocol: how well a detector catches fakes from generators it never saw.

A detector trained on a handful of generators learns those generators' voices and
channels unless something stops it; a random or speaker-disjoint validation split
cannot tell, because every generator is on both sides. The protocol holds whole
generator families out (`prep.holdout`, the split "unseen") and scores them against
real voices that training never heard either; `benchmarks/bench_unseen.py` runs it
fold by fold. This module holds the parts the benchmark and the tests share:

- `FOLDS`: the dev corpus folds (families grouped by kinship, so a fold's families
  are unseen in spirit too: the VITS voice with the two vocoders, the HTS voices,
  the diphone voices, the formant/clustergen voices);
- `score_split`: a model's logits on a split of records, with ids and generators;
- `band_statistics` + `fit_stats_baseline`: the baseline every model must beat, a
  logistic regression on per-band mean and standard deviation over time of the
  same log-mel and MFCC the model reads;
- `detection_metrics`: EER and AUC of "fake" on held-out fakes against held-out reals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FOLDS: dict[str, tuple[str, ...]] = {
    "vits+vocoders": ("piper", "world", "griffinlim"),
    "hts": ("festival-hts", "rhvoice"),
    "diphone": ("festival-diphone", "mbrola"),
    "formant+clustergen": ("flite", "espeak-ng", "pico"),
}

# Generator-disjoint validation inside the protocol (`bench_unseen.py --val-holdout auto`):
# each fold's val split takes the first of these families that the fold does not hold out.
VAL_HOLDOUT_FAMILIES: tuple[str, ...] = ("rhvoice", "mbrola")


def val_holdout_for(fold: str) -> tuple[str, ...]:
    """The family a fold's generator-disjoint val split holds (`full`: the first one)."""
    held = set(FOLDS.get(fold, ()))
    return (next(f for f in VAL_HOLDOUT_FAMILIES if f not in held),)


def read_split(records_dir: str | Path, split: str, cfg, batch_size: int = 64):
    """Yield `(ids, generators, features, targets)` batches of a split in shard order.

    `features` is e.g. `{"mfcc": [B, frames, n_mfcc], "mel": [B, n_mels, frames, 1]}`
    (as the model takes them: every stored front-end tensor, `features.model_inputs`;
    plus `"waveform": [B, num_samples]` when `cfg.model` has the waveform branch),
    `targets` `[B, 2]` int (fake, real; -1 unknown).
    Shards are read one after another (no interleave), so the order is that of
    `records.read_ids_and_generators`.
    """
    import tensorflow as tf

    from deepwave_tf import data, records
    from deepwave_tf.features import LABEL_KEYS, WAVEFORM, model_inputs

    manifest = records.read_manifest(records_dir)
    records.check_manifest(manifest, cfg.features, where=records_dir)
    data.check_waveform(manifest, cfg, where=records_dir)
    wave = cfg.model.uses_waveform
    parse = records.make_parser(
        cfg.features,
        with_waveform=wave,
        batched=True,
        stored_layout=records.mel_layout(manifest),
    )
    spec = {records.GENERATOR: tf.io.FixedLenFeature([], tf.string, default_value="")}
    paths = [str(p) for p in records.shard_paths(records_dir, split)]
    ds = tf.data.TFRecordDataset(paths, compression_type=manifest.get("compression") or "")
    for serialized in ds.batch(batch_size).prefetch(2):
        parsed = parse(serialized)
        gens = tf.io.parse_example(serialized, spec)[records.GENERATOR].numpy()
        ids = [i.decode() for i in parsed[records.ID].numpy()]
        feats = model_inputs({k: parsed[k].numpy() for k in cfg.features.feature_keys})
        if wave:
            feats[WAVEFORM] = parsed[WAVEFORM].numpy()
        targets = np.stack([parsed[k].numpy() for k in LABEL_KEYS], axis=-1)
        yield ids, [g.decode() for g in gens], feats, targets


def score_split(model, records_dir: str | Path, split: str, cfg) -> dict[str, Any]:
    """Logits of `model` (a deepwave_tf Keras model) on every record of a split.

    Returns:
        `{"ids": [N], "generators": [N], "logits": [N, 2] (fake, real), "targets": [N, 2]}`.
    """
    from deepwave_tf.export import inference_fn
    from deepwave_tf.model import logits_model

    infer = inference_fn(logits_model(model))
    out: dict[str, list] = {"ids": [], "generators": [], "logits": [], "targets": []}
    for ids, gens, feats, targets in read_split(records_dir, split, cfg):
        out["ids"] += ids
        out["generators"] += gens
        out["logits"].append(np.asarray(infer(feats)))
        out["targets"].append(targets)
    return {
        "ids": out["ids"],
        "generators": out["generators"],
        "logits": np.concatenate(out["logits"]) if out["logits"] else np.zeros((0, 2)),
        "targets": np.concatenate(out["targets"]) if out["targets"] else np.zeros((0, 2), int),
    }


# --------------------------------------------------------------------------- #
# The per-band statistics baseline
# --------------------------------------------------------------------------- #
def band_statistics(mfcc: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """Per-band mean and standard deviation over time.

    Args:
        mfcc: `[B, frames, n_mfcc]`.
        mel: `[B, n_mels, frames]` or `[B, n_mels, frames, 1]` log-mel (dB).

    Returns:
        `[B, 2 * (n_mels + n_mfcc)]` float64: mel means, mel stds, MFCC means, MFCC stds.
    """
    mel = np.asarray(mel, np.float64)
    if mel.ndim == 4:
        mel = mel[..., 0]
    mfcc = np.asarray(mfcc, np.float64)
    return np.concatenate(
        [mel.mean(axis=2), mel.std(axis=2), mfcc.mean(axis=1), mfcc.std(axis=1)], axis=1
    )


def feature_statistics(feats: dict[str, np.ndarray], f) -> np.ndarray:
    """Per-band mean and std over time of each stored tensor, `features.image` first.

    Args:
        feats: `read_split` features (model inputs; band-major ones with a channel axis).
        f: the FeatureConfig.

    Returns:
        `[B, sum of 2 * bands]` float64: per key, its means then its stds.
    """
    parts = []
    for key in dict.fromkeys((f.image, f.sequence)):
        x = np.asarray(feats[key], np.float64)
        if not f.time_major(key):
            x = np.swapaxes(x[..., 0], 1, 2)  # [B, frames, bands]
        parts += [x.mean(axis=1), x.std(axis=1)]
    return np.concatenate(parts, axis=1)


def split_statistics(records_dir: str | Path, split: str, cfg) -> dict[str, Any]:
    """`band_statistics` of every record of a split, with ids, generators and targets.

    For the default front-end that of the log-mel and the MFCC; otherwise
    `feature_statistics` of the stored tensors (image first, as the model's stats branch).
    """
    from deepwave_tf.features import MEL, MFCC

    f = cfg.features
    ids, gens, xs, ys = [], [], [], []
    for i, g, feats, targets in read_split(records_dir, split, cfg):
        ids += i
        gens += g
        if f.feature_keys == (MFCC, MEL):
            xs.append(band_statistics(feats[MFCC], feats[MEL]))
        else:
            xs.append(feature_statistics(feats, f))
        ys.append(targets)
    return {"ids": ids, "generators": gens, "x": np.concatenate(xs), "targets": np.concatenate(ys)}


def fit_stats_baseline(x: np.ndarray, fake: np.ndarray, seed: int = 0, c: float = 0.1):
    """Standardise, then an L2 logistic regression of `fake` (0/1) on `x`; class-balanced.

    Returns:
        A fitted scikit-learn pipeline; `decision_function(x)` is the fake score.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed),
    )
    return model.fit(x, np.asarray(fake).astype(int))


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #
def detection_metrics(fake: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """EER and AUC of `score` (higher = more fake) against 0/1 `fake` targets.

    Returns `{"eer", "auc", "n_fake", "n_real"}`; EER/AUC are NaN when a class is missing.
    """
    from scipy.stats import rankdata

    from deepwave_tf import metrics

    fake = np.asarray(fake).astype(int)
    # Ranks mapped into (0, 1): the metrics take probabilities, EER and AUC only
    # the order (a sigmoid would tie large logits at exactly 1.0).
    score = rankdata(np.asarray(score, np.float64)) / (len(fake) + 1)
    n_fake, n_real = int(fake.sum()), int((1 - fake).sum())
    if n_fake == 0 or n_real == 0:
        return {"eer": float("nan"), "auc": float("nan"), "n_fake": n_fake, "n_real": n_real}
    return {
        "eer": metrics.equal_error_rate(fake, score),
        "auc": metrics.roc_auc(fake, score),
        "n_fake": n_fake,
        "n_real": n_real,
    }


def per_generator(
    generators: Sequence[str], fake: np.ndarray, score: np.ndarray
) -> dict[str, dict[str, float]]:
    """`detection_metrics` of each fake generator's clips against all real clips."""
    fake = np.asarray(fake).astype(int)
    gens = np.asarray(generators, dtype=object)
    out = {}
    for g in sorted(set(gens[fake == 1])):
        keep = (fake == 0) | (gens == g)
        out[g] = detection_metrics(fake[keep], np.asarray(score)[keep])
    return out
