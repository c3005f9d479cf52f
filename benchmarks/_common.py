"""Helpers shared by the benchmark scripts (run as `python benchmarks/bench_*.py`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def table(title: str, header: list[str], rows: list[list], fmt: Callable[[object], str]) -> None:
    """Print a Markdown table; non-string cells go through `fmt`."""
    cells = [header] + [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for k, r in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    sys.stdout.flush()


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its waited-for children (codec2 forks)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
