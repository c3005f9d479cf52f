"""Score-level fusion: does averaging the network with the per-band-statistics logistic regression
transfer better to unseen generators than either alone?

    .venv/bin/python benchmarks/bench_fusion.py --runs runs/unseen/runs/default-c4a0ae777e \\
        [--work runs/unseen] [--weights 0.5]

Reads the fold runs of one config that `bench_unseen.py` trained (`<runs>/<fold>/seed<N>/`,
with `model.keras` and `config.toml`) and the fold's records under `--work`. For every fold
it fits the protocol's baseline (`protocol.fit_stats_baseline` on the train split's
per-band statistics, as `bench_unseen.py` does), and for every seed it scores val and the
held-out `unseen` split with both. Each system's `fake` score is standardised with the mean
and standard deviation of its scores on the fold's **val** split (seen generators only: no
held-out clip is used to set the fusion), then fused as `w * net + (1 - w) * LR`.
With `full` runs and the modern-generator records (`modern-<feature key>`) present, the same
on the modern set, standardised on the full run's val split.

Prints the EER of the network, the LR and each fusion weight per fold and seed, the mean
over folds per seed, and the modern set; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_unseen  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="<work>/runs/<config name>")
    parser.add_argument("--work", type=Path, default=bench_unseen.REPO / "runs" / "unseen")
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

    def zscore(ref: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (x - ref.mean()) / max(float(ref.std()), 1e-9)

    def fused_eers(y, net_val, net_x, lr_val, lr_x) -> dict[str, float]:
        zn, zl = zscore(net_val, net_x), zscore(lr_val, lr_x)
        out = {
            "net": protocol.detection_metrics(y, net_x)["eer"],
            "lr": protocol.detection_metrics(y, lr_x)["eer"],
        }
        for w in weights:
            out[f"fused {w:g}"] = protocol.detection_metrics(y, w * zn + (1 - w) * zl)["eer"]
        return out

    def seeds_of(fold: str) -> list[Path]:
        return sorted(p for p in (args.runs / fold).glob("seed*") if (p / "model.keras").is_file())

    rows, per_seed, modern_rows = [], {}, []
    columns = ["net", "lr", *(f"fused {w:g}" for w in weights)]
    for fold in [*folds, bench_unseen.FULL]:
        runs = seeds_of(fold)
        if not runs:
            continue
        cfg = config.load_config(runs[0] / "config.toml")
        rec = args.work / "records" / f"{fold}-{bench_unseen.prep_key(cfg)}"
        if not (rec / "manifest.json").is_file():
            raise SystemExit(f"{fold}: no records at {rec} (run bench_unseen.py first)")
        train = protocol.split_statistics(rec, "train", cfg)
        lr = protocol.fit_stats_baseline(train["x"], train["targets"][:, 0])
        lr_val = lr.decision_function(protocol.split_statistics(rec, "val", cfg)["x"])
        if fold == bench_unseen.FULL:
            target = args.work / "records" / f"modern-{bench_unseen.feature_key(cfg)}"
            split = "train"
            if not (target / "manifest.json").is_file():
                print(f"# no modern-set records at {target}: modern set skipped")
                continue
            if bench_unseen.evaluation_parts(target):
                print(
                    f"# {target} holds copies or views (rerun bench_unseen.py): modern set skipped"
                )
                continue
        else:
            target, split = rec, "unseen"
        lr_s = protocol.split_statistics(target, split, cfg)
        lr_x = lr.decision_function(lr_s["x"])
        y = lr_s["targets"][:, 0]
        for run in runs:
            model = keras.saving.load_model(run / "model.keras", compile=False)
            net_val = protocol.score_split(model, rec, "val", cfg)["logits"][:, 0]
            s = protocol.score_split(model, target, split, cfg)
            if s["ids"] != lr_s["ids"]:
                raise SystemExit(f"{run}: records read in another order by the two scorers")
            eers = fused_eers(y, net_val, s["logits"][:, 0], lr_val, lr_x)
            line = [fold if fold != bench_unseen.FULL else "modern set", run.name]
            line += [bench_unseen.pct(eers[c]) for c in columns]
            (modern_rows if fold == bench_unseen.FULL else rows).append(line)
            key = "modern" if fold == bench_unseen.FULL else fold
            per_seed.setdefault(run.name, {})[key] = eers
            print(f"{fold} {run.name}: " + json.dumps({k: round(v, 4) for k, v in eers.items()}))

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
        summary["seeds"][seed] = entry
    _common.table(
        f"Unseen-family EER: network, LR and fused ({args.runs.name})",
        ["fold", "seed", *columns],
        rows + modern_rows,
        str,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
