"""Spectrograms of every waveform augmentation on one clip, to look at what each one does.

    python scripts/plot_wavaug.py [--clip data/sample/train/TRAIN_00002.ogg] [--seed 0] [--out wavaug.png]

One PNG: the clean clip on top, then each augmentation in `wavaug.AUGMENTS` and
three `random_chain` draws, as log-power spectrograms (0-16 kHz, 80 dB range).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=REPO / "data/sample/train/TRAIN_00002.ogg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("wavaug.png"))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import signal

    from deepwave_tf import audio, wavaug

    rate = 32000
    x = audio.load_soundfile(args.clip, rate)[: 5 * rate]
    panels = [("clean", x)]
    for name, why in wavaug.available().items():
        if why is None:
            panels.append((name, wavaug.AUGMENTS[name](x, rate, np.random.default_rng(args.seed))))
    for k in range(3):
        y, names = wavaug.random_chain(x, rate, np.random.default_rng(args.seed + 100 + k))
        panels.append(("chain: " + " > ".join(names), y))

    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 2.2 * rows), squeeze=False)
    for ax, (title, y) in zip(axes.flat, panels):
        f, t, s = signal.spectrogram(y, rate, nperseg=1024, noverlap=768)
        db = 10 * np.log10(s + 1e-12)
        ax.pcolormesh(t, f / 1000, db, vmin=db.max() - 80, vmax=db.max(), shading="auto")
        ax.set_title(
            f"{title}  (peak {np.max(np.abs(y)):.2f}, rms {20 * np.log10(np.std(y) + 1e-12):.0f} dBFS)",
            fontsize=8,
        )
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
