"""Score-level fusion: does averaging two detectors transfer better to unseen generators than
either alone?

    .venv/bin/python benchmarks/bench_fusion.py --runs runs/unseen/runs/default-c4a0ae777e \\
        [--other runs/unseen/runs/clean_voice-6bda93fa51] [--work runs/unseen] [--weights 0.5]

Reads the fold runs of one config that `bench_unseen.py` trained (`<runs>/<fold>/seed<N>/`,
with `model.keras` and `config.toml`) and the fold's records under `--work`. The second
system is, by default, the protocol's baseline (`protocol.fit_stats_baseline` on the fold's
train-split per-band statistics, as `bench_unseen.py` fits it); with `--other`, the runs of
another config of the same benchmark (same fold and seed, its own records and front-end).
Every system scores the fold's val split and the held-out `unseen` split. Each system's `fake`
score is standardised with the mean and standard deviation of its scores on its own **val**
split (seen generators only: no held-out clip is used to set the fusion), then fused as
`w * net + (1 - w) * other`; the clips of the two systems are matched by id, and a fold where
their held-out clips differ is an error.
With `full` runs and the modern-generator records (`modern-<feature key>`) present, the same
on the modern set, standardised on the full run's val split; with `--other` also the AUC of
the fused `fake` score on the dev test (`devtest-<feature key>`, all 600 clips; an AUC, not the
challenge score: a fused score has no calibration of its own).

Prints the EER of each system and each fusion weight per fold and seed, the mean over folds
per seed, the modern set and (with `--other`) the dev test AUC; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_unseen  # noqa: E402


def aligned(a: dict, b: dict, where: str) -> tuple[list[str], list[int], list[int]]:
    """Ids both systems scored, and each one's row of them; different clip sets are an error
    (the two preps held out different clips, so the fusion would compare nothing)."""
    if sorted(a["ids"]) != sorted(b["ids"]):
        only_a = sorted(set(a["ids"]) - set(b["ids"]))[:3]
        only_b = sorted(set(b["ids"]) - set(a["ids"]))[:3]
        raise SystemExit(
            f"{where}: the two systems scored different clips ({len(a['ids'])} and "
            f"{len(b['ids'])}; only in the first: {only_a}, only in the second: {only_b})"
        )
    ids = sorted(a["ids"])
    ia = {k: i for i, k in enumerate(a["ids"])}
    ib = {k: i for i, k in enumerate(b["ids"])}
    return ids, [ia[k] for k in ids], [ib[k] for k in ids]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="<work>/runs/<config name>")
    parser.add_argument(
        "--other",
        type=Path,
        default=None,
        help="<work>/runs/<another config>: fuse with its runs instead of the LR baseline",
    )
    parser.add_argument("--work", type=Path, default=bench_unseen.REPO / "runs" / "unseen")
    parser.add_argument("--data", type=Path, default=bench_unseen.DEV, help="the dev corpus")
    parser.add_argument(
        "--weights", default="0.5", help="network weights w to try, comma-separated"
    )
    args = parser.parse_args(argv)

    from deepwave_tf import cli

    cli.quiet_tensorflow()
    import keras
    import numpy as np

    import deepwave_tf.model  # noqa: F401  (custom layers)
    from deepwave_tf import config, protocol

    weights = [float(w) for w in args.weights.split(",")]
    if not all(0.0 <= w <= 1.0 for w in weights):
        parser.error(f"--weights must lie in [0, 1], got {args.weights}")
    folds = [f for f in protocol.FOLDS if (args.runs / f).is_dir()]
    if not folds and not (args.runs / bench_unseen.FULL).is_dir():
        parser.error(f"no fold or full runs under {args.runs}")
    if args.other is not None and not args.other.is_dir():
        parser.error(f"--other {args.other}: no such directory")
    labels = None
    if args.other is not None and (args.data / "test_labels.csv").is_file():
        labels = bench_unseen.devtest_labels(args.data)
    second = "LR" if args.other is None else args.other.name.rsplit("-", 1)[0]

    def zscore(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (x - ref.mean()) / max(float(ref.std()), 1e-9)

    def seeds_of(runs: Path, fold: str) -> list[Path]:
        return sorted(p for p in (runs / fold).glob("seed*") if (p / "model.keras").is_file())

    def records(run: Path, fold: str) -> tuple:
        cfg = config.load_config(run / "config.toml")
        rec = args.work / "records" / f"{fold}-{bench_unseen.prep_key(cfg)}"
        if not (rec / "manifest.json").is_file():
            raise SystemExit(f"{fold}: no records at {rec} (run bench_unseen.py first)")
        return cfg, rec

    def evaluation(cfg, kind: str) -> Path | None:
        target = args.work / "records" / f"{kind}-{bench_unseen.feature_key(cfg)}"
        if not (target / "manifest.json").is_file():
            print(f"# no {kind} records at {target}: skipped")
            return None
        if bench_unseen.evaluation_parts(target):
            print(f"# {target} holds copies or views (rerun bench_unseen.py): skipped")
            return None
        return target

    def targets_of(fold: str, cfg, rec: Path) -> dict[str, tuple[Path, str]]:
        """What a fold's systems are scored on: {name: (records, split)}."""
        if fold != bench_unseen.FULL:
            return {"unseen": (rec, "unseen")}
        out = {}
        modern = evaluation(cfg, "modern")
        if modern is not None:
            out["modern"] = (modern, "train")
        if labels is not None:
            devtest = evaluation(cfg, "devtest")
            if devtest is not None:
                out["devtest"] = (devtest, "test")
        return out

    def net_scores(run: Path, fold: str) -> tuple[np.ndarray, dict[str, dict]]:
        cfg, rec = records(run, fold)
        model = keras.saving.load_model(run / "model.keras", compile=False)
        val = protocol.score_split(model, rec, "val", cfg)["logits"][:, 0]
        out = {}
        for name, (target, split) in targets_of(fold, cfg, rec).items():
            s = protocol.score_split(model, target, split, cfg)
            out[name] = {"ids": s["ids"], "x": s["logits"][:, 0], "y": s["targets"][:, 0]}
        return val, out

    def lr_scores(run: Path, fold: str) -> tuple[np.ndarray, dict[str, dict]]:
        cfg, rec = records(run, fold)
        train = protocol.split_statistics(rec, "train", cfg)
        lr = protocol.fit_stats_baseline(train["x"], train["targets"][:, 0])
        val = lr.decision_function(protocol.split_statistics(rec, "val", cfg)["x"])
        out = {}
        # the LR scores what targets_of names: the dev test only comes with --other
        for name, (target, split) in targets_of(fold, cfg, rec).items():
            s = protocol.split_statistics(target, split, cfg)
            out[name] = {
                "ids": s["ids"],
                "x": lr.decision_function(s["x"]),
                "y": s["targets"][:, 0],
            }
        return val, out

    columns = ["net", second, *(f"fused {w:g}" for w in weights)]

    def fused(measure, y, za, zb) -> dict[str, float]:
        out = {"net": measure(y, za), second: measure(y, zb)}
        for w in weights:
            out[f"fused {w:g}"] = measure(y, w * za + (1 - w) * zb)
        return out

    def eer(y, x):
        return protocol.detection_metrics(y, x)["eer"]

    def auc(y, x):
        return protocol.detection_metrics(y, x)["auc"]

    rows, per_seed, modern_rows = [], {}, []
    lr_cache: dict[str, tuple] = {}
    for fold in [*folds, bench_unseen.FULL]:
        for run in seeds_of(args.runs, fold):
            if args.other is None:
                if fold not in lr_cache:  # deterministic: one fit per fold
                    lr_cache[fold] = lr_scores(run, fold)
                val_b, by_b = lr_cache[fold]
            else:
                partner = args.other / fold / run.name
                if not (partner / "model.keras").is_file():
                    print(f"# {fold} {run.name}: no run of {second}: skipped")
                    continue
                val_b, by_b = net_scores(partner, fold)
            val_a, by_a = net_scores(run, fold)
            for name in by_a:
                if name not in by_b:
                    continue
                ids, ia, ib = aligned(by_a[name], by_b[name], f"{fold} {run.name} {name}")
                za = zscore(val_a, by_a[name]["x"][ia])
                zb = zscore(val_b, by_b[name]["x"][ib])
                if name == "devtest":
                    y = np.array([labels[i][0] for i in ids])
                    values, measure_name = fused(auc, y, za, zb), "dev test fake AUC"
                else:
                    y = by_a[name]["y"][ia]
                    values, measure_name = fused(eer, y, za, zb), "EER"
                label = {"unseen": fold, "modern": "modern set", "devtest": "dev test (AUC)"}[name]
                fmt = (lambda v: f"{v:.3f}") if name == "devtest" else bench_unseen.pct
                line = [label, run.name, *(fmt(values[c]) for c in columns)]
                (rows if name == "unseen" else modern_rows).append(line)
                per_seed.setdefault(run.name, {})[fold if name == "unseen" else name] = values
                print(
                    f"{fold} {run.name} {measure_name}: "
                    + json.dumps({k: round(v, 4) for k, v in values.items()}),
                    flush=True,
                )

    summary: dict = {"columns": columns, "seeds": {}}
    for seed, by_fold in sorted(per_seed.items()):
        fold_vals = [by_fold[f] for f in folds if f in by_fold]
        entry = {}
        if len(fold_vals) == len(folds) and folds:
            entry["mean_fold_eer"] = {c: float(np.mean([v[c] for v in fold_vals])) for c in columns}
            rows.append(
                ["**mean of folds**", seed]
                + [f"**{bench_unseen.pct(entry['mean_fold_eer'][c])}**" for c in columns]
            )
        if "modern" in by_fold:
            entry["modern_eer"] = by_fold["modern"]
        if "devtest" in by_fold:
            entry["devtest_fake_auc"] = by_fold["devtest"]
        summary["seeds"][seed] = entry
    _common.table(
        f"Unseen-family EER: network, {second} and fused ({args.runs.name})",
        ["fold", "seed", *columns],
        rows + modern_rows,
        str,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
