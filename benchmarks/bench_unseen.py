"""The unseen-generator protocol: EER/AUC on generator families a model never saw.

    .venv/bin/python benchmarks/bench_unseen.py --config configs/default.toml [--config F2 ...]
        [--seeds 2] [--epochs 10] [--folds all|none|NAME,NAME] [--data DEV] [--modern DIR]
        [--work runs/unseen] [--no-full] [--val-holdout none|auto] [--set section.key=value ...]

For every fold of `protocol.FOLDS` (families held out together), prep writes the dev
corpus with `prep.holdout` = the fold's families: their clips, the real clips of
their speakers and a quarter of the other real speakers become the split "unseen",
which neither fit nor calibration ever reads. Each config trains once per seed
(`train.seed` = `data.seed` = seed; the split stays the same) on the fold's train
split, with its own val split for checkpoint choice, and is scored on "unseen":
EER and AUC of the `fake` output, held-out fakes against held-out reals, overall
and per family. The fold's vocoders are those of the config minus any held-out
family (prep drops them and says so; the table shows it).

Beside the folds:
- `full`: each config and seed trained on the whole dev train split; its export-style
  calibrated probabilities give the dev test challenge score (600 mixtures), its ECE
  before and after calibration, and per condition of `meta.csv` (noise, silence,
  single_real, ...) the share of clips with both outputs right at 0.5 (the table shows
  `noise`: background only, no voice); its fake score gives the EER/AUC on the
  modern-generator set (`--modern`, built by
  `scripts/build_modern_val.py`; skipped with a note when absent);
- the baseline every config must beat: a logistic regression on per-band mean/std of
  the same log-mel and MFCC (`protocol.fit_stats_baseline`), per fold and full, from the
  first config that stores them (if none does, of the first config's front-end tensors).

`--val-holdout auto`: model selection and calibration on generators training never saw.
Each fold's (and `full`'s) val split holds one more family, outside the fold
(`protocol.val_holdout_for`: rhvoice, or mbrola for the fold that holds rhvoice out),
with its speakers' real clips (`prep.val_holdout`); that family is then in neither
train nor the fold's unseen split. Its runs and records are kept apart (`+valho`).

A `--config` may carry a label and overrides of its own, to compare variants of one file
side by side in one run: `--config views=configs/default.toml+wavaug.views_per_clip=1`
(`LABEL=PATH+key=value+key=value`, so a path or value here cannot contain `+`: use `--set`
or a config file for those; `--set` still applies to every config). The label
names the variant's rows and runs (`views-<hash of its resolved config>`).
`--folds none` trains the `full` runs only (dev test and modern set, no folds).

Configs of different front-ends (`[features] sequence / image`) each get their own
records, fold and evaluation sets alike; prep runs in a child process. The evaluation
records (dev test, modern set) are prepped without `[vocode]` copies or `[wavaug]` views
(`eval_config`): the modern set is prepped as a train split, and before this its real
clips gained copies labelled fake whenever the first config to prep it had a `[vocode]`
section; a cached evaluation prep holding copies or views is prepped again.

Every trained run keeps `result.json` in its run dir under `--work`; a rerun skips
finished runs, so an interrupted benchmark resumes. The last line printed is JSON:
`{"mean_eer": <first config's mean fold EER>, "configs": {...}, "baseline": {...}}`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("DEEPWAVE_DEV", REPO.parent / "shared" / "data" / "deepwave-dev"))
MODERN = REPO / "data" / "modern_val"
FULL = "full"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def prep_key(cfg) -> str:
    """What the records depend on: features (the fields its hash covers, so records of the
    default front-end keep their key), prep, vocode and wavaug sections."""
    from deepwave_tf import prep

    key = {k: dataclasses.asdict(getattr(cfg, k)) for k in ("prep", "wavaug")}
    return _hash({"features": cfg.features.hashed_fields(), "vocode": prep.vocode_plan(cfg), **key})


# Config fields added after runs were cached, with their defaults: left out of the run key
# while they hold them, so the cached runs stay valid.
_ADDED_FIELDS = {
    ("vocode", "val_copies"): True,
    ("vocode", "corpus_fakes"): True,
    ("train", "class_balance"): False,
    ("augment", "clean_prob"): 0.0,
    ("model", "stats_moments"): ["mean", "std"],
    ("model", "stats_squares"): False,
}


def run_key(cfg) -> str:
    """What a run depends on: the resolved config, less `_ADDED_FIELDS` at their defaults."""
    d = cfg.to_dict()
    for (section, key), default in _ADDED_FIELDS.items():
        if d[section][key] == default:
            del d[section][key]
    return _hash(d)


def _prep_in_child(cfg, data_dir: Path, out: Path, splits) -> tuple[int, str, int]:
    """`prep.run` in a spawned child process: (exit code, summary, clips left out)."""
    from deepwave_tf import prep

    result = prep.run(cfg, data_dir, out, resume=True, progress=False, splits=splits)
    return result.exit_code, prep.summary(result), len(result.errors)


def feature_key(cfg) -> str:
    """What the shared evaluation records (`devtest-<key>`, `modern-<key>`) depend on: the
    front-end's hashed fields, and whether the waveform is stored (a waveform-branch config)."""
    return _hash(cfg.features.hashed_fields()) + ("-wave" if cfg.model.uses_waveform else "")


