"""Decode audio and write sharded TFRecords: `python -m deepwave_tf.prep --data DIR --out tfrecords/NAME`.

Reads `train.csv` (`id,path,label`) and/or `test.csv` (`id,path`) in DIR (paths
relative to DIR, so the challenge download works unchanged), splits a validation
set off train (speaker-disjoint when `meta.csv` or a group column says who
speaks, otherwise stratified by label), and writes per split
`NAME-SPLIT.tfrecord-0000i-of-0000n` with `records.serialize_example`, then
`errors.csv`, the resolved config and, last, `manifest.json`.

Pipeline: a thread pool decodes files in order (libsndfile releases the GIL)
through a bounded window of futures; the main thread batches `prep.batch_size`
fixed-length clips and computes features with one `tf.function` over a fixed
`[batch, samples]` shape (so it traces once), then serialises and writes.
Memory is bounded by the window, never by the number of clips.

Robustness:
- Every shard is written as `<shard>.incomplete` and renamed when complete, with
  a sidecar `.prep/<shard>.json` (counts, errors, running stat sums); the
  manifest is written last, so a killed run never leaves a shard a reader would
  take as complete.
- `.prep/plan.json` (written first) fixes the assignment of examples to shards
  (seeded shuffle per split, contiguous ranges); `--resume` keeps complete
  shards of the same plan and rebuilds the rest. Each clip has a fixed slot in
  a fixed batch (its position in the plan), so a resumed run writes the same
  bytes as an uninterrupted one (tests/test_prep.py checks it).
- Bad rows and files never stop the run: each goes to `errors.csv`
  (`id,path,reason`). A csv missing a needed column fails at once.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepwave_tf import cli
from deepwave_tf.config import Config, ConfigError, FeatureConfig, load_config

TRAIN_CSV = "train.csv"
TEST_CSV = "test.csv"
META_CSV = "meta.csv"
META_GROUP_COLUMN = "speaker_or_voice"
ERRORS_CSV = "errors.csv"
STATE_DIR = ".prep"  # plan + per-shard sidecars; lets --resume trust complete shards
PLAN = "plan.json"
INCOMPLETE = ".incomplete"
LABELS = {"fake": (1, 0), "real": (0, 1)}  # label -> (fake, real) targets
NO_GROUP = ("", "-")  # meta.csv values meaning "no speaker" (noise, silence): own group


class PrepError(ValueError):
    """Input that cannot be used at all (missing csv or column, changed plan on resume)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One clip to write: `fake`/`real` are 0/1 targets, or -1 for test clips.

    A derived row (a copy-synthesis fake or an augmented view of a csv row) has the
    id `SOURCE~TAG`, the source's path and a `transform` (`vocode:NAME`,
    `wavaug:K`, or both joined by `|`) applied to the decoded source.
    """

    id: str
    path: str  # as written in the csv
    fake: int
    real: int
    transform: str = ""
    generator: str = ""  # how the clip was made (meta.csv's generator column), if known

    def resolve(self, data_dir: Path) -> Path:
        return data_dir / self.path

    def plan_entry(self) -> list:
        """What the shard plan records (and hashes) for this row."""
        entry: list = [self.id, self.path, self.fake, self.real]
        if self.transform or self.generator:
            entry.append({"transform": self.transform, "generator": self.generator})
        return entry


class Task(NamedTuple):
    """One clip to write: `position` is its index in the whole plan (fixes its batch slot)."""

    position: int
    split: str
    shard: int
    row: Row


@dataclasses.dataclass
class PrepResult:
    """What `run` wrote.

    Attributes:
        out_dir: the records directory.
        manifest: the manifest written (also in `out_dir/manifest.json`).
        counts: `{split: {"total", "fake", "real"}}` examples written.
        errors: `(id, path, reason)` of every row that was left out.
        exit_code: 0 = success; 1 = nothing usable written, or `strict` and errors.
    """

    out_dir: Path
    manifest: dict[str, Any]
    counts: dict[str, dict[str, int]]
    errors: list[tuple[str, str, str]]
    exit_code: int


# --------------------------------------------------------------------------- #
# Reading the csv files
# --------------------------------------------------------------------------- #
def read_csv_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """All rows of `path` as dicts of stripped strings.

    Raises:
        PrepError: unreadable file, or a required column missing (named).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise PrepError(
                    f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(c) for c in missing)} (has: {', '.join(columns) or 'no header'})"
                )
            reader.fieldnames = columns
            return [
                {k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise PrepError(f"{path}: cannot read csv ({type(e).__name__}: {e})") from e


def parse_rows(
    table: list[dict[str, str]], csv_name: str, labelled: bool, seen: dict[str, str]
) -> tuple[list[Row], list[tuple[str, str, str]]]:
    """Validate csv rows. Bad rows (empty id/path, duplicate id, unknown label) become errors.

    `seen` maps ids already used (across csv files) to where they were first seen;
    the first occurrence of an id wins.
    """
    rows, errors = [], []
    for line, rec in enumerate(table, start=2):  # line 1 is the header
        rid, path = rec.get("id", ""), rec.get("path", "")
        where = f"{csv_name} line {line}"
        if not rid:
            errors.append((rid, path, f"{where}: empty id"))
            continue
        if rid in seen:
            errors.append((rid, path, f"{where}: duplicate id (first seen at {seen[rid]})"))
            continue
        seen[rid] = where
        if not path:
            errors.append((rid, path, f"{where}: empty path"))
            continue
        if labelled:
            label = rec.get("label", "").lower()
            if label not in LABELS:
                errors.append(
                    (rid, path, f"{where}: label {rec.get('label', '')!r} is not 'real' or 'fake'")
                )
                continue
            fake, real = LABELS[label]
        else:
            fake = real = -1  # records.UNKNOWN_LABEL
        rows.append(Row(rid, path, fake, real))
    return rows, errors


# --------------------------------------------------------------------------- #
# Validation split
# --------------------------------------------------------------------------- #
def load_groups(
    data_dir: Path, train_table: list[dict[str, str]], group_column: str
) -> tuple[dict[str, str] | None, str, str]:
    """Speaker of every train id: `(id -> group or None, column, source file)`.

    `group_column` set: taken from train.csv, else meta.csv; missing in both is an
    error. Unset: meta.csv's `speaker_or_voice` when present, else no groups.
    """
    meta_path = data_dir / META_CSV
    if group_column:
        if train_table and group_column in train_table[0]:
            return {r["id"]: r[group_column] for r in train_table}, group_column, TRAIN_CSV
        if meta_path.is_file():
            meta = read_csv_rows(meta_path, ["id", group_column])
            return {r["id"]: r[group_column] for r in meta}, group_column, META_CSV
        raise PrepError(
            f"prep.group_column={group_column!r}: no such column in {data_dir / TRAIN_CSV} "
            f"and no {META_CSV} in {data_dir}"
        )
    if meta_path.is_file():
        meta = read_csv_rows(meta_path, ["id"])
        if meta and META_GROUP_COLUMN in meta[0]:
            return {r["id"]: r[META_GROUP_COLUMN] for r in meta}, META_GROUP_COLUMN, META_CSV
    return None, "", ""


def split_train_val(
    rows: list[Row], groups: dict[str, str] | None, val_fraction: float, seed: int
) -> tuple[list[Row], list[Row], str]:
    """Split labelled rows into (train, val, method).

    With groups ("group"): whole speakers go to val, in a seeded random order,
    as long as they fit the per-label targets `val_fraction * count(label)`
    (speakers too big to fit stay in train), so val is speaker-disjoint and
    close to the label balance and size asked for. Rows without a group
    (unknown id, "", "-") are each their own group. Without groups
    ("stratified"): a stratified random split. Order within each part follows the csv.
    """
    if val_fraction <= 0 or len(rows) < 2:
        return list(rows), [], "none"
    labels = np.array([r.real for r in rows])
    if groups is not None:
        keys = []
        for r in rows:
            g = groups.get(r.id, "")
            keys.append(f"group:{g}" if g not in NO_GROUP else f"id:{r.id}")
        members: dict[str, list[int]] = collections.defaultdict(list)
        for i, k in enumerate(keys):
            members[k].append(i)
        if len(members) >= 2:
            return (*_group_split(rows, labels, members, val_fraction, seed), "group")
    from sklearn.model_selection import train_test_split

    n_val = max(1, round(val_fraction * len(rows)))
    counts = np.bincount(labels, minlength=2)
    # Stratify only when every class can appear on both sides.
    stratify = labels if counts.min() >= 2 and n_val >= 2 and len(rows) - n_val >= 2 else None
    idx = np.arange(len(rows))
    _, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    is_val = np.zeros(len(rows), bool)
    is_val[val_idx] = True
    return _take(rows, ~is_val), _take(rows, is_val), "stratified"


def _group_split(
    rows: list[Row],
    labels: np.ndarray,
    members: dict[str, list[int]],
    val_fraction: float,
    seed: int,
) -> tuple[list[Row], list[Row]]:
    """Greedy speaker-disjoint split filling per-label val targets (see `split_train_val`)."""
    target = val_fraction * np.bincount(labels, minlength=2)  # [fake-ish=0, real=1] rows wanted
    keys = sorted(members)
    order = np.random.default_rng(seed).permutation(len(keys))
    have = np.zeros(2)
    is_val = np.zeros(len(rows), bool)
    for j in order:
        idx = members[keys[j]]
        add = np.bincount(labels[idx], minlength=2)
        # Allow half a clip of slack per label so targets like 4.5 can be met.
        if np.all(have + add <= target + 0.5):
            is_val[idx] = True
            have += add
        if np.all(have >= target - 0.5):
            break
    if not is_val.any():  # every speaker is bigger than the target: take the smallest
        smallest = min(keys, key=lambda k: (len(members[k]), k))
        is_val[members[smallest]] = True
    if is_val.all():
        raise PrepError("group split would leave no training data: lower prep.val_fraction")
    return _take(rows, ~is_val), _take(rows, is_val)


def _take(rows: list[Row], mask: np.ndarray) -> list[Row]:
    return [r for r, keep in zip(rows, mask) if keep]


# --------------------------------------------------------------------------- #
# Held-out generators (unseen-generator protocol) and generator-disjoint val
# --------------------------------------------------------------------------- #
def load_column(
    data_dir: Path, train_table: list[dict[str, str]], column: str, what: str
) -> tuple[dict[str, str], str]:
    """`(id -> value of column, source file)`: train.csv first, else meta.csv.

    Raises:
        PrepError: the column is in neither file (named, with `what` asked for it).
    """
    if train_table and column in train_table[0]:
        return {r["id"]: r[column] for r in train_table}, TRAIN_CSV
    meta_path = data_dir / META_CSV
    if meta_path.is_file():
        meta = read_csv_rows(meta_path, ["id"])
        if meta and column in meta[0]:
            return {r["id"]: r[column] for r in meta}, META_CSV
    raise PrepError(
        f"{what} needs column {column!r} (prep.holdout_column), which is in neither "
        f"{data_dir / TRAIN_CSV} nor {data_dir / META_CSV}"
    )


def hold_out(
    rows: list[Row],
    values: dict[str, str],
    groups: dict[str, str] | None,
    held: Sequence[str],
    real_fraction: float,
    seed: int,
    what: str,
) -> tuple[list[Row], list[Row]]:
    """Split off the rows whose value is in `held`, with held-out real voices beside them.

    Moved: (1) every row whose `values[id]` is in `held`; (2) the real rows of their
    speakers (`groups`), e.g. the LibriSpeech originals of WORLD copies; (3) whole
    real speakers with no fake rows left behind, adding up to about `real_fraction`
    of the real rows (seeded), so the held-out part pairs unseen generators with
    unseen voices.

    Returns:
        `(kept, moved)`, each in csv order.

    Raises:
        PrepError: a name in `held` matches no row (the values present are listed).
    """
    present = collections.Counter(values.get(r.id, "") for r in rows)
    unknown = [h for h in held if present[h] == 0]
    if unknown:
        known = ", ".join(sorted(v for v in present if v not in NO_GROUP))
        raise PrepError(f"{what}: no train row has {unknown} (values present: {known})")
    held = set(held)
    group_of = (lambda r: groups.get(r.id, "")) if groups else (lambda r: "")
    moved = np.array([values.get(r.id, "") in held for r in rows])
    held_groups = {group_of(r) for r, m in zip(rows, moved) if m} - set(NO_GROUP)
    for i, r in enumerate(rows):
        if r.real == 1 and group_of(r) in held_groups:
            moved[i] = True
    if real_fraction > 0:

        def speakers(indices) -> dict[str, list[int]]:
            """Row indices per whole real speaker (a clip with no group is its own)."""
            members: dict[str, list[int]] = collections.defaultdict(list)
            for i in indices:
                g = group_of(rows[i])
                members[f"group:{g}" if g not in NO_GROUP else f"id:{rows[i].id}"].append(i)
            return members

        def take(members: dict[str, list[int]], wanted: float, rng_seed: int) -> float:
            """Move whole speakers, in seeded order, while they fit in `wanted` real rows."""
            keys = sorted(members)
            for j in np.random.default_rng(rng_seed).permutation(len(keys)):
                if wanted < 0.5:
                    break
                idx = members[keys[j]]
                if len(idx) <= wanted + 0.5:
                    moved[idx] = True
                    wanted -= len(idx)
            return wanted

        # Real speakers whose voice has no fake left in training (else the held-out
        # reals would share a voice with training fakes).
        fake_groups = {group_of(r) for r, m in zip(rows, moved) if not m and r.fake == 1}
        wanted = real_fraction * sum(r.real == 1 for r in rows) - sum(
            rows[i].real == 1 for i in np.flatnonzero(moved)
        )
        wanted = take(
            speakers(
                i
                for i, r in enumerate(rows)
                if not moved[i] and r.real == 1 and group_of(r) not in fake_groups
            ),
            wanted,
            seed,
        )
        if not any(rows[i].real == 1 for i in np.flatnonzero(moved)) and wanted >= 0.5:
            # No real speaker qualified (e.g. a val_holdout of voices with no real clips, where
            # every other real speaker has a fake copy in training, or is one large group):
            # a one-class split cannot score or calibrate, so take whole real speakers anyway,
            # those whose size fits first, else the smallest one.
            members = speakers(i for i, r in enumerate(rows) if not moved[i] and r.real == 1)
            take(members, wanted, seed + 1)
            if members and not any(rows[i].real == 1 for i in np.flatnonzero(moved)):
                moved[min(members.values(), key=len)] = True
    if moved.all():
        raise PrepError(f"{what} would leave no training data")
    return _take(rows, ~moved), _take(rows, moved)


# --------------------------------------------------------------------------- #
# Derived rows: copy-synthesis fakes and augmented views
# --------------------------------------------------------------------------- #
VOCODE, WAVAUG = "vocode", "wavaug"
DERIVED_CACHE = ".derived"  # vocoded/augmented audio, kept across re-preps of the same dir


def _row_rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def usable_vocoders(cfg: Config) -> tuple[tuple[str, ...], list[str]]:
    """`(vocoders used, vocoders dropped)`: a fold never vocodes with a family it holds out."""
    held = set(cfg.prep.holdout) | set(cfg.prep.val_holdout)
    dropped = [v for v in cfg.vocode.vocoders if v in held]
    return tuple(v for v in cfg.vocode.vocoders if v not in held), dropped


def vocode_plan(cfg: Config) -> dict[str, Any]:
    """`[vocode]` as the plan (and its hash) records it: `corpus_fakes` only when false, so
    that plans made before the field existed keep their hash (and their records)."""
    plan = dataclasses.asdict(cfg.vocode)
    if plan["corpus_fakes"]:
        del plan["corpus_fakes"]
    return plan


def derive_rows(rows: list[Row], split: str, cfg: Config) -> list[Row]:
    """The derived rows of one split, after its csv rows (which keep their positions).

    train, and val unless `vocode.val_copies` is false: `vocode.copies_per_real`
    copy-synthesis fakes of every real clip, each with another vocoder drawn (seeded
    by id) from the usable vocoders.
    train only: `wavaug.views_per_clip` augmented views of every clip, copies included.
    Derived rows stay in their source's split, so val stays speaker-disjoint.
    """
    out: list[Row] = []
    vocoders, _ = usable_vocoders(cfg)
    k = min(cfg.vocode.copies_per_real, len(vocoders))
    if k and (split == "train" or (split == "val" and cfg.vocode.val_copies)):
        for r in rows:
            if r.real != 1:
                continue
            chosen = _row_rng(cfg.prep.seed, f"{VOCODE}:{r.id}").choice(
                len(vocoders), size=k, replace=False
            )
            for j in sorted(chosen):
                name = vocoders[j]
                out.append(Row(f"{r.id}~{name}", r.path, 1, 0, f"{VOCODE}:{name}"))
    views = cfg.wavaug.views_per_clip
    if views and split == "train":
        base = list(rows) + out
        for r in base:
            for v in range(views):
                transform = "|".join(t for t in (r.transform, f"{WAVAUG}:{v}") if t)
                out.append(Row(f"{r.id}~aug{v}", r.path, r.fake, r.real, transform, r.generator))
    return out


# --------------------------------------------------------------------------- #
# Shard plan
# --------------------------------------------------------------------------- #
def num_shards_for(n_split: int, n_reference: int, num_shards: int) -> int:
    """Train gets `num_shards`; other splits proportionally fewer, at least 1, never more than rows."""
    if n_split == 0:
        return 0
    wanted = max(1, round(num_shards * n_split / max(n_reference, 1)))
    return min(wanted, n_split)


def assign_shards(rows: list[Row], n_shards: int, seed: int, split: str) -> list[list[Row]]:
    """Seeded shuffle, then contiguous ranges: shard k gets rows [k*N/n, (k+1)*N/n).

    The shuffle mixes labels and speakers across shards (the csv is often sorted);
    contiguous ranges let shards complete one after another (resume).
    """
    if n_shards == 0:
        return []
    split_seed = int.from_bytes(hashlib.sha256(f"{seed}:{split}".encode()).digest()[:8], "little")
    order = np.random.default_rng(split_seed).permutation(len(rows))
    bounds = [round(k * len(rows) / n_shards) for k in range(n_shards + 1)]
    return [[rows[i] for i in order[bounds[k] : bounds[k + 1]]] for k in range(n_shards)]


def _json_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- #
# Decoding (worker threads)
# --------------------------------------------------------------------------- #
def fix_length_np(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """numpy twin of `features.fix_length` (same crop/pad rules), for decode threads."""
    target = cfg.num_samples
    length = waveform.shape[-1]
    start = max(length - target, 0) // 2 if cfg.crop == "center" else 0
    cropped = waveform[start : start + min(length, target)]
    missing = target - cropped.shape[-1]
    before = missing // 2 if cfg.pad == "center" else 0
    return np.pad(cropped, (before, missing - before)).astype(np.float32, copy=False)


def _decode(path: Path, cfg: FeatureConfig, backend: str) -> np.ndarray | str:
    """Fixed-length `[num_samples]` float32 clip, or the reason it cannot be used."""
    from deepwave_tf import audio

    try:
        return fix_length_np(audio.load(path, cfg.sample_rate_hz, backend), cfg)
    except audio.AudioError as e:
        return e.reason
    except audio.AudioBackendError:
        raise  # the backend itself is broken: every file would fail, stop now
    except Exception as e:  # never let one file crash the run
        return f"unexpected decode error ({type(e).__name__}: {e})"


def crop_np(waveform: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The window of `waveform` that `fix_length_np` keeps, without the padding."""
    length = waveform.shape[-1]
    start = max(length - cfg.num_samples, 0) // 2 if cfg.crop == "center" else 0
    return waveform[start : start + cfg.num_samples]


_DERIVE_VERSION = 1  # bump when a transform's output changes: cached audio is then redone
_Q = float(1 << 23)  # derived audio is kept on a 24-bit grid: cached == freshly computed


def _derive(
    path: str,
    transform: str,
    row_id: str,
    seed: int,
    fcfg: FeatureConfig,
    wcfg: Any,
    backend: str,
    cache_dir: str,
) -> tuple[np.ndarray | str, str]:
    """Decode a source clip and apply `transform`: `(fixed-length clip or reason, tag)`.

    Runs in a worker process (vocoders are CPU-bound Python/C). The kept window is
    cropped before the transform (less work), and the result is cached under
    `cache_dir` by (transform, id, seed, source file size and mtime, window), so a
    re-prep or `--resume` of the same directory does not redo it. `tag` says what
    was applied: `vocode:NAME`, `wavaug:A,B,...`, joined by `+`.
    """
    import soundfile as sf

    from deepwave_tf import audio

    try:
        st = os.stat(path)
        source = [st.st_size, st.st_mtime_ns]
    except OSError:
        source = None
    key_obj = [
        _DERIVE_VERSION,
        transform,
        row_id,
        seed,
        fcfg.sample_rate_hz,
        fcfg.num_samples,
        fcfg.crop,
        dataclasses.asdict(wcfg) if WAVAUG in transform else None,
        source,
    ]
    key = hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()[:32]
    cached = Path(cache_dir) / key[:2] / (key + ".flac")
    if source is not None and cached.is_file():
        try:
            ints, _ = sf.read(str(cached), dtype="int32")
            tag = json.loads(cached.with_suffix(".json").read_text())["tag"]
            return fix_length_np((ints >> 8).astype(np.float32) / _Q, fcfg), tag
        except (OSError, RuntimeError, ValueError, KeyError):
            pass  # unreadable cache entry: compute again
    try:
        clip = crop_np(audio.load(path, fcfg.sample_rate_hz, backend), fcfg)
    except audio.AudioError as e:
        return e.reason, ""
    except audio.AudioBackendError:
        raise
    except Exception as e:  # never let one file crash the run
        return f"unexpected decode error ({type(e).__name__}: {e})", ""
    tags = []
    for step in transform.split("|"):
        kind, _, arg = step.partition(":")
        rng = _row_rng(seed, f"{row_id}:{step}")
        try:
            if kind == VOCODE:
                from deepwave_tf import vocode

                clip = vocode.vocode(arg, clip, fcfg.sample_rate_hz, rng)
                tags.append(step)
            elif kind == WAVAUG:
                from deepwave_tf import wavaug

                clip, names = wavaug.random_chain(
                    clip, fcfg.sample_rate_hz, rng, names=wcfg.names or None, max_ops=wcfg.max_ops
                )
                tags.append(f"{WAVAUG}:{','.join(names)}")
            else:
                return f"unknown transform {step!r}", ""
        except Exception as e:  # a vocoder that fails on a clip: recorded, run goes on
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            return f"{step} failed: {reason}", ""
        clip = np.asarray(clip, np.float32)
        if clip.ndim != 1 or not np.all(np.isfinite(clip)):
            return f"{step} failed: output is not a finite mono waveform", ""
    ints = np.round(np.clip(clip, -1.0, 1.0 - 1.0 / _Q) * _Q).astype(np.int32)
    tag = "+".join(tags)
    if source is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.stem + f".{os.getpid()}.tmp.flac")
            sf.write(str(tmp), ints << 8, fcfg.sample_rate_hz, subtype="PCM_24")
            cached.with_suffix(".json").write_text(json.dumps({"tag": tag, "id": row_id}))
            tmp.replace(cached)
        except (OSError, RuntimeError):
            pass  # a cache that cannot be written only costs time
    return fix_length_np(ints.astype(np.float32) / _Q, fcfg), tag


_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _decoded_in_order(
    tasks: list[Task], data_dir: Path, out_dir: Path, cfg: Config, workers: int
) -> Iterator[tuple[Task, tuple[np.ndarray | str, str]]]:
    """Decode `tasks` (derived rows: in worker processes), yielding results in task order.

    Each result is `(fixed-length clip or reason, tag)`. At most `window` files are
    in flight or waiting, so memory stays bounded.
    """
    window = max(2 * cfg.prep.batch_size, 4 * workers)
    pending: collections.deque = collections.deque()
    derived = any(t.row.transform for t in tasks)
    procs = None
    saved_env = {k: os.environ.get(k) for k in _ONE_THREAD}
    if derived and workers > 1:
        import multiprocessing

        # One BLAS/OpenMP thread per worker process: the workers already use every core.
        # Workers start lazily, so the variables stay set while the pool lives.
        os.environ.update(_ONE_THREAD)
        # spawn: the parent holds TensorFlow's threads, which fork would copy half-alive.
        procs = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        )
    cache_dir = str(out_dir / DERIVED_CACHE)
    it = iter(tasks)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        try:
            for task in it:
                fn, args = decode_call(task.row, data_dir, cfg, cache_dir)
                fut = ((procs or pool) if task.row.transform else pool).submit(fn, *args)
                pending.append((task, fut))
                if len(pending) >= window:
                    t, fut = pending.popleft()
                    yield t, fut.result()
            while pending:
                t, fut = pending.popleft()
                yield t, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()
            if procs is not None:
                procs.shutdown(wait=True, cancel_futures=True)
                for k, v in saved_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def _decode_tagged(path: Path, cfg: FeatureConfig, backend: str) -> tuple[np.ndarray | str, str]:
    return _decode(path, cfg, backend), ""


def decode_call(row: Row, data_dir: Path, cfg: Config, cache_dir: str) -> tuple[Any, tuple]:
    """`(fn, args)` that decode `row`: `fn(*args)` is `(fixed-length clip or reason, tag)`.

    A derived row (with a `transform`) goes through `_derive` (cached under
    `cache_dir`), a csv row through `_decode`. Both are picklable top-level
    functions, so a process pool (or a Beam worker) can run them.
    """
    path = row.resolve(data_dir)
    if row.transform:
        args = (
            str(path),
            row.transform,
            row.id,
            cfg.prep.seed,
            cfg.features,
            cfg.wavaug,
            cfg.prep.backend,
            cache_dir,
        )
        return _derive, args
    return _decode_tagged, (path, cfg.features, cfg.prep.backend)


def encode_example(
    row: Row, clip: np.ndarray, tag: str, feats: dict[str, np.ndarray], cfg: Config
) -> tuple[bytes, str]:
    """`(serialised tf.train.Example, generator)` of one decoded clip and its features.

    `feats` holds one clip's front-end tensors (`features.feature_keys`, as stored);
    the generator joins the csv's `generator` with the transform's tag.
    """
    from deepwave_tf import records

    generator = "+".join(g for g in (row.generator, tag) if g)
    waveform = clip if cfg.prep.store_waveform else None
    example = records.serialize_example(row.id, feats, row.fake, row.real, waveform, generator)
    return example, generator


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #
def generator_family(generator: str) -> str:
    """What per-generator counts group by: `piper+wavaug:mp3,gain` -> `piper+wavaug`."""
    parts = [p.split(":", 1)[0] if p.startswith(f"{WAVAUG}:") else p for p in generator.split("+")]
    return "+".join(p for p in parts if p) or "-"


class _Stats:
    """Running float64 sums per band (coefficient) of every stored front-end tensor over all frames."""

    def __init__(self, cfg: FeatureConfig):
        self.cfg = cfg
        self.frames = 0
        self.sums = {k: np.zeros(_band_count(cfg, k)) for k in cfg.feature_keys}
        self.sumsq = {k: np.zeros_like(v) for k, v in self.sums.items()}

    def add(self, feats: dict[str, np.ndarray]) -> None:
        """`feats[key]` batched as `compute_features` returns it: `[B, frames, n]` or `[B, n, frames]`."""
        first = self.cfg.feature_keys[0]
        self.frames += feats[first].shape[0] * self.cfg.num_frames
        for key in self.sums:
            x = feats[key].astype(np.float64)
            axes = (0, 1) if self.cfg.time_major(key) else (0, 2)
            self.sums[key] += x.sum(axis=axes)
            self.sumsq[key] += np.square(x).sum(axis=axes)

    def merge(self, other: _Stats) -> _Stats:
        """Add `other`'s sums to these (Beam's CombineFn merges partial sums this way)."""
        self.frames += other.frames
        for key in self.sums:
            self.sums[key] += other.sums[key]
            self.sumsq[key] += other.sumsq[key]
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "sum": {k: v.tolist() for k, v in self.sums.items()},
            "sumsq": {k: v.tolist() for k, v in self.sumsq.items()},
        }


def _band_count(cfg: FeatureConfig, key: str) -> int:
    """Size of the non-time axis of front-end `key` (what the statistics are per)."""
    shape = cfg.feature_shape(key)
    return shape[1] if cfg.time_major(key) else shape[0]


def combine_stats(parts: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]] | None:
    """Mean/std per coefficient from per-shard sums (combined in shard order: same result on resume)."""
    frames = sum(p["frames"] for p in parts)
    if frames == 0:
        return None
    out = {}
    for key in parts[0]["sum"]:
        total = np.sum([p["sum"][key] for p in parts], axis=0)
        total_sq = np.sum([p["sumsq"][key] for p in parts], axis=0)
        mean = total / frames
        std = np.sqrt(np.maximum(total_sq / frames - mean**2, 0.0))
        out[key] = {"mean": mean.tolist(), "std": std.tolist()}
    return out


class _ShardWriter:
    """Writes one shard as `<name>.incomplete`; `close` writes the sidecar then renames."""

    def __init__(
        self, out_dir: Path, name: str, split: str, index: int, plan_hash: str, cfg: Config
    ):
        import tensorflow as tf

        self.final = out_dir / name
        self.temp = out_dir / (name + INCOMPLETE)
        self.sidecar = out_dir / STATE_DIR / (name + ".json")
        self.name, self.split, self.index, self.plan_hash = name, split, index, plan_hash
        self.writer = tf.io.TFRecordWriter(str(self.temp), options=cfg.prep.compression or None)
        self.count = self.fake = self.real = 0
        self.generators: collections.Counter = collections.Counter()
        self.errors: list[tuple[str, str, str]] = []
        self.stats = _Stats(cfg.features) if split == "train" else None

    def write(self, serialized: bytes, row: Row, generator: str = "") -> None:
        self.writer.write(serialized)
        self.generators[generator_family(generator)] += 1
        self.count += 1
        self.fake += max(row.fake, 0)
        self.real += max(row.real, 0)

    def close(self) -> dict[str, Any]:
        from deepwave_tf import records

        self.writer.close()
        info = {
            "shard": self.name,
            "split": self.split,
            "plan_hash": self.plan_hash,
            "bytes": self.temp.stat().st_size,
            "count": self.count,
            "fake": self.fake,
            "real": self.real,
            "generators": dict(sorted(self.generators.items())),
            "errors": [list(e) for e in self.errors],
            "stats": self.stats.to_json() if self.stats is not None else None,
        }
        records.write_json_atomic(self.sidecar, info)
        self.temp.replace(self.final)
        return info

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.temp.unlink(missing_ok=True)


def _complete_shard_info(out_dir: Path, name: str, plan_hash: str) -> dict[str, Any] | None:
    """The sidecar of a complete shard of this plan, else None (shard must be rebuilt)."""
    final, sidecar = out_dir / name, out_dir / STATE_DIR / (name + ".json")
    if not (final.is_file() and sidecar.is_file()):
        return None
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("plan_hash") != plan_hash or info.get("bytes") != final.stat().st_size:
        return None
    return info


def _clean(out_dir: Path, name: str) -> None:
    """Remove what an earlier prep wrote here (only files prep itself names)."""
    for p in out_dir.glob(f"{name}-*.tfrecord-*"):
        p.unlink()
    for fname in ("manifest.json", ERRORS_CSV, "config.json", "config.toml"):
        (out_dir / fname).unlink(missing_ok=True)
    shutil.rmtree(out_dir / STATE_DIR, ignore_errors=True)


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #
@dataclasses.dataclass
class Plan:
    """Everything a prep run will write, fixed before any audio is read.

    Made by `make_plan` and executed either by `run` (one machine) or by
    `prep_beam.run` (Apache Beam): both put the same rows in the same shards in
    the same order, and `finish` writes the same `errors.csv` and manifest.
    """

    data_dir: Path
    out_dir: Path
    errors: list[tuple[str, str, str]]  # csv-level: rows left out before any decoding
    split_info: dict[str, Any]
    csv_digests: dict[str, str]
    shards: dict[str, list[list[Row]]]  # split -> shard -> rows, in write order
    names: dict[str, list[str]]  # split -> shard file names
    plan: dict[str, Any]  # what `.prep/plan.json` holds (`plan_hash` hashes it)
    plan_hash: str

    @property
    def name(self) -> str:
        return self.out_dir.name

    def tasks(self, skip: Collection[str] = ()) -> list[Task]:
        """Every clip to write in plan order, except those of the shards named in `skip`."""
        out: list[Task] = []
        position = 0
        for split, split_shards in self.shards.items():
            for i, rows in enumerate(split_shards):
                if self.names[split][i] not in skip:
                    out.extend(Task(position + j, split, i, r) for j, r in enumerate(rows))
                position += len(rows)
        return out


def run(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    strict: bool = False,
    progress: bool = True,
    splits: Sequence[str] | None = None,
) -> PrepResult:
    """Decode `data_dir`'s csv files into sharded TFRecords in `out_dir`.

    Args:
        cfg: resolved config (`cfg.features`, `cfg.prep`).
        data_dir: holds `train.csv` and/or `test.csv` (paths relative to it),
            optionally `meta.csv`.
        out_dir: records directory; its name is the shard-name prefix.
        resume: keep complete shards of the same plan and build the rest.
        strict: exit code 1 if any row was left out.
        progress: show a tqdm progress bar (clips/s).
        splits: csv files to read: subset of ("train", "test"); None = those present.
            "train" also produces "val".

    Returns:
        PrepResult. Bad rows and files are in `result.errors` and `errors.csv`.

    Raises:
        PrepError: missing data dir/csv/column, or a changed plan with `resume`.
        AudioBackendError: the chosen backend cannot be loaded.
    """
    plan = make_plan(cfg, data_dir, out_dir, splits)
    start_output(plan, cfg, resume=resume)
    done: dict[str, dict[str, Any]] = {}
    if resume:
        for split_names in plan.names.values():
            for shard in split_names:
                info = _complete_shard_info(plan.out_dir, shard, plan.plan_hash)
                if info is not None:
                    done[shard] = info
        total = sum(len(n) for n in plan.names.values())
        print(
            f"resume: kept {len(done)} of {total} shards (complete, same plan) in {plan.out_dir}; "
            f"writing {total - len(done)}"
        )
    try:
        done.update(
            _write_shards(
                plan.tasks(skip=done),
                plan.names,
                plan.data_dir,
                plan.out_dir,
                plan.plan_hash,
                cfg,
                progress,
            )
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: {resume_hint(plan.data_dir, plan.out_dir, splits)}", file=sys.stderr)
        raise
    return finish(plan, cfg, done, strict=strict)


def make_plan(
    cfg: Config, data_dir: str | Path, out_dir: str | Path, splits: Sequence[str] | None = None
) -> Plan:
    """Read the csv files, split train/val (and held-out generators), derive rows, assign shards.

    Reads no audio and writes nothing. Arguments as for `run`.

    Raises:
        PrepError: missing data dir/csv/column, bad holdout values.
    """
    from deepwave_tf import records

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    name = out_dir.name
    inputs = _find_inputs(data_dir, splits)

    # ---- rows, csv-level errors, split ------------------------------------ #
    seen: dict[str, str] = {}
    errors: list[tuple[str, str, str]] = []
    parts: dict[str, list[Row]] = {}
    split_info: dict[str, Any] = {
        "method": "none",
        "group_column": "",
        "seed": cfg.prep.seed,
        "val_fraction": cfg.prep.val_fraction,
    }
    csv_digests = {}
    if "train" in inputs:
        table = read_csv_rows(inputs["train"], ["id", "path", "label"])
        rows, errs = parse_rows(table, TRAIN_CSV, labelled=True, seen=seen)
        errors += errs
        rows = _with_generators(rows, data_dir, table)
        groups, column, source = load_groups(data_dir, table, cfg.prep.group_column)
        p = cfg.prep
        if p.holdout or p.val_holdout:
            values, vsource = load_column(data_dir, table, p.holdout_column, "prep.holdout")
            csv_digests[vsource] = _file_digest(data_dir / vsource)
        if p.holdout:
            rows, parts["unseen"] = hold_out(
                rows, values, groups, p.holdout, p.holdout_real_fraction, p.seed, "prep.holdout"
            )
            split_info["holdout"] = {
                "column": p.holdout_column,
                "values": list(p.holdout),
                "real_fraction": p.holdout_real_fraction,
            }
        if p.val_holdout:
            train, val = hold_out(
                rows, values, groups, p.val_holdout, p.val_fraction, p.seed + 1, "prep.val_holdout"
            )
            method = "generator"
            split_info["val_holdout"] = {"column": p.holdout_column, "values": list(p.val_holdout)}
        else:
            train, val, method = split_train_val(rows, groups, p.val_fraction, p.seed)
        parts["train"], parts["val"] = train, val
        left_out = {}
        if not cfg.vocode.corpus_fakes:
            for split in ("train", "val"):
                left_out[split] = sum(r.fake == 1 for r in parts[split])
                parts[split] = [r for r in parts[split] if r.fake != 1]
            print(
                f"prep: leaving the corpus's {left_out['train']} train and {left_out['val']} val "
                "fake clips out (vocode.corpus_fakes = false): the only fakes there are copies",
                file=sys.stderr,
            )
        for split in ("train", "val"):
            parts[split] = parts[split] + derive_rows(parts[split], split, cfg)
        used, dropped = usable_vocoders(cfg)
        if cfg.vocode.copies_per_real:
            split_info["vocode"] = {
                "vocoders": list(used),
                "dropped_held_out": dropped,
                "copies_per_real": min(cfg.vocode.copies_per_real, len(used)),
                **({} if cfg.vocode.val_copies else {"val_copies": False}),
                **({"corpus_fakes_left_out": left_out} if left_out else {}),
            }
            if dropped:
                print(
                    f"prep: not vocoding with {dropped}: held out by prep.holdout/val_holdout",
                    file=sys.stderr,
                )
        if cfg.wavaug.views_per_clip:
            split_info["wavaug"] = dataclasses.asdict(cfg.wavaug)
        split_info.update(method=method, group_column=column if method == "group" else "")
        if method == "group":
            split_info["group_source"] = source
        csv_digests[TRAIN_CSV] = _file_digest(inputs["train"])
        if source:
            csv_digests[source] = _file_digest(data_dir / source)
    if "test" in inputs:
        table = read_csv_rows(inputs["test"], ["id", "path"])
        rows, errs = parse_rows(table, TEST_CSV, labelled=False, seen=seen)
        errors += errs
        parts["test"] = rows
        csv_digests[TEST_CSV] = _file_digest(inputs["test"])

    # ---- plan ------------------------------------------------------------- #
    reference = len(parts.get("train", [])) or max((len(v) for v in parts.values()), default=0)
    shards: dict[str, list[list[Row]]] = {}
    for split in records.SPLITS:
        if split in parts:
            n = num_shards_for(len(parts[split]), reference, cfg.prep.num_shards)
            if n:
                shards[split] = assign_shards(parts[split], n, cfg.prep.seed, split)
    names = {
        split: [records.shard_name(name, split, i, len(s)) for i in range(len(s))]
        for split, s in shards.items()
    }
    plan = {
        "feature_hash": cfg.features.hash(),
        "mel_layout": records.MEL_LAYOUT,
        "prep": {
            k: getattr(cfg.prep, k)
            for k in (
                "backend",
                "compression",
                "store_waveform",
                "seed",
                "val_fraction",
                "group_column",
                "num_shards",
                "batch_size",
                # only when used, so plans without them keep their hash
                *(_HOLDOUT_KEYS if cfg.prep.holdout or cfg.prep.val_holdout else ()),
            )
        },
        **({"vocode": vocode_plan(cfg)} if cfg.vocode.copies_per_real else {}),
        **({"wavaug": dataclasses.asdict(cfg.wavaug)} if cfg.wavaug.views_per_clip else {}),
        "csv_sha256": csv_digests,
        "shards": {
            split: {n: [r.plan_entry() for r in rows] for n, rows in zip(names[split], s)}
            for split, s in shards.items()
        },
    }
    plan_hash = _json_hash(plan)
    return Plan(data_dir, out_dir, errors, split_info, csv_digests, shards, names, plan, plan_hash)


def start_output(plan: Plan, cfg: Config, *, resume: bool = False) -> None:
    """Prepare `plan.out_dir`: clean it (or check the plan to `resume`), write the plan and config.

    Raises:
        PrepError: `resume` into a directory made with another plan.
    """
    from deepwave_tf import records

    out_dir, name, plan_hash = plan.out_dir, plan.name, plan.plan_hash
    state = out_dir / STATE_DIR
    if resume:
        _check_resume_plan(state / PLAN, plan.plan, plan_hash)
    elif out_dir.exists():
        _clean(out_dir, name)  # a fresh run replaces what an earlier prep wrote here
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / records.MANIFEST).unlink(missing_ok=True)  # written last; stale = misleading
    for stale in out_dir.glob(f"{name}-*{INCOMPLETE}"):
        stale.unlink()
    state.mkdir(exist_ok=True)
    records.write_json_atomic(state / PLAN, {"plan_hash": plan_hash, **plan.plan})
    cfg.save(out_dir)


def finish(
    plan: Plan,
    cfg: Config,
    done: dict[str, dict[str, Any]],
    *,
    strict: bool = False,
    stat_sums: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> PrepResult:
    """Write `errors.csv` and, last, `manifest.json` from the shards' infos.

    Args:
        plan: the plan that was executed.
        cfg: its config.
        done: shard name -> info (the `.prep/<shard>.json` sidecar) for every shard.
        strict: exit code 1 if any row was left out.
        stat_sums: train-split sums (`_Stats.to_json()` form) computed elsewhere
            (prep_beam's CombineFn); None = add up the shards' own sums.
        extra: more manifest fields (prep_beam: the runner).
    """
    from deepwave_tf import records

    out_dir, name, names = plan.out_dir, plan.name, plan.names
    data_dir, split_info, csv_digests = plan.data_dir, plan.split_info, plan.csv_digests
    plan_hash = plan.plan_hash
    errors = list(plan.errors)
    counts: dict[str, dict[str, int]] = {}
    by_generator: dict[str, dict[str, int]] = {}
    stat_parts = []
    for split, split_names in names.items():
        infos = [done[n] for n in split_names]
        counts[split] = {k: sum(i[k] for i in infos) for k in ("fake", "real")}
        counts[split] = {"total": sum(i["count"] for i in infos), **counts[split]}
        gens: collections.Counter = collections.Counter()
        for info in infos:
            gens.update(info.get("generators", {}))
        by_generator[split] = dict(sorted(gens.items()))
        for info in infos:
            errors += [tuple(e) for e in info["errors"]]
            if split == "train":
                stat_parts.append(info["stats"])
    if stat_sums is not None:
        stat_parts = [stat_sums] if "train" in names else []
    _write_errors(out_dir / ERRORS_CSV, errors)
    manifest = {
        "name": name,
        "feature_config": cfg.features.hashed_fields(),
        "feature_hash": cfg.features.hash(),
        "mel_layout": records.MEL_LAYOUT,
        "compression": cfg.prep.compression,
        "with_waveform": cfg.prep.store_waveform,
        "counts": counts,
        "generators": by_generator,
        "shards": names,
        "stats": combine_stats(stat_parts) if stat_parts else None,
        "split": split_info,
        "versions": _versions(cfg.prep.backend),
        "errors": len(errors),
        "backend": cfg.prep.backend,
        "source": {"data_dir": str(data_dir.resolve()), "csv_sha256": csv_digests},
        "plan_hash": plan_hash,
        **(extra or {}),
    }
    records.write_manifest(out_dir, manifest)
    total = sum(c["total"] for c in counts.values())
    exit_code = 1 if total == 0 or (strict and errors) else 0
    return PrepResult(out_dir, manifest, counts, errors, exit_code)


def _write_shards(
    tasks: list[Task],
    names: dict[str, list[str]],
    data_dir: Path,
    out_dir: Path,
    plan_hash: str,
    cfg: Config,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Decode, featurise and write every task; returns sidecar info per shard written.

    Clip `position` p always sits in slot p % batch_size of batch p // batch_size
    (slots of skipped or undecodable clips stay zero), so a clip's features are
    computed on the same input in the same slot whether or not the run was
    resumed: same bytes either way.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from deepwave_tf import audio, features

    if cfg.prep.backend == "tfio":
        audio.tfio_module()  # fail now, clearly, rather than once per file
    fcfg, batch_size = cfg.features, cfg.prep.batch_size
    workers = cfg.prep.workers or os.cpu_count() or 1

    # autograph=False: the feature code has no tensor-dependent Python control flow,
    # and converting it costs seconds per process.
    spec = (
        tf.TensorSpec([], tf.int64),  # batch id
        tf.TensorSpec([batch_size, fcfg.num_samples], tf.float32),
    )

    @tf.function(input_signature=spec, autograph=False)
    def featurize(batch_id, waveforms):
        return batch_id, features.compute_features(waveforms, fcfg)

    # Three stages overlap: decode threads (`_decoded_in_order`) fill batches in
    # a generator; a tf.data map featurises `workers` batches at once, each with
    # single-threaded ops (no intra-op fan-out to synchronise: ~25% less CPU per
    # clip than one multi-threaded call); this thread serialises and writes.
    batches: dict[int, list[tuple[Task, tuple[np.ndarray | str, str]]]] = {}  # id -> clips
    failure: list[BaseException] = []
    bar = tqdm(total=len(tasks), unit="clip", disable=not progress, dynamic_ncols=True)

    def batched_waveforms():
        pending: list[tuple[Task, tuple[np.ndarray | str, str]]] = []

        def emit():
            buffer = np.zeros((batch_size, fcfg.num_samples), np.float32)
            for t, (decoded, _) in pending:
                if not isinstance(decoded, str):
                    buffer[t.position % batch_size] = decoded
            batch_id = pending[0][0].position // batch_size
            batches[batch_id] = list(pending)
            pending.clear()
            return batch_id, buffer

        try:
            for task, decoded in _decoded_in_order(tasks, data_dir, out_dir, cfg, workers):
                if pending and pending[0][0].position // batch_size != task.position // batch_size:
                    yield emit()
                pending.append((task, decoded))
                bar.update(1)
                bar.set_description(
                    f"{task.split} {task.shard + 1}/{len(names[task.split])}", refresh=False
                )
            if pending:
                yield emit()
        except Exception as e:  # re-raised in the writing thread, with its own type
            failure.append(e)  # (not GeneratorExit: that is tf.data closing us)

    dataset = tf.data.Dataset.from_generator(batched_waveforms, output_signature=spec)
    dataset = dataset.map(featurize, num_parallel_calls=workers, deterministic=True).prefetch(1)
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    options.threading.private_threadpool_size = workers
    options.autotune.enabled = False  # fixed parallelism above; no tuning thread
    dataset = dataset.with_options(options)

    written: dict[str, dict[str, Any]] = {}
    writer: _ShardWriter | None = None

    def writer_for(task: Task) -> _ShardWriter:
        nonlocal writer
        if writer is None or (writer.split, writer.index) != (task.split, task.shard):
            if writer is not None:
                written[writer.name] = writer.close()
            name = names[task.split][task.shard]
            writer = _ShardWriter(out_dir, name, task.split, task.shard, plan_hash, cfg)
        return writer

    def write_batch(clips, batch: dict[str, np.ndarray]):
        for t, (decoded, tag) in clips:
            w = writer_for(t)
            if isinstance(decoded, str):
                w.errors.append((t.row.id, t.row.path, decoded))
                continue
            slot = t.position % batch_size
            feats = {key: value[slot] for key, value in batch.items()}
            if w.stats is not None:
                w.stats.add({key: value[None] for key, value in feats.items()})
            example, generator = encode_example(t.row, decoded, tag, feats, cfg)
            w.write(example, t.row, generator)

    try:
        for batch_id, out in dataset:
            clips = batches.pop(int(batch_id))
            write_batch(clips, {key: value.numpy() for key, value in out.items()})
        if failure:
            raise failure[0]
        if writer is not None:
            written[writer.name] = writer.close()
            writer = None
    except BaseException as e:
        if writer is not None:
            writer.abort()  # never leave a partial shard under a final name
        if failure and not isinstance(e, KeyboardInterrupt):
            raise failure[0] from None  # the decode side's error, not tf.data's wrapper
        raise
    finally:
        bar.close()
    return written


_HOLDOUT_KEYS = ("holdout_column", "holdout", "holdout_real_fraction", "val_holdout")


def _with_generators(rows: list[Row], data_dir: Path, table: list[dict[str, str]]) -> list[Row]:
    """Rows carrying their `generator` (train.csv or meta.csv), when a file has that column."""
    try:
        values, _ = load_column(data_dir, table, "generator", "generator")
    except PrepError:
        return rows
    out = []
    for r in rows:
        g = values.get(r.id, "")
        out.append(dataclasses.replace(r, generator=g) if g not in NO_GROUP else r)
    return out


def _find_inputs(data_dir: Path, splits: Sequence[str] | None) -> dict[str, Path]:
    if not data_dir.is_dir():
        raise PrepError(f"data directory not found: {data_dir}")
    present = {s: data_dir / f for s, f in (("train", TRAIN_CSV), ("test", TEST_CSV))}
    present = {s: p for s, p in present.items() if p.is_file()}
    if splits is None:
        if not present:
            raise PrepError(f"{data_dir} has neither {TRAIN_CSV} nor {TEST_CSV}")
        return present
    unknown = [s for s in splits if s not in ("train", "test")]
    if unknown:
        raise PrepError(f"unknown split(s) {unknown}: choose from train, test")
    missing = [f"{s}.csv" for s in splits if s not in present]
    if missing:
        raise PrepError(f"{data_dir} has no {', '.join(missing)}")
    return {s: present[s] for s in splits}


def resume_hint(data_dir: Path, out_dir: Path, splits: Sequence[str] | None) -> str:
    """The exact command that finishes an interrupted run into `out_dir`.

    No --config/--set needed: `--resume` reads the config this run saved in
    `out_dir` before writing any shard.
    """
    command = f"python -m deepwave_tf.prep --data {data_dir} --out {out_dir} --resume"
    if splits is not None:
        command += f" --splits {','.join(splits)}"
    return (
        f"complete shards are kept in {out_dir}; finish with\n  {command}\n"
        f"(--resume reuses the config saved in {out_dir / 'config.toml'})"
    )


def _check_resume_plan(path: Path, plan: dict[str, Any], plan_hash: str) -> None:
    """Refuse to resume into a directory whose plan (config, csv, assignment) differs."""
    if not path.is_file():
        return  # nothing to resume: a fresh run
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if old.get("plan_hash") == plan_hash:
        return
    diffs = []
    for key in ("feature_hash", "mel_layout", "csv_sha256"):
        if old.get(key) != plan[key]:
            diffs.append(f"{key}: {old.get(key)!r} -> {plan[key]!r}")
    for key, value in plan["prep"].items():
        if old.get("prep", {}).get(key) != value:
            diffs.append(f"prep.{key}: {old.get('prep', {}).get(key)!r} -> {value!r}")
    if not diffs:
        diffs.append("shard assignment differs")
    raise PrepError(
        f"cannot --resume in {path.parent.parent}: the earlier run used another plan "
        f"({'; '.join(diffs)}). Run again without --resume to start over."
    )


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _write_errors(path: Path, errors: list[tuple[str, str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "reason"])
        w.writerows(errors)
    tmp.replace(path)


def _versions(backend: str) -> dict[str, str]:
    from importlib import metadata

    import deepwave_tf

    libs = ["tensorflow-cpu", "tensorflow", "numpy", "soundfile", "soxr", "scikit-learn"]
    if backend == "tfio":
        libs.append("tensorflow-io")
    out = {"deepwave_tf": deepwave_tf.__version__, "python": sys.version.split()[0]}
    for lib in libs:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepwave_tf.prep",
        description="Decode audio listed in train.csv/test.csv into sharded TFRecords.",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="dir with train.csv and/or test.csv"
    )
    parser.add_argument("--out", type=Path, required=True, help="output dir, e.g. tfrecords/NAME")
    cli.add_config_arguments(
        parser, note="with --resume and no --config: the config saved in OUT by the interrupted run"
    )
    parser.add_argument("--val-fraction", type=float, help="overrides prep.val_fraction")
    parser.add_argument("--with-waveform", action="store_true", help="also store the waveform")
    parser.add_argument(
        "--holdout-column", help="overrides prep.holdout_column (default: generator)"
    )
    parser.add_argument(
        "--holdout",
        help="comma-separated values of the holdout column whose train rows become the "
        "'unseen' split (never trained or calibrated on), e.g. piper,world,griffinlim",
    )
    parser.add_argument(
        "--val-holdout",
        help="comma-separated values of the holdout column that go to val only "
        "(generator-disjoint validation)",
    )
    parser.add_argument(
        "--splits", help="comma-separated csv files to read: train,test (default: present)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted run (with the config it saved in OUT unless --config is given)",
    )
    parser.add_argument("--strict", action="store_true", help="exit code 1 if any row is left out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--runner",
        help="run on Apache Beam with this runner (DirectRunner, DataflowRunner, FlinkRunner, "
        "SparkRunner, ...; needs the 'beam' extra); arguments prep does not know go to Beam "
        "as pipeline options, e.g. --direct_num_workers=2 or --project=P --region=R",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not args.runner:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam options need --runner)")
    if args.runner and args.resume:
        parser.error("--resume is not supported with --runner (rerun the Beam pipeline instead)")
    cli.quiet_tensorflow()  # decode failures are reported in errors.csv
    from deepwave_tf.audio import AudioBackendError, AudioError
    from deepwave_tf.records import ManifestError

    flags = []  # the command's own flags, applied after --set
    if args.val_fraction is not None:
        flags.append(f"prep.val_fraction={args.val_fraction!r}")
    if args.with_waveform:
        flags.append("prep.store_waveform=true")
    if args.holdout_column is not None:
        flags.append(f"prep.holdout_column={json.dumps(args.holdout_column)}")
    for flag, key in ((args.holdout, "holdout"), (args.val_holdout, "val_holdout")):
        if flag is not None:
            names = [v.strip() for v in flag.split(",") if v.strip()]
            flags.append(f"prep.{key}={json.dumps(names)}")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    if args.runner:
        try:
            from deepwave_tf import prep_beam  # only here: apache-beam is an optional extra
        except ImportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    saved = args.out / "config.toml"
    try:
        if args.resume and args.config is None and saved.is_file():
            cfg = load_config(saved, [*args.overrides, *flags])  # the interrupted run's own
            print(f"resume: using the config saved in {saved}")
        else:
            cfg = cli.load_args_config(args, extra_overrides=flags)
        if args.runner:
            result = prep_beam.run(
                cfg,
                args.data,
                args.out,
                runner=args.runner,
                beam_args=beam_args,
                strict=args.strict,
                splits=splits,
            )
        else:
            result = run(
                cfg,
                args.data,
                args.out,
                resume=args.resume,
                strict=args.strict,
                progress=not args.no_progress,
                splits=splits,
            )
    except (ConfigError, PrepError, ManifestError, AudioError, AudioBackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(summary(result))
    return result.exit_code


def summary(result: PrepResult) -> str:
    """Human-readable end-of-run summary."""
    runner = result.manifest.get("runner", {}).get("name")
    lines = [f"wrote {result.out_dir}" + (f" (Apache Beam, {runner})" if runner else "")]
    for split, c in result.counts.items():
        n = len(result.manifest["shards"][split])
        lines.append(
            f"  {split:5s} {c['total']:6d} clips (fake {c['fake']}, real {c['real']}) in {n} shard(s)"
        )
    if result.errors:
        lines.append(f"  {len(result.errors)} row(s) left out, see {result.out_dir / ERRORS_CSV}:")
        lines += [f"    {i}: {reason}" for i, _, reason in result.errors[:5]]
        if len(result.errors) > 5:
            lines.append(f"    ... and {len(result.errors) - 5} more")
    else:
        lines.append("  no errors")
    if result.exit_code:
        lines.append(
            "FAILED: nothing usable was written"
            if not any(c["total"] for c in result.counts.values())
            else "FAILED (--strict): rows were left out"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
