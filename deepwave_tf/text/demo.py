"""`make demo-text`: the text model end to end on the embedded sample.

    python -m deepwave_tf.text.demo --data data/text_sample --run-dir runs/demo-text

Runs the CLIs a user types, in one process (TensorFlow is imported once):
fit on `train.csv` with `vectors.vec` -> export -> evaluate on the held-out
`test.csv` -> predict a few new sentences, printing each command first. The run
directory is rebuilt from scratch on every run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from deepwave_tf.demo import _step
from deepwave_tf.text.config import DEFAULT_CONFIG

NEW_TEXTS = (
    "To leave a message, press one.",
    "Your call cannot be completed as dialed.",
    "The wind rose and the old ship groaned in the dark.",
    "She laughed and shut the door behind her.",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/text_sample"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/demo-text"))
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    shutil.rmtree(args.run_dir, ignore_errors=True)
    run = ["--run-dir", str(args.run_dir)]
    _step(
        "1/4 fit",
        "text.fit",
        [
            "--data",
            str(args.data / "train.csv"),
            "--vectors",
            str(args.data / "vectors.vec"),
            *run,
            "--config",
            str(args.config),
        ],
    )
    _step("2/4 export", "text.export", run)
    _step(
        "3/4 evaluate (held-out test.csv)",
        "text.evaluate",
        [*run, "--data", str(args.data / "test.csv")],
    )
    _step("4/4 predict", "text.predict", ["--model", str(args.run_dir), *NEW_TEXTS])
    print(f"\ntext demo done in {time.perf_counter() - start:.1f} s: {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