def eval_config(cfg):
    """`cfg` for the shared evaluation records (dev test, modern set): no copy-synthesis
    fakes and no augmented views. Prep makes both for a "train" split, and the modern set
    is prepped as one: with a `[vocode]` config its real clips would gain copies labelled
    fake (and with `corpus_fakes = false` its fakes would be dropped)."""
    return cfg.replace(
        vocode=dataclasses.replace(
            cfg.vocode, copies_per_real=0, corpus_fakes=True, val_copies=True
        ),
        wavaug=dataclasses.replace(cfg.wavaug, views_per_clip=0),
    )


def augmented_plan_parts(plan: dict) -> list[str]:
    """The parts of a prep plan (`.prep/plan.json`) that add records beyond the csv's
    clips: `vocode` (copies) and `wavaug` (views). Evaluation records must have none."""
    return [k for k in ("vocode", "wavaug") if plan.get(k)]


def _prep_plan(out: Path) -> dict:
    """The plan a prep in `out` recorded (`.prep/plan.json`), or {} if there is none."""
    path = out / ".prep" / "plan.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluation_parts(out: Path) -> list[str]:
    """`augmented_plan_parts` of the prep in `out` (none if it has no plan): what other
    benchmarks check before they score the shared evaluation records."""
    return augmented_plan_parts(_prep_plan(out))


