"""`make demo`: the whole job end to end on the embedded sample.

    python -m deepwave_tf.demo --data data/sample --records tfrecords/sample --run-dir runs/demo

Runs the same CLIs a user types, in one process (so TensorFlow is imported once):
prep -> fit -> export -> submit -> evaluate, printing each command first. The
demo outputs (`--records`, `--run-dir`) are rebuilt from scratch on every run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from deepwave_tf.config import CONFIG_DIR


def _step(title: str, module: str, argv: list[str]) -> None:
    import importlib

    print(f"\n=== {title}: python -m deepwave_tf.{module} {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    code = importlib.import_module(f"deepwave_tf.{module}").main(argv)
    if code:
        raise SystemExit(f"demo: step '{module}' failed with exit code {code}")
    print(f"=== {title} done in {time.perf_counter() - start:.1f} s", flush=True)


def latest_export(run_dir: Path) -> Path:
    exports = sorted(p for p in (run_dir / "export").iterdir() if p.is_dir())
    if not exports:
        raise SystemExit(f"demo: no export under {run_dir / 'export'}")
    return exports[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/sample"))
    parser.add_argument("--records", type=Path, default=Path("tfrecords/sample"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--config", type=Path, default=CONFIG_DIR / "tiny.toml")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    for out in (args.records, args.run_dir):
        shutil.rmtree(out, ignore_errors=True)
    config = ["--config", str(args.config)]

    _step("1/5 prep", "prep", ["--data", str(args.data), "--out", str(args.records), *config])
    _step(
        "2/5 fit",
        "fit",
        [
            "--records",
            str(args.records),
            "--run-dir",
            str(args.run_dir),
            *config,
            "--set",
            f"train.epochs={args.epochs}",
        ],
    )
    print(
        f"TensorBoard logs: {args.run_dir / 'tb'}  (open with: .venv/bin/tensorboard --logdir {args.run_dir / 'tb'})"
    )
    _step("3/5 export", "export", ["--run-dir", str(args.run_dir)])
    export_dir = latest_export(args.run_dir)
    submission = args.run_dir / "submission.csv"
    _step(
        "4/5 submit",
        "submit",
        ["--model", str(export_dir), "--data", str(args.data), "--out", str(submission)],
    )
    eval_dir = args.run_dir / "eval"
    _step(
        "5/5 evaluate",
        "evaluate",
        [
            "--model",
            str(export_dir),
            "--data",
            str(args.data),
            "--labels",
            str(args.data / "test_labels.csv"),
            "--out",
            str(eval_dir),
            "--submission",
            str(submission),
        ],
    )
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    print(
        f"  challenge score on {args.data}/test ({metrics.get('n', '?')} clips): "
        f"{metrics['score']:.4f}  (lower is better; a calibrated coin flip scores ~0.31)"
    )
    print(
        "  120 training clips are too few to learn from: this checks the pipeline, not the model."
    )
    print("  README 'Results on the dev corpus' has real scores.")
    print(f"  submission:  {submission}")
    print(f"  SavedModel:  {export_dir}")
    print(f"  metrics and plots: {eval_dir}")
    print(f"  TensorBoard: .venv/bin/tensorboard --logdir {args.run_dir / 'tb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
