"""tf.data input pipeline: sharded TFRecords -> `({"mfcc", "mel"}, {"fake", "real"})` batches.

A model with the waveform branch (`model.branches` has "waveform") also gets
`"waveform"` `[B, num_samples]`, read from records prepped with
`prep.store_waveform = true` (others are refused, saying so). The config refuses
such a model with the augmentation on (`Config`): the mixing works on power-mel.
(The feature dict holds the config's front-end tensors, `features.feature_keys`;
mfcc and mel by default.)

Order of operations (each step says why it sits where it does):
1. shard files from the manifest, after checking its feature hash against the
   config (records made with other features are refused, naming the fields);
2. parallel interleave of the shards (`cycle_length` files at once);
3. optional in-memory cache of the serialised records (`data.cache`; training), so
   later epochs skip the file reads but still shuffle;
4. shuffle (training) -> optional repeat -> batch FIRST, then parse the whole
   batch with `records.make_parser(batched=True)`: one `parse_example` per batch
   is several times faster than one `parse_single_example` per record;
5. augmentation on whole batches (`augment.py`), which takes the mel
   time-major as the records store it: training gets the random mixing
   and SpecAugment; split "val" with `augment.val_mixing` gets a fixed mixing
   seeded by the batch index, the same every epoch (validation then looks like
   the challenge test: 0, 1 or 2 voices over noise); the fixed val batches are
   cached after mixing when `data.cache`;
6. prefetch.

Deterministic mode (`data.deterministic`): seeded file order, shuffle and
augmentation, and `options.deterministic=True`, so two runs yield identical
batches. Otherwise training lets tf.data return elements out of order for
speed. Validation is always deterministic: its fixed mixing pairs the examples
of each batch, so the batches must be the same every epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from deepwave_tf import augment, records
from deepwave_tf.config import Config
from deepwave_tf.features import LABEL_KEYS, MFCC, model_inputs
from deepwave_tf.records import ManifestError

AUTOTUNE = tf.data.AUTOTUNE
_VAL_SEED_OFFSET = 7919  # val mixing and its noise bank use other seeds than training


def load_manifest(records_dir: str | Path, cfg: Config) -> dict[str, Any]:
    """Read `records_dir/manifest.json` and check it matches `cfg.features`.

    Raises:
        ManifestError: missing manifest, records made with other features
            (every differing field is named), or records without the waveform
            for a model with the waveform branch.
    """
    records_dir = Path(records_dir)
    if not records_dir.is_dir():
        raise ManifestError(
            f"records directory {records_dir} does not exist "
            "(run `python -m deepwave_tf.prep --data DIR --out tfrecords/NAME` first)"
        )
    manifest = records.read_manifest(records_dir)
    records.check_manifest(manifest, cfg.features, where=records_dir)
    check_waveform(manifest, cfg, where=records_dir)
    return manifest


def check_waveform(manifest: dict[str, Any], cfg: Config, where: str | Path = "") -> None:
    """Refuse records without the stored waveform when the model has the waveform branch.

    Raises:
        ManifestError: `cfg.model.branches` has "waveform" and the manifest says
            `with_waveform` false (or nothing).
    """
    if cfg.model.uses_waveform and not manifest.get("with_waveform"):
        raise ManifestError(
            f"records{' in ' + str(where) if where else ''} hold no waveform, but "
            f"model.branches={list(cfg.model.branches)} has the waveform branch, which reads "
            "the clip's samples: prep the data again with prep.store_waveform = true "
            "(`--set prep.store_waveform=true`)"
        )


def load_stats(records_dir: str | Path) -> dict[str, Any]:
    """Train-split normalisation statistics from the manifest (`{"mfcc"|"mel": {"mean", "std"}}`)."""
    manifest = records.read_manifest(records_dir)
    stats = manifest.get("stats")
    if not stats:
        raise ManifestError(f"{Path(records_dir) / records.MANIFEST} has no 'stats'")
    return stats


def has_labels(manifest: dict[str, Any], split: str) -> bool:
    """False for splits whose records carry `records.UNKNOWN_LABEL` (the test split)."""
    return split != "test"


def make_dataset(
    records_dir: str | Path,
    split: str,
    cfg: Config,
    *,
    training: bool,
    repeat: bool = False,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of one split of a prep output.

    Args:
        records_dir: prep output directory (shards + `manifest.json`).
        split: "train", "val" or "test".
        cfg: full config; uses `cfg.features` (checked against the manifest),
            `cfg.data` and `cfg.augment`.
        training: shuffle and augment (per `cfg.augment`).
        repeat: repeat forever (for `steps_per_epoch`).
        shard: `(index, count)`: read only the shard files `index::count` (multi-worker
            training: each worker reads its own files, as tf.data's
            `AutoShardPolicy.FILE` would, and tf.data's auto-sharding is turned off).

    Returns:
        A dataset of `({"mfcc": [B, frames, n_mfcc], "mel": [B, n_mels, frames, 1]},
        {"fake": [B], "real": [B]})`, features and targets float32, plus
        `"waveform": [B, num_samples]` for a model with the waveform branch. The test
        split's targets are -1 (unknown).

    Raises:
        ManifestError: missing records or manifest, another feature config, a
            missing split, training on the unlabelled test split, or fewer shard
            files than `shard` count.
    """
    manifest = load_manifest(records_dir, cfg)
    if training and not has_labels(manifest, split):
        raise ManifestError(
            f"split '{split}' of {records_dir} holds unlabelled test clips (fake = real = "
            f"{records.UNKNOWN_LABEL}): it cannot be used for training; use 'train' (and 'val')"
        )
    paths = [str(p) for p in records.shard_paths(records_dir, split)]
    if shard is not None:
        paths = worker_shards(paths, *shard, where=f"split '{split}' of {records_dir}")
    d, aug = cfg.data, cfg.augment
    deterministic = d.deterministic or not training
    seed = d.seed if d.deterministic else None

    files = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    compression = manifest.get("compression", "") or ""
    ds = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
        cycle_length=max(1, min(d.cycle_length, len(paths))),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    # The manifest counts whole splits, not one worker's files.
    total = None if shard else manifest.get("counts", {}).get(split, {}).get("total")
    if total:
        # A known cardinality: Keras 3 (3.15) otherwise runs one extra, empty step
        # per epoch on unknown-size datasets, which dilutes every mean metric and
        # the loss; it also gives the progress bar its total. A manifest whose
        # count is wrong then fails loudly.
        ds = ds.apply(tf.data.experimental.assert_cardinality(int(total)))
    if d.cache and training:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(d.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(d.batch_size, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    augmented = training and aug.enabled
    val_mixed = not training and split == "val" and aug.val_mixing
    # Mixing recomputes the MFCC from the mixed mel: do not parse the stored one;
    # it works time-major, as the mel is stored: no transpose on the way in.
    mixing = augmented or val_mixed
    parse = records.make_parser(
        cfg.features,
        with_waveform=cfg.model.uses_waveform,
        batched=True,
        skip=(records.ID, MFCC) if mixing else (records.ID,),
        stored_layout=records.mel_layout(manifest),
        time_major_mel=mixing,
    )
    check_labels = training or has_labels(manifest, split)

    def to_io(serialized):
        return _to_model_io(parse(serialized), check_labels=check_labels, channel=not mixing)

    # Parsing and augmentation run in one map: the parsed batch goes on to the
    # augmentation while still in cache, with one tf.data stage less.
    if augmented:
        bank = augment.make_noise_bank(cfg.features, aug, d.seed, part="train")
        # Stateless augmentation seeds: a seeded random stream, new each epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            _plain_graph(
                lambda s, seed_: augment.augment_batch(
                    *to_io(s), seed_, cfg.features, aug, bank, training=True, time_major=True
                )
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    elif val_mixed:
        # Recorded noise: the val part, disjoint from training's (augment.noise_part).
        bank = augment.make_noise_bank(cfg.features, aug, d.seed + _VAL_SEED_OFFSET, part="val")
        # Seed = (fixed, batch index): the same mixtures every epoch.
        ds = ds.enumerate().map(
            _plain_graph(
                lambda i, s: augment.augment_batch(
                    *to_io(s),
                    tf.stack([tf.constant(d.seed + _VAL_SEED_OFFSET, tf.int64), i]),
                    cfg.features,
                    aug,
                    bank,
                    training=False,
                    time_major=True,
                )
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        if d.cache and not repeat:
            ds = ds.cache()
    else:
        ds = ds.map(_plain_graph(to_io), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if d.cache and not training and not repeat:
            ds = ds.cache()

    options = tf.data.Options()
    options.deterministic = deterministic
    if shard is not None:  # already this worker's files: tf.data must not shard again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = ds.with_options(options)
    return ds.prefetch(AUTOTUNE)


def worker_shards(paths: list[str], index: int, count: int, *, where: str = "") -> list[str]:
    """The shard files worker `index` of `count` reads: `paths[index::count]` (disjoint, all covered).

    Raises:
        ManifestError: fewer shard files than workers (a worker would read
            nothing and the others wait for it); the message says how to fix it.
    """
    if not 0 <= index < count:
        raise ValueError(f"worker index {index} is not in [0, {count})")
    if len(paths) < count:
        raise ManifestError(
            f"{where or 'the records'} has {len(paths)} shard file(s) for {count} workers: "
            "multi-worker training gives each worker whole files, so it needs at least one "
            f"per worker; re-run prep with --set prep.num_shards={count} (or a multiple of it)"
        )
    return paths[index::count]


def _plain_graph(fn):
    """Trace `fn` without AutoGraph: it has no tensor-dependent Python control
    flow, and converting the augmentation code costs seconds per pipeline build."""
    return tf.autograph.experimental.do_not_convert(fn)


def _to_model_io(parsed: dict[str, tf.Tensor], *, check_labels: bool, channel: bool = True):
    """Parsed batch -> (features, float32 targets); band-major tensors get their channel
    axis (unless `channel=False`: the time-major mel going to the augmentation)."""
    stored = {k: v for k, v in parsed.items() if k not in (records.ID, *LABEL_KEYS)}
    feats = model_inputs(stored) if channel else stored
    labels = {}
    for key in LABEL_KEYS:
        y = parsed[key]
        if check_labels:
            # Unknown labels (-1) in a labelled split mean the wrong records were given.
            check = tf.debugging.assert_non_negative(
                y,
                message=f"unknown {key} target (-1) in a labelled split (test records given as train/val?)",
            )
            with tf.control_dependencies([check]):
                y = tf.identity(y)
        labels[key] = tf.cast(y, tf.float32)
    return feats, labels
