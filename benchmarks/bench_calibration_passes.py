"""How many mixing passes over validation the calibration needs: dev test ECE per `export.calibration_passes`.

    .venv/bin/python benchmarks/bench_calibration_passes.py --runs 'runs/unseen/runs/default-*/full/seed*' \\
        [--passes 1,4,8] [--work runs/unseen] [--data DEV]

Reads the `full` runs of `bench_unseen.py` (trained on the whole dev train split): for
each run its val records (`--work`/records/full-<prep key>) and the dev test records
(`devtest-<feature key>`). The test logits are computed once per run; for each pass
count the calibration (`export.calibration_set` + `export.fit_calibration`, the
config's `export.calibration`, "auto" by default) is fitted on validation and applied
to the test logits. Prints per run and pass count the method kept per output, the
temperatures, the validation mean ECE before and after the fit (in sample: the rows it
was fitted on), and the dev test mean ECE and challenge score; then the mean over runs.
Same models, same test clips: the rows differ only in the calibration data.

When the modern-generator set's records exist (`modern-<feature key>` under `--work`,
written by `bench_unseen.py`), each row also gives the mean ECE of both outputs on it
(clean single-voice clips of systems the dev corpus does not contain: fake = 1 / real = 0
for a fake clip, the reverse for a real one). The dev test shares speakers with train and
validation does not, so the dev test alone cannot say whether the validation fit helps on
data unlike the training data; the modern set is that off-domain check.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_unseen  # noqa: E402


def _mean_ece(targets, probs) -> float:
    """Mean over the two outputs of the 10-bin ECE (the challenge's)."""
    from deepwave_tf import metrics

    return sum(metrics.expected_calibration_error(targets[:, k], probs[:, k]) for k in range(2)) / 2


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _mean_or_none(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", action="append", required=True, help="glob of full/seedN dirs")
    parser.add_argument("--passes", default="1,4,8")
    parser.add_argument("--work", type=Path, default=bench_unseen.REPO / "runs" / "unseen")
    parser.add_argument("--data", type=Path, default=bench_unseen.DEV)
    args = parser.parse_args(argv)

    from deepwave_tf import cli

    cli.quiet_tensorflow()
    import keras
    import numpy as np

    import deepwave_tf.model  # noqa: F401  (custom layers)
    from deepwave_tf import calibration, config, export, metrics, protocol
    from deepwave_tf.model import logits_model

    labels = bench_unseen.devtest_labels(args.data)
    passes = [int(p) for p in args.passes.split(",")]
    runs = sorted({Path(p) for pattern in args.runs for p in glob.glob(pattern)})
    if not runs:
        parser.error(f"no run directories match {args.runs}")
    rows, per_pass, raw_test = [], {p: [] for p in passes}, []
    for run in runs:
        cfg = config.load_config(run / "config.toml")
        rec = args.work / "records" / f"full-{bench_unseen.prep_key(cfg)}"
        fkey = bench_unseen.feature_key(cfg)
        test_rec = args.work / "records" / f"devtest-{fkey}"
        for d in (rec, test_rec):
            if not (d / "manifest.json").is_file():
                raise SystemExit(f"{run}: no records at {d} (run bench_unseen.py first)")
        model = keras.saving.load_model(run / "model.keras", compile=False)
        s = protocol.score_split(model, test_rec, "test", cfg)
        y = np.array([labels[i] for i in s["ids"]])
        modern_rec = args.work / "records" / f"modern-{fkey}"
        modern = (
            protocol.score_split(model, modern_rec, "train", cfg)
            if (modern_rec / "manifest.json").is_file()
            and not bench_unseen.evaluation_parts(modern_rec)  # none with copies or views
            else None
        )
        raw = metrics.challenge_score(y, calibration.sigmoid(s["logits"]))
        modern_raw = (
            _mean_ece(modern["targets"], calibration.sigmoid(modern["logits"])) if modern else None
        )
        raw_test.append((raw["mean_ece"], raw["score"], modern_raw))
        rows.append(
            [
                str(run),
                "raw",
                "none / none",
                "",
                "",
                f"{raw['mean_ece']:.4f}",
                f"{raw['score']:.4f}",
                _fmt(modern_raw),
            ]
        )
        for p in passes:
            c = cfg.replace(export=dataclasses.replace(cfg.export, calibration_passes=p))
            z, t, clips = export.calibration_set(logits_model(model), rec, c)
            cal = export.fit_calibration(z, t, c.model.head, c.export, clips)
            probs = calibration.apply_affine(s["logits"], cal.scale, cal.bias)
            sc = metrics.challenge_score(y, probs)
            modern_ece = (
                _mean_ece(
                    modern["targets"],
                    calibration.apply_affine(modern["logits"], cal.scale, cal.bias),
                )
                if modern
                else None
            )
            val_ece = [
                _mean_ece(t, calibration.sigmoid(z)),
                _mean_ece(t, calibration.apply_affine(z, cal.scale, cal.bias)),
            ]
            per_pass[p].append((sc["mean_ece"], sc["score"], *val_ece, modern_ece))
            rows.append(
                [
                    str(run),
                    str(p),
                    " / ".join(o["method"] for o in cal.outputs.values()),
                    " / ".join(f"{x:.2f}" for x in cal.temperatures),
                    f"{val_ece[0]:.4f} -> {val_ece[1]:.4f}",
                    f"{sc['mean_ece']:.4f}",
                    f"{sc['score']:.4f}",
                    _fmt(modern_ece),
                ]
            )
            print(f"{run} passes {p}: ece {sc['mean_ece']:.4f} score {sc['score']:.4f}", flush=True)
    _common.table(
        "Dev test after calibration on validation, per export.calibration_passes",
        [
            "run",
            "passes",
            "kept (fake / real)",
            "T (fake / real)",
            "val mean ECE raw -> after",
            "test mean ECE",
            "test score",
            "modern set mean ECE",
        ],
        rows,
        str,
    )
    summary = {
        str(p): {
            "mean_ece": float(np.mean([r[0] for r in v])),
            "mean_score": float(np.mean([r[1] for r in v])),
            "val_mean_ece_raw": float(np.mean([r[2] for r in v])),
            "val_mean_ece_after": float(np.mean([r[3] for r in v])),
            "modern_mean_ece": _mean_or_none([r[4] for r in v]),
            "runs": len(v),
        }
        for p, v in per_pass.items()
    }
    summary["raw"] = {
        "mean_ece": float(np.mean([r[0] for r in raw_test])),
        "mean_score": float(np.mean([r[1] for r in raw_test])),
        "modern_mean_ece": _mean_or_none([r[2] for r in raw_test]),
        "runs": len(raw_test),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