def ensure_records(
    cfg, data_dir: Path, out: Path, splits, evaluation: bool = False, **prep_overrides
) -> Path:
    """prep into `out` unless a complete prep of the same plan is there (`resume`).

    Prep runs in a child process: in this long-lived one, after a fit, TensorFlow's
    graph optimiser copies the whole accumulated function library each time prep's
    feature function is instantiated (seen stuck for 10+ min on the second front-end's
    prep of a run with several front-ends); a fresh process costs one TF import.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    cfg = cfg.replace(prep=dataclasses.replace(cfg.prep, **prep_overrides))
    if (out / "manifest.json").is_file():
        manifest = json.loads((out / "manifest.json").read_text())
        plan = _prep_plan(out)
        extra_parts = augmented_plan_parts(plan)
        if evaluation and extra_parts:
            # made by an older bench_unseen from a [vocode] / views config: not evaluation data
            log(f"{out.name} holds {' and '.join(extra_parts)} records: prepped again without")
            shutil.rmtree(out)
        elif plan.get("plan_hash") == manifest.get("plan_hash"):
            return out
    log(f"prep {out.name} ({', '.join(splits)}; {prep_overrides or 'no holdout'})")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        exit_code, summary, errors = pool.submit(
            _prep_in_child, cfg, data_dir, out, list(splits)
        ).result()
    if exit_code:
        raise SystemExit(f"prep of {out} failed: {summary}")
    if errors:
        log(f"  {errors} clip(s) left out (see {out / 'errors.csv'})")
    return out


def modern_data_dir(modern: Path, work: Path) -> Path:
    """A labelled `train.csv` view of the modern set (paths resolve to the set's clips)."""
    labels = modern / "labels.csv"
    out = work / "modern-data"
    out.mkdir(parents=True, exist_ok=True)
    with open(labels, newline="") as f, open(out / "train.csv", "w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.writer(g)
        writer.writerow(["id", "path", "label", "generator"])
        for row in reader:
            writer.writerow(
                [
                    row["id"],
                    str((modern / row["path"]).resolve()),
                    row["label"],
                    row.get("system", ""),
                ]
            )
    return out


def devtest_labels(data_dir: Path) -> dict[str, tuple[int, int]]:
    from deepwave_tf import evaluate

    return evaluate.read_labels(data_dir / "test_labels.csv")


# --------------------------------------------------------------------------- #
# One trained run
# --------------------------------------------------------------------------- #
def train_and_score(
    cfg, name: str, fold: str, seed: int, rec: Path, extra: dict, work: Path
) -> dict:
    """Fit on `rec` (train/val), score the fold's unseen split (or, for `full`, the
    dev test and the modern set); cached in `result.json`."""
    from deepwave_tf import fit, protocol

    run_dir = work / "runs" / name / fold / f"seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = cfg.replace(
        train=dataclasses.replace(cfg.train, seed=seed),
        data=dataclasses.replace(cfg.data, seed=seed),
    )
    log(f"fit {name} {fold} seed {seed} ({cfg.train.epochs} epochs)")
    t0 = time.perf_counter()
    model = fit.run(cfg, rec, run_dir, verbose=0)
    result: dict = {"fit_seconds": time.perf_counter() - t0}
    run = json.loads((run_dir / fit.RUN_JSON).read_text())
    result["best_epoch"] = run.get("best_epoch")
    if fold != FULL:
        s = protocol.score_split(model, rec, "unseen", cfg)
        fake = s["targets"][:, 0]
        result["unseen"] = protocol.detection_metrics(fake, s["logits"][:, 0])
        result["per_generator"] = protocol.per_generator(s["generators"], fake, s["logits"][:, 0])
    if "modern" in extra:
        s = protocol.score_split(model, extra["modern"], "train", cfg)
        result["modern"] = protocol.detection_metrics(s["targets"][:, 0], s["logits"][:, 0])
    if fold == FULL and "devtest" in extra:
        result["devtest"] = devtest_score(
            model, cfg, rec, extra["devtest"], extra["labels"], extra.get("meta")
        )
    result_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def devtest_score(model, cfg, rec: Path, test_rec: Path, labels, meta=None) -> dict:
    """The challenge score on the dev test, calibrated on val as export does (`export.calibration`),
    with the raw (uncalibrated) score and ECE, and the calibrated outputs per condition as
    `evaluate` reports them (`meta`: `evaluate.read_meta` of the test ids, or None)."""
    import numpy as np

    from deepwave_tf import calibration, evaluate, export, metrics, protocol
    from deepwave_tf.model import logits_model

    val_logits, val_targets, clips = export.calibration_set(logits_model(model), rec, cfg)
    cal = export.fit_calibration(val_logits, val_targets, cfg.model.head, cfg.export, clips)
    s = protocol.score_split(model, test_rec, "test", cfg)
    probs = calibration.apply_affine(s["logits"], cal.scale, cal.bias)
    y = np.array([labels[i] for i in s["ids"]])
    score = metrics.challenge_score(y, probs)
    raw = metrics.challenge_score(y, calibration.sigmoid(s["logits"]))
    return {
        "score": score["score"],
        "mean_auc": score["mean_auc"],
        "mean_ece": score["mean_ece"],
        "uncalibrated_score": raw["score"],
        "uncalibrated_mean_ece": raw["mean_ece"],
        "conditions": evaluate.condition_breakdown(
            evaluate.clip_conditions(meta, s["ids"], y), y, probs
        ),
        "temperatures": [float(t) for t in cal.temperatures],
        "calibration": {k: o["method"] for k, o in cal.outputs.items()},
        "bias": [float(b) for b in cal.bias],
    }


# --------------------------------------------------------------------------- #
# The per-band statistics baseline
# --------------------------------------------------------------------------- #
def baseline(cfg, fold: str, rec: Path, extra: dict, work: Path) -> dict:
    from deepwave_tf import protocol

    path = work / "baseline" / f"{rec.name}.json"  # {fold}-{prep key}[+valho-...]
    if path.is_file():
        return json.loads(path.read_text())
    train = protocol.split_statistics(rec, "train", cfg)
    model = protocol.fit_stats_baseline(train["x"], train["targets"][:, 0])
    out = {}
    if fold != FULL:
        s = protocol.split_statistics(rec, "unseen", cfg)
        score = model.decision_function(s["x"])
        out["unseen"] = protocol.detection_metrics(s["targets"][:, 0], score)
        out["per_generator"] = protocol.per_generator(s["generators"], s["targets"][:, 0], score)
    if "modern" in extra:
        s = protocol.split_statistics(extra["modern"], "train", cfg)
        out["modern"] = protocol.detection_metrics(
            s["targets"][:, 0], model.decision_function(s["x"])
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #
def _mean(values):
    import numpy as np

    values = [v for v in values if v is not None and v == v]
    return float(np.mean(values)) if values else float("nan")


def _spread(values) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{_mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _both_right(result: dict, condition: str):
    """The share of `condition` dev test clips with both outputs right (None if not recorded)."""
    return result["devtest"].get("conditions", {}).get(condition, {}).get("accuracy")


def pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def parse_config_arg(text: str) -> tuple[str, Path, list[str]]:
    """`[LABEL=]PATH[+key=value...]` -> (label, path, overrides); the label defaults to
    the file's stem. Raises ValueError naming the argument when PATH or an override is
    malformed."""
    label = None
    head = text
    if "=" in text.split("+", 1)[0]:
        label, head = text.split("=", 1)
        if not label or "/" in label:
            raise ValueError(f"--config {text!r}: the label before '=' must be a plain name")
    path, *overrides = head.split("+")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ValueError(
                f"--config {text!r}: override {item!r} is not of the form section.key=value"
            )
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {text!r}: no config file at {path}")
    return label or path.stem, path, overrides


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        help="[LABEL=]PATH[+section.key=value...]; repeat to compare configs in one run",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", default="all")
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--modern", type=Path, default=MODERN)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "unseen")
    parser.add_argument("--no-full", action="store_true", help="skip the full-data runs")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--val-holdout",
        choices=("none", "auto"),
        default="none",
        help="auto: a generator-disjoint val split per fold (protocol.val_holdout_for)",
    )
    parser.add_argument(
        "--baseline-only", action="store_true", help="prep the folds and fit the LR baseline only"
    )
    args = parser.parse_args(argv)

    from deepwave_tf import evaluate, protocol
    from deepwave_tf.config import load_config

    if args.folds == "none":
        if args.no_full:
            parser.error("--folds none with --no-full leaves nothing to run")
        folds = []
    else:
        folds = list(protocol.FOLDS) if args.folds == "all" else args.folds.split(",")
    unknown = [f for f in folds if f not in protocol.FOLDS]
    if unknown:
        parser.error(f"unknown fold(s) {unknown}; known: {', '.join(protocol.FOLDS)}")
    if not (args.data / "train.csv").is_file():
        parser.error(f"no dev corpus at {args.data} (set --data or $DEEPWAVE_DEV)")
    work = args.work
    configs = {}
    for text in args.config:
        try:
            label, path, own = parse_config_arg(text)
        except ValueError as err:
            parser.error(str(err))
        cfg = load_config(path, [*args.overrides, *own, f"train.epochs={args.epochs}"])
        suffix = "+valho" if args.val_holdout == "auto" else ""
        configs[f"{label}{suffix}-{run_key(cfg)}"] = cfg
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(
        f"# bench_unseen: {len(configs)} config(s) x {len(seeds)} seed(s) x "
        f"{len(folds)} fold(s){' + full' if not args.no_full else ''}, {args.epochs} epochs; "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )

    # Shared evaluation records (features only: the same for every config of one front-end).
    modern_ok = (args.modern / "labels.csv").is_file()
    if not modern_ok:
        print(f"# no modern-generator set at {args.modern} (scripts/build_modern_val.py): skipped")
    extras: dict[str, dict] = {}

    def extra_for(cfg) -> dict:
        # A waveform-branch config (configs/waveform.toml) reads the samples: store them then.
        wave = cfg.model.uses_waveform
        fkey = feature_key(cfg)
        if fkey in extras:
            return extras[fkey]
        extra: dict = {}
        ecfg = eval_config(cfg)
        if modern_ok:
            extra["modern"] = ensure_records(
                ecfg,
                modern_data_dir(args.modern, work),
                work / "records" / f"modern-{fkey}",
                ["train"],
                evaluation=True,
                val_fraction=0.0,
                holdout=(),
                val_holdout=(),
                store_waveform=wave,
            )
        if not args.no_full:
            extra["devtest"] = ensure_records(
                ecfg,
                args.data,
                work / "records" / f"devtest-{fkey}",
                ["test"],
                evaluation=True,
                store_waveform=wave,
            )
            extra["labels"] = devtest_labels(args.data)
            extra["meta"] = evaluate.read_meta(args.data, list(extra["labels"]))
        extras[fkey] = extra
        return extra

    # The baseline reads the log-mel and MFCC: from the first config that stores them.
    baseline_name = next(
        (n for n, c in configs.items() if c.features.feature_keys == ("mfcc", "mel")),
        next(iter(configs)),
    )

    results: dict = {name: {} for name in configs}
    base: dict = {}
    plan = [*folds, *([] if args.no_full else [FULL])]
    dropped_note = {}
    for fold in plan:
        for name, cfg in configs.items():
            held = protocol.FOLDS.get(fold, ())
            split = {"holdout": held}
            records_name = f"{fold}-{prep_key(cfg)}"
            if args.val_holdout == "auto":
                split["val_holdout"] = protocol.val_holdout_for(fold)
                records_name += "+valho-" + "-".join(split["val_holdout"])
            rec = ensure_records(
                cfg, args.data, work / "records" / records_name, ["train"], **split
            )
            dropped = [v for v in cfg.vocode.vocoders if v in held]
            if dropped:
                dropped_note[(name, fold)] = dropped
            extra = extra_for(cfg)
            if not args.no_baseline and fold not in base and name == baseline_name:
                base[fold] = baseline(cfg, fold, rec, extra, work)
            if args.baseline_only:
                continue
            for seed in seeds:
                results[name].setdefault(fold, []).append(
                    train_and_score(cfg, name, fold, seed, rec, extra, work)
                )

    if args.baseline_only:
        for fold, b in base.items():
            print(
                f"LR on band stats, {fold}: "
                + json.dumps({k: v for k, v in b.items() if k != "per_generator"})
            )
        return 0

    # ---- tables --------------------------------------------------------- #
    rows = []
    summary: dict = {"configs": {}, "baseline": {}}
    for name in configs:
        fold_eers = []
        for fold in folds:
            runs = results[name][fold]
            eers = [r["unseen"]["eer"] for r in runs]
            aucs = [r["unseen"]["auc"] for r in runs]
            fold_eers.append(_mean(eers))
            note = (
                f" (no {', '.join(dropped_note[(name, fold)])} vocoder)"
                if (name, fold) in dropped_note
                else ""
            )
            rows.append(
                [
                    name,
                    fold + note,
                    " / ".join(pct(e) for e in eers),
                    pct(_mean(eers)),
                    f"{_mean(aucs):.3f}",
                ]
            )
        entry = {"mean_eer": _mean(fold_eers), "fold_eer": dict(zip(folds, fold_eers))}
        if not args.no_full:
            full = results[name][FULL]
            entry["devtest_score"] = [r["devtest"]["score"] for r in full]
            entry["devtest_ece"] = [r["devtest"]["mean_ece"] for r in full]
            entry["devtest_ece_uncalibrated"] = [
                r["devtest"].get("uncalibrated_mean_ece") for r in full
            ]
            entry["devtest_noise_both_right"] = [_both_right(r, "noise") for r in full]
            if modern_ok:
                entry["modern_eer"] = [r["modern"]["eer"] for r in full]
                entry["modern_auc"] = [r["modern"]["auc"] for r in full]
        if modern_ok:
            entry["modern_eer_fold_models"] = _mean(
                [r["modern"]["eer"] for f in folds for r in results[name][f]]
            )
        rows.append([name, "**mean of folds**", "", f"**{pct(entry['mean_eer'])}**", ""])
        summary["configs"][name] = entry
    if base:
        fold_eers = [base[f]["unseen"]["eer"] for f in folds if f in base]
        for f in folds:
            rows.append(
                [
                    "LR on band stats",
                    f,
                    "",
                    pct(base[f]["unseen"]["eer"]),
                    f"{base[f]['unseen']['auc']:.3f}",
                ]
            )
        rows.append(
            ["LR on band stats", "**mean of folds**", "", f"**{pct(_mean(fold_eers))}**", ""]
        )
        summary["baseline"] = {"mean_eer": _mean(fold_eers)}
        if FULL in base and "modern" in base[FULL]:
            summary["baseline"]["modern_eer"] = base[FULL]["modern"]["eer"]
            summary["baseline"]["modern_auc"] = base[FULL]["modern"]["auc"]
    if folds:
        _common.table(
            "Unseen-generator folds (EER of `fake`, held-out fakes vs held-out reals)",
            ["model", "held-out fold", "EER per seed", "EER mean", "AUC mean"],
            rows,
            str,
        )
    gen_rows = []
    for name in configs:
        for fold in folds:
            for gen in protocol.FOLDS[fold]:
                eers = [r["per_generator"].get(gen, {}).get("eer") for r in results[name][fold]]
                gen_rows.append([name, gen, pct(_mean(eers))])
    for fold in folds:
        if fold in base:
            for gen in protocol.FOLDS[fold]:
                gen_rows.append(
                    [
                        "LR on band stats",
                        gen,
                        pct(base[fold]["per_generator"].get(gen, {}).get("eer")),
                    ]
                )
    if gen_rows:
        _common.table("Per held-out family (EER)", ["model", "family", "EER"], gen_rows, str)
    if not args.no_full:
        rows = []
        for name in configs:
            full = results[name][FULL]
            rows.append(
                [
                    name,
                    _spread([r["devtest"]["score"] for r in full]),
                    _spread([r["devtest"]["mean_ece"] for r in full]),
                    _spread([r["devtest"].get("uncalibrated_mean_ece") for r in full]),
                    _spread([_both_right(r, "noise") for r in full]),
                    " / ".join(pct(r["modern"]["eer"]) for r in full) if modern_ok else "n/a",
                    _spread([r["modern"]["auc"] for r in full]) if modern_ok else "n/a",
                ]
            )
        if modern_ok and FULL in base:
            rows.append(
                [
                    "LR on band stats",
                    "n/a",
                    "n/a",
                    "n/a",
                    "n/a",
                    pct(base[FULL]["modern"]["eer"]),
                    f"{base[FULL]['modern']['auc']:.3f}",
                ]
            )
        _common.table(
            "Trained on the whole dev train split",
            [
                "model",
                "dev test score (mean, range)",
                "dev test ECE",
                "ECE uncalibrated",
                "noise clips both right",
                "modern EER per seed",
                "modern AUC",
            ],
            rows,
            str,
        )
    first_name = next(iter(configs))
    print(json.dumps({"mean_eer": summary["configs"][first_name]["mean_eer"], **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
