"""Benchmark `tune`: resident memory across trials (must stay flat) and seconds per trial.

    .venv/bin/python benchmarks/bench_tune.py [--trials 10] [--records DIR]

Runs a random search of `--trials` tiny trials (configs/tiny.toml, 2 steps per
epoch, 1 epoch) on records prepped from data/sample (into a temp dir unless
`--records` is given) and prints the process RSS after every trial. The search
clears the Keras session after each trial (`tune._tuner_class`); without that,
every trial's graphs and weights would stay in memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    """Current resident set size of this process, MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--records", type=Path)
    args = parser.parse_args()

    from deepwave_tf import prep, tune
    from deepwave_tf.config import load_config

    overrides = [
        "train.steps_per_epoch=2",
        "train.validation_steps=1",
        "tune.max_epochs=1",
        f"tune.max_trials={args.trials}",
        "tune.algorithm='random'",
        "tune.lstm_units=[4, 8, 16]",
        "tune.conv_blocks=[1, 2]",
        "tune.conv_filters=[4, 8]",
    ]
    cfg = load_config(REPO / "configs" / "tiny.toml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        records = args.records
        if records is None:
            records = Path(tmp) / "sample"
            prep.run(cfg, REPO / "data" / "sample", records, progress=False)
        samples: list[tuple[str, float, float]] = []
        base = tune._tuner_class

        def recording_class(algorithm):
            cls = base(algorithm)

            class Recording(cls):
                def on_trial_end(self, trial):
                    super().on_trial_end(trial)
                    samples.append((trial.trial_id, time.perf_counter(), rss_mb()))

            return Recording

        tune._tuner_class = recording_class
        start_rss, start = rss_mb(), time.perf_counter()
        tune.run(cfg, records, Path(tmp) / "search", verbose=0)

    print(f"\n## tune: RSS after each of {len(samples)} tiny trials (start: {start_rss:.0f} MB)")
    print("| trial | RSS MB | seconds |")
    print("|---|---|---|")
    last = start
    for trial_id, t, rss in samples:
        print(f"| {trial_id} | {rss:.0f} | {t - last:.1f} |")
        last = t
    rss = [s[2] for s in samples]
    if len(rss) >= 4:
        half = len(rss) // 2
        print(
            f"\nRSS growth trial 1 -> {len(rss)}: {rss[-1] - rss[0]:+.0f} MB; "
            f"mean of the last half - mean of the first half: "
            f"{sum(rss[half:]) / (len(rss) - half) - sum(rss[:half]) / half:+.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
