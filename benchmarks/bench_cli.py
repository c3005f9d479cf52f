"""How long `python -m deepwave_tf.X --help` takes per command (wall seconds, fresh processes).

    python benchmarks/bench_cli.py [--repeats 3] [--repo DIR]

`--repo` times another checkout (e.g. main, for a before/after comparison).

A command should answer `--help` and usage errors without importing
TensorFlow (`deepwave_tf/cli.py`); this prints the figures, and whether
TensorFlow was imported by importing the module at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("prep", "fit", "tune", "export", "predict", "submit", "evaluate")


def _env(repo: Path = REPO) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo)}


def help_seconds(command: str, repo: Path = REPO) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"deepwave_tf.{command}", "--help"],
        stdout=subprocess.DEVNULL,
        check=True,
        env=_env(repo),
        cwd=repo,
    )
    return time.perf_counter() - start


def imports_tensorflow(command: str, repo: Path = REPO) -> bool:
    code = f"import sys, deepwave_tf.{command}; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(repo), cwd=repo
    )
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to time")
    args = parser.parse_args()
    print(f"checkout: {args.repo}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    baseline = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - start)
    print(
        f"{'python -c pass':<28} {min(baseline):6.2f} s min  {statistics.median(baseline):6.2f} s median"
    )
    for command in COMMANDS:
        times = [help_seconds(command, args.repo) for _ in range(args.repeats)]
        tf = "imports TensorFlow" if imports_tensorflow(command, args.repo) else "no TensorFlow"
        print(
            f"{'deepwave_tf.' + command + ' --help':<28} {min(times):6.2f} s min  "
            f"{statistics.median(times):6.2f} s median  ({tf} on import)"
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
