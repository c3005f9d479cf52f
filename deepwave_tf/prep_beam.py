"""prep on Apache Beam: `python -m deepwave_tf.prep --data DIR --out DIR --runner DirectRunner`.

The single-machine prep (`prep.run`) stops scaling at one machine's cores. Beam
(the engine TensorFlow Datasets and TFX use for the same job) runs the same
work on Dataflow, Flink or Spark. Everything that decides *what* is written is
prep's own code, imported, never copied:

- `prep.make_plan`: csv reading, bad rows, validation split (speaker- or
  generator-disjoint), held-out generators, derived rows ([vocode], [wavaug]),
  shard assignment and names. It runs on the launching machine, so the plan,
  `.prep/plan.json` and its hash are the same as a single-machine run's.
- `prep.decode_call` (`_decode` / `_derive`), `features.compute_features`,
  `prep.encode_example` (`records.serialize_example`) and `prep._ShardWriter`.
- `prep.finish`: `errors.csv` and, last, `manifest.json`.

Pipeline (one element of the first stage = one feature batch of the plan):

    ReadFromText(.prep/beam_batches.jsonl)  batch k = the clips at plan positions [kB, (k+1)B)
    | Reshuffle                             spread the batches over the workers
    | ParDo(_FeaturizeBatch)                decode, fill the same [B, samples] buffer as prep
                                            (same slots), compute_features, serialise
        main:  (shard, (position, row, example or None, generator, reason))
               | GroupByKey | ParDo(_WriteShard)   sort by position, write <shard>.incomplete,
                                                    sidecar .prep/<shard>.json, rename
        stats: (mfcc, mel) of each train clip
               | CombineGlobally(StatsCombineFn)   float64 count/sum/sumsq per band, merged
               | Map(write .prep/beam_stats.json)  across workers (same sums as prep's)

Because a batch holds the same clips in the same slots as in `prep.run`, every
clip's features are computed on the same input tensor; shards hold the same
examples in the same order. The launcher waits for the pipeline, then reads
the sidecars and the stats and writes errors.csv and the manifest.

Paths: the launcher and every worker must see the data directory and the output
directory at the same absolute path (a shared filesystem, or an object store
mounted with a FUSE driver); `gs://`-style URLs are refused. The output needs
one shard's examples in one worker's memory (`_WriteShard` sorts them): raise
`prep.num_shards` for big corpora (TFDS aims at shards under ~1 GB).

Not supported here: `--resume` (Beam retries failed work itself; a failed
pipeline is rerun from the start).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepwave_tf import prep
from deepwave_tf.config import Config

try:
    import apache_beam as beam
except ImportError as e:  # the CLI turns this into "error: ..." with exit code 2
    raise ImportError(
        "prep --runner needs Apache Beam, which is not installed: "
        "pip install 'deepwave_tf[beam]' (the 'beam' extra)"
    ) from e

BATCHES = "beam_batches.jsonl"  # in .prep/: the plan's feature batches, one per line
STATS = "beam_stats.json"  # in .prep/: the train split's combined stat sums
SIDECAR_TAG = "beam:"  # sidecar plan_hash prefix: `prep --resume` never reuses these shards
STATS_TAG = "stats"


# --------------------------------------------------------------------------- #
# Statistics: count/sum/sumsq per band, combined across workers
# --------------------------------------------------------------------------- #
class StatsCombineFn(beam.CombineFn):
    """Float64 frame count, sum and sum of squares per band of every stored front-end tensor.

    The accumulator is prep's own `_Stats` (the same float64 sums prep keeps per
    shard); `extract_output` is its `to_json()`, which `prep.combine_stats` turns
    into the manifest's mean/std. Sums are associative, so any split of the
    clips across workers gives the single-machine statistics up to float64
    rounding.
    """

    def __init__(self, cfg):
        self.cfg = cfg  # FeatureConfig

    def create_accumulator(self) -> prep._Stats:
        return prep._Stats(self.cfg)

    def add_input(self, acc: prep._Stats, clip: dict[str, np.ndarray]) -> prep._Stats:
        acc.add({key: value[None] for key, value in clip.items()})  # one clip's tensors
        return acc

    def merge_accumulators(self, accumulators) -> prep._Stats:
        accumulators = iter(accumulators)
        out = next(accumulators)
        for acc in accumulators:
            out.merge(acc)
        return out

    def extract_output(self, acc: prep._Stats) -> dict[str, Any]:
        return acc.to_json()


# --------------------------------------------------------------------------- #
# DoFns
# --------------------------------------------------------------------------- #
def _batch_lines(tasks: Sequence[prep.Task], batch_size: int) -> Iterator[str]:
    """One json line per feature batch: `{"batch": k, "tasks": [[position, split, shard, row]]}`."""
    batch: list = []
    for task in tasks:
        if batch and batch[0][0] // batch_size != task.position // batch_size:
            yield json.dumps({"batch": batch[0][0] // batch_size, "tasks": batch})
            batch = []
        batch.append([task.position, task.split, task.shard, dataclasses.asdict(task.row)])
    if batch:
        yield json.dumps({"batch": batch[0][0] // batch_size, "tasks": batch})


class _FeaturizeBatch(beam.DoFn):
    """Decode one feature batch, compute its features, serialise each clip (see module doc)."""

    def __init__(self, cfg: Config, data_dir: str, out_dir: str, names: dict[str, list[str]]):
        self.cfg, self.data_dir, self.out_dir, self.names = cfg, data_dir, out_dir, names

    def setup(self):
        import tensorflow as tf

        from deepwave_tf import audio, features

        if self.cfg.prep.backend == "tfio":
            audio.tfio_module()  # fail now, clearly, rather than once per file
        fcfg = self.cfg.features
        spec = tf.TensorSpec([self.cfg.prep.batch_size, fcfg.num_samples], tf.float32)
        # The same fixed [batch, samples] shape as prep: traced once per worker.
        self.featurize = tf.function(
            lambda w: features.compute_features(w, fcfg), input_signature=[spec], autograph=False
        )

    def process(self, line: str):
        batch = json.loads(line)
        size, cfg = self.cfg.prep.batch_size, self.cfg
        cache_dir = str(Path(self.out_dir) / prep.DERIVED_CACHE)
        tasks = [
            prep.Task(pos, split, shard, prep.Row(**row))
            for pos, split, shard, row in batch["tasks"]
        ]
        buffer = np.zeros((size, cfg.features.num_samples), np.float32)
        decoded = []
        for t in tasks:
            fn, args = prep.decode_call(t.row, Path(self.data_dir), cfg, cache_dir)
            clip, tag = fn(*args)
            if not isinstance(clip, str):
                buffer[t.position % size] = clip
            decoded.append((clip, tag))
        out = self.featurize(buffer)
        out = {key: value.numpy() for key, value in out.items()}  # features.feature_keys
        for t, (clip, tag) in zip(tasks, decoded):
            shard = self.names[t.split][t.shard]
            if isinstance(clip, str):  # the reason it could not be decoded
                yield shard, (t.position, t.row, None, "", clip)
                continue
            slot = t.position % size
            feats = {key: value[slot] for key, value in out.items()}
            example, generator = prep.encode_example(t.row, clip, tag, feats, cfg)
            yield shard, (t.position, t.row, example, generator, "")
            if t.split == "train":
                yield beam.pvalue.TaggedOutput(STATS_TAG, feats)


class _WriteShard(beam.DoFn):
    """Write one shard with prep's `_ShardWriter`: examples and errors in plan order."""

    def __init__(self, cfg: Config, out_dir: str, names: dict[str, list[str]], plan_hash: str):
        self.cfg, self.out_dir, self.plan_hash = cfg, out_dir, plan_hash
        self.where = {n: (split, i) for split, ns in names.items() for i, n in enumerate(ns)}

    def process(self, element):
        name, items = element
        split, index = self.where[name]
        writer = prep._ShardWriter(
            Path(self.out_dir), name, split, index, SIDECAR_TAG + self.plan_hash, self.cfg
        )
        writer.stats = None  # the train stats come from StatsCombineFn
        try:
            for _, row, example, generator, reason in sorted(items, key=lambda item: item[0]):
                if example is None:
                    writer.errors.append((row.id, row.path, reason))
                else:
                    writer.write(example, row, generator)
            writer.close()
        except BaseException:
            writer.abort()  # never leave a partial shard under a final name
            raise
        yield name


