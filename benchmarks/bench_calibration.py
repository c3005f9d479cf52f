"""Calibration methods side by side on one trained run: validation and test ECE / Brier / score.

    .venv/bin/python benchmarks/bench_calibration.py --run-dir runs/demo --records tfrecords/sample \
        --data data/sample [--set export.calibration_min_clips=10] [--methods auto,none,temperature,platt]
        [--passes 1,4]

For each `export.calibration` in `--methods` the run is exported again (into a
temporary directory, the run's own exports are left alone) with that method and
the `--set` overrides, then `evaluate` scores the export on `--data`'s test clips
against `--data/test_labels.csv`. One table: the method kept per output (fake /
real), on validation the mean ECE before -> after (from the export's metadata),
and on test the mean ECE, mean Brier and challenge score before -> after
calibration. Same model, same clips, one process: the rows compare only the
calibration.

`--passes 1,4` repeats the table for each `export.calibration_passes` (how many
differently mixed passes over the validation split the fit sees).

`make demo` trains on 108 clips and validates on 12: below the default guard
(100 clips) every method keeps `none`; `--set export.calibration_min_clips=10`
shows what the unguarded fits would have done.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--records", type=Path, default=None, help="default: the run's records")
    parser.add_argument("--data", type=Path, required=True, help="test.csv, test_labels.csv")
    parser.add_argument("--methods", default="auto,none,temperature,platt")
    parser.add_argument(
        "--passes",
        default="",
        help="comma list of export.calibration_passes to compare (default: the config's)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    from deepwave_tf import cli

    cli.quiet_tensorflow()
    from deepwave_tf import evaluate, export, serving

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = [
            (method, passes)
            for passes in (args.passes.split(",") if args.passes else [""])
            for method in args.methods.split(",")
        ]
        for method, passes in variants:
            start = time.perf_counter()
            label = method + (f", {passes} passes" if passes else "")
            tag = f"{method}-{passes or 'cfg'}"
            out = export.run(
                args.run_dir,
                out_dir=Path(tmp) / tag,
                records=args.records,
                overrides=[
                    f"export.calibration={method}",
                    *([f"export.calibration_passes={passes}"] if passes else []),
                    *args.overrides,
                ],
                verbose=False,
            )
            meta = serving.read_metadata(out)["calibration"]
            result = evaluate.run(
                args.data,
                args.data / "test_labels.csv",
                Path(tmp) / f"eval-{tag}",
                model=out,
                progress=False,
                plots=False,
            )
            c = result["calibration"]
            val = meta["metrics"]
            val_before = sum(v["before"]["ece"] for v in val.values()) / len(val)
            val_after = sum(v["after"]["ece"] for v in val.values()) / len(val)
            kept = "/".join(
                f"{o['method']}"
                + (
                    ""
                    if o["method"] == "none"
                    else f" (T {o['temperature']:.2f}, b {o['bias']:+.2f})"
                )
                for o in meta["outputs"].values()
            )
            rows.append(
                [
                    label,
                    kept,
                    f"{meta['n_val']}",
                    f"{val_before:.4f} -> {val_after:.4f}",
                    f"{c['mean_ece']['before']:.4f} -> {c['mean_ece']['after']:.4f}",
                    f"{c['mean_brier']['before']:.4f} -> {c['mean_brier']['after']:.4f}",
                    f"{result['uncalibrated']['score']:.4f} -> {result['score']:.4f}",
                    f"{time.perf_counter() - start:.0f}",
                ]
            )
            for w in meta["warnings"]:
                print(f"[{label}] warning: {w}", flush=True)
    _common.table(
        f"Calibration of {args.run_dir} (test: {args.data}, {result['n']} clips; "
        f"overrides: {' '.join(args.overrides) or 'none'})",
        [
            "export.calibration",
            "kept (fake / real)",
            "val clips",
            "val mean ECE",
            "test mean ECE",
            "test mean Brier",
            "test score",
            "s",
        ],
        rows,
        str,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
