"""Rebuild data/sample/ from the shared dev corpus (deterministic; seed 1125).

    python scripts/make_sample.py ../shared/data/deepwave-dev data/sample

Picks ~120 train clips balanced real/fake, spread over sources, generators and
speakers (one clip per speaker/voice first), and 40 test clips stratified by
condition, and copies them with the csv files in the challenge layout.
"""

import shutil
import sys
from pathlib import Path

import pandas as pd

SEED = 1125
REAL_PER_SOURCE = {"librispeech": 34, "asterisk-en": 18, "ljspeech": 8}
FAKE_PER_GENERATOR = 6
TEST_PER_CONDITION = {
    "single_real": 8,
    "single_fake": 8,
    "real+fake": 8,
    "fake+fake": 4,
    "real+real": 4,
    "noise": 4,
    "silence": 4,
}


def spread(frame: pd.DataFrame, n: int, column: str) -> pd.DataFrame:
    """n rows, one per distinct `column` value first, then the rest at random."""
    shuffled = frame.sample(frac=1.0, random_state=SEED)
    firsts = shuffled.drop_duplicates(column)
    picked = firsts.head(n)
    if len(picked) < n:
        rest = shuffled.drop(picked.index).head(n - len(picked))
        picked = pd.concat([picked, rest])
    return picked


def main(src: Path, dst: Path) -> None:
    meta = pd.read_csv(src / "meta.csv")
    train_meta = meta[meta.split == "train"]
    parts = [
        spread(train_meta[train_meta.source == s], n, "speaker_or_voice")
        for s, n in REAL_PER_SOURCE.items()
    ]
    fakes = train_meta[train_meta.label == "fake"]
    parts += [
        spread(fakes[fakes.generator == g], FAKE_PER_GENERATOR, "speaker_or_voice")
        for g in sorted(fakes.generator.unique())
    ]
    train_ids = pd.concat(parts).id
    test_meta = meta[meta.split == "test"]
    test_ids = pd.concat(
        [
            test_meta[test_meta.label == c].sample(n, random_state=SEED)
            for c, n in TEST_PER_CONDITION.items()
        ]
    ).id

    if dst.exists():
        for sub in ("train", "test"):
            shutil.rmtree(dst / sub, ignore_errors=True)
    (dst / "train").mkdir(parents=True, exist_ok=True)
    (dst / "test").mkdir(parents=True, exist_ok=True)
    tables = {
        "train.csv": pd.read_csv(src / "train.csv"),
        "test.csv": pd.read_csv(src / "test.csv"),
        "test_labels.csv": pd.read_csv(src / "test_labels.csv"),
        "meta.csv": meta,
    }
    keep = set(train_ids) | set(test_ids)
    for name, table in tables.items():
        table[table.id.isin(keep)].sort_values("id").to_csv(dst / name, index=False)
    for table in (tables["train.csv"], tables["test.csv"]):
        for rel in table[table.id.isin(keep)].path:
            shutil.copy2(src / rel, dst / rel)
    print(f"{len(train_ids)} train + {len(test_ids)} test clips -> {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