def _write_stats(sums: dict[str, Any], path: str) -> None:
    from deepwave_tf import records

    records.write_json_atomic(Path(path), sums)


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #
def _local_path(path: str | Path, what: str) -> Path:
    text = str(path)
    if "://" in text:
        raise prep.PrepError(
            f"{what} {text!r}: prep reads and writes through the filesystem, not object-store "
            "URLs; mount the bucket (e.g. gcsfuse, mountpoint-s3) at the same path on the "
            "launching machine and on every worker, and pass that path"
        )
    return Path(path).resolve()


def run(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    runner: str = "DirectRunner",
    beam_args: Sequence[str] = (),
    strict: bool = False,
    splits: Sequence[str] | None = None,
) -> prep.PrepResult:
    """`prep.run` on Apache Beam: the same records, errors.csv and manifest.

    Args:
        cfg: resolved config, as for `prep.run`.
        data_dir: holds train.csv and/or test.csv; every worker must see it at
            the same absolute path (csv paths resolve against it).
        out_dir: records directory, likewise visible to every worker.
        runner: a Beam runner name: DirectRunner, DataflowRunner, FlinkRunner,
            SparkRunner, PortableRunner...
        beam_args: further Beam pipeline options (`--project=...`,
            `--direct_num_workers=2`, ...).
        strict: exit code 1 if any row was left out.
        splits: as for `prep.run`.

    Returns:
        PrepResult, as `prep.run`'s.

    Raises:
        PrepError: as `prep.run`, an object-store URL, or a pipeline that ended
            without writing every shard.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    data_dir = _local_path(data_dir, "--data")
    out_dir = _local_path(out_dir, "--out")
    plan = prep.make_plan(cfg, data_dir, out_dir, splits)
    prep.start_output(plan, cfg)
    state = out_dir / prep.STATE_DIR
    batches = state / BATCHES
    tmp = batches.with_name(batches.name + ".tmp")
    with open(tmp, "w") as f:
        for line in _batch_lines(plan.tasks(), cfg.prep.batch_size):
            f.write(line + "\n")
    tmp.replace(batches)

    options = PipelineOptions(list(beam_args), runner=runner)
    with beam.Pipeline(options=options) as pipeline:
        featurized = (
            pipeline
            | "ReadBatches" >> beam.io.ReadFromText(str(batches))
            | "Spread" >> beam.Reshuffle()
            | "Featurize"
            >> beam.ParDo(
                _FeaturizeBatch(cfg, str(data_dir), str(out_dir), plan.names)
            ).with_outputs(STATS_TAG, main="examples")
        )
        _ = (
            featurized.examples
            | "ByShard" >> beam.GroupByKey()
            | "WriteShards"
            >> beam.ParDo(_WriteShard(cfg, str(out_dir), plan.names, plan.plan_hash))
        )
        _ = (
            featurized[STATS_TAG]
            | "CombineStats" >> beam.CombineGlobally(StatsCombineFn(cfg.features))
            | "WriteStats" >> beam.Map(_write_stats, str(state / STATS))
        )

    done: dict[str, dict[str, Any]] = {}
    for split_names in plan.names.values():
        for name in split_names:
            info = _written_shard(out_dir, name, plan.plan_hash)
            if info is None:
                raise prep.PrepError(
                    f"the Beam pipeline ({runner}) ended without writing {out_dir / name}: "
                    "do the workers see the output directory at the same path?"
                )
            done[name] = info
    stat_sums = json.loads((state / STATS).read_text())
    batches.unlink()
    extra = {"runner": {"name": runner, "apache-beam": beam.__version__}}
    return prep.finish(plan, cfg, done, strict=strict, stat_sums=stat_sums, extra=extra)


def _written_shard(out_dir: Path, name: str, plan_hash: str) -> dict[str, Any] | None:
    """The sidecar `_WriteShard` wrote for `name` in this run, else None."""
    final, sidecar = out_dir / name, out_dir / prep.STATE_DIR / (name + ".json")
    if not (final.is_file() and sidecar.is_file()):
        return None
    info = json.loads(sidecar.read_text())
    if (
        info.get("plan_hash") != SIDECAR_TAG + plan_hash
        or info.get("bytes") != final.stat().st_size
    ):
        return None
    return info
