"""Benchmark `tune`: the search process's RSS across trials, per isolation mode, and seconds per trial.

    .venv/bin/python benchmarks/bench_tune.py [--trials 10] [--records DIR] [--modes process,inline]

Runs a random search of `--trials` tiny trials (configs/tiny.toml, 2 steps per
epoch, 1 epoch) on records prepped from data/sample (into a temp dir unless
`--records` is given), once with `tune.isolation = "process"` (each trial in a
child process) and once with `"inline"` (every trial in the search process,
Keras session cleared after each). Each mode runs in a fresh Python process,
one after the other. Prints, side by side, the search process's RSS after
every trial, each trial child's peak RSS (process mode), and the seconds per
trial (trial start to end as KerasTuner sees it, so process mode includes the
child's TensorFlow import), plus the load average: timings are noisy on a
shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

MODES = ("process", "inline")


def rss_mb() -> float:
    """Current resident set size of this process, MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def overrides(trials: int, mode: str) -> list[str]:
    return [
        "train.steps_per_epoch=2",
        "train.validation_steps=1",
        "tune.max_epochs=1",
        f"tune.max_trials={trials}",
        "tune.algorithm='random'",
        "tune.lstm_units=[4, 8, 16]",
        "tune.conv_blocks=[1, 2]",
        "tune.conv_filters=[4, 8]",
        f"tune.isolation='{mode}'",
    ]


def one_mode(mode: str, trials: int, records: Path, out: Path) -> None:
    """Run the search in this process and write its per-trial samples to `out` (JSON)."""
    start_rss = rss_mb()
    from deepwave_tf import tune
    from deepwave_tf.config import load_config

    import_rss = rss_mb()
    cfg = load_config(REPO / "configs" / "tiny.toml", overrides(trials, mode))
    samples: list[dict] = []
    base = tune._tuner_class

    def recording_class(algorithm):
        cls = base(algorithm)

        class Recording(cls):
            def on_trial_begin(self, trial):
                super().on_trial_begin(trial)
                self._began = time.perf_counter()

            def on_trial_end(self, trial):
                super().on_trial_end(trial)  # after the inline mode's clear_session
                child = self.trial_processes.get(trial.trial_id, {})
                samples.append(
                    {
                        "trial": trial.trial_id,
                        "status": trial.status,
                        "rss_mb": rss_mb(),
                        "seconds": time.perf_counter() - self._began,
                        "child_peak_rss_mb": child.get("peak_rss_mb"),
                    }
                )

        return Recording

    tune._tuner_class = recording_class
    with tempfile.TemporaryDirectory() as tmp:
        tune.run(cfg, records, Path(tmp) / "search", verbose=0)
    out.write_text(
        json.dumps({"start_rss_mb": start_rss, "import_rss_mb": import_rss, "trials": samples})
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--records", type=Path)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, run in order")
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # internal: one mode
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_mode(args.one, args.trials, args.records, args.out)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            parser.error(f"--modes: {m!r} is not one of {MODES}")

    env = {**os.environ}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results: dict[str, dict] = {}
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        records = args.records
        if records is None:
            from deepwave_tf import prep
            from deepwave_tf.config import load_config

            records = Path(tmp) / "sample"
            cfg = load_config(REPO / "configs" / "tiny.toml")
            prep.run(cfg, REPO / "data" / "sample", records, progress=False)
        for mode in modes:
            out = Path(tmp) / f"{mode}.json"
            cmd = [sys.executable, __file__, "--one", mode, "--trials", str(args.trials)]
            cmd += ["--records", str(records), "--out", str(out)]
            print(f"[bench_tune] {mode}: {args.trials} trials (load average {load()})", flush=True)
            began = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            results[mode] = json.loads(out.read_text())
            results[mode]["total_seconds"] = time.perf_counter() - began
    load_after = load()

    def cell(value, spec: str) -> str:
        return "" if value is None else format(value, spec)

    header, rows = ["trial"], []
    n = max(len(r["trials"]) for r in results.values())
    for mode in modes:
        header += [f"{mode}: search RSS MB"]
        if mode == "process":
            header += ["process: child peak RSS MB"]
        header += [f"{mode}: s/trial"]
    for i in range(n):
        row = [str(i + 1)]
        for mode in modes:
            t = results[mode]["trials"][i] if i < len(results[mode]["trials"]) else {}
            row.append(cell(t.get("rss_mb"), ".0f"))
            if mode == "process":
                row.append(cell(t.get("child_peak_rss_mb"), ".0f"))
            row.append(cell(t.get("seconds"), ".1f"))
        rows.append(row)
    _common.table(
        f"tune: search-process RSS after each of {n} tiny trials, per tune.isolation",
        header,
        rows,
        str,
    )
    print()
    for mode in modes:
        r = results[mode]
        rss = [t["rss_mb"] for t in r["trials"]]
        secs = [t["seconds"] for t in r["trials"]]
        failed = sum(t["status"] != "COMPLETED" for t in r["trials"])
        line = (
            f"- {mode}: RSS {r['start_rss_mb']:.0f} MB at start, {r['import_rss_mb']:.0f} MB "
            f"after imports; trial 1 -> {len(rss)}: {rss[0]:.0f} -> {rss[-1]:.0f} MB "
            f"({(rss[-1] - rss[0]) / max(len(rss) - 1, 1):+.1f} MB/trial); "
            f"{sum(secs) / len(secs):.1f} s/trial mean; {r['total_seconds']:.0f} s in all"
        )
        if mode == "process":
            peaks = [t["child_peak_rss_mb"] for t in r["trials"] if t["child_peak_rss_mb"]]
            if peaks:
                line += f"; child peak RSS {min(peaks):.0f}-{max(peaks):.0f} MB"
        if failed:
            line += f"; {failed} trial(s) not completed"
        print(line)
    cpus = os.cpu_count()
    print(f"- load average (1/5/15 min): {load_before} before, {load_after} after; {cpus} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
