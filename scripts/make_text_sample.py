"""Build the embedded text sample `data/text_sample/` from the two shared text lists.

    python scripts/make_text_sample.py --texts ../shared/data/texts --out data/text_sample

Class `book`: sentences of the CMU ARCTIC prompt list (`cmuarctic.data`, from
out-of-copyright Project Gutenberg books). Class `prompt`: transcripts of the
Asterisk core sound prompts, English (`core-sounds-en.txt`, CC-BY-SA-3.0).
Both lists are cleaned the same way: bracketed stage directions (`[ascending
tones]`) removed, whitespace collapsed, texts of fewer than `--min-words`
words dropped (the Asterisk list is mostly single words, digits and letters),
case-insensitive duplicates dropped. The classes are balanced by a seeded
sample of the larger one, and each class is split into train/test by a seeded
permutation, so a text is in exactly one file.

Writes `train.csv` and `test.csv` (`text,label`, shuffled), and
`vectors.vec`: fastText-format word vectors (`COUNT DIM` header, then `word
v1 ... vDIM` per row) trained with gensim's FastText on the *train* texts only
(the test texts never reach the vectors), rounded to 4 decimals to stay small.
Tokens follow Keras `TextVectorization`'s default standardisation (lower case,
punctuation stripped, split on whitespace), so they match the model's vocabulary.
gensim is a build-only dependency (`pip install -e '.[build]'`); deepwave_tf never imports it.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import zlib
from pathlib import Path

LABELS = ("book", "prompt")
# keras.layers.TextVectorization's DEFAULT_STRIP_REGEX.
STRIP = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
ARCTIC_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


def clean(text: str) -> str:
    text = re.sub(r"\[[^\]]*\]", " ", text)
    return " ".join(text.split())


def read_arctic(path: Path) -> list[str]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = ARCTIC_LINE.match(line)
        if m is None:
            raise SystemExit(f"{path}:{lineno}: not a '( id \"text\" )' line: {line!r}")
        out.append(clean(m.group(2)))
    return out


def read_asterisk(path: Path) -> list[str]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";"):
            continue
        if ": " not in line:
            raise SystemExit(f"{path}:{lineno}: not a 'name: text' line: {line!r}")
        out.append(clean(line.split(": ", 1)[1]))
    return out


def keep(texts: list[str], min_words: int) -> list[str]:
    seen, out = set(), []
    for t in texts:
        key = t.lower()
        if len(t.split()) >= min_words and key not in seen:
            seen.add(key)
            out.append(t)
    return out


def tokens(text: str) -> list[str]:
    return STRIP.sub("", text.lower()).split()


def stable_hash(word: str) -> int:
    # gensim seeds each word's vector with hash(word + seed): Python's str hash
    # changes per process unless PYTHONHASHSEED is set, crc32 does not.
    return zlib.crc32(word.encode("utf-8"))


def write_vectors(path: Path, texts: list[str], dim: int, min_count: int, seed: int) -> int:
    from gensim.models import FastText

    sentences = [tokens(t) for t in texts]
    model = FastText(
        sentences=sentences,
        vector_size=dim,
        window=5,
        min_count=min_count,
        sg=1,
        epochs=40,
        workers=1,  # one worker: the same vectors every build
        seed=seed,
        hashfxn=stable_hash,
    )
    words = list(model.wv.index_to_key)  # most frequent first, like fastText's files
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(f"{len(words)} {dim}\n")
        for w in words:
            f.write(w + " " + " ".join(f"{v:.4f}" for v in model.wv[w]) + "\n")
    return len(words)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=Path, default=Path("../shared/data/texts"))
    parser.add_argument("--out", type=Path, default=Path("data/text_sample"))
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--dim", type=int, default=16, help="word vector dimension")
    parser.add_argument("--min-count", type=int, default=2, help="rarer train words get no vector")
    parser.add_argument("--seed", type=int, default=1125)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    classes = {
        "book": keep(read_arctic(args.texts / "cmuarctic.data"), args.min_words),
        "prompt": keep(read_asterisk(args.texts / "core-sounds-en.txt"), args.min_words),
    }
    per_class = min(len(v) for v in classes.values())
    train, test = [], []
    for label in LABELS:
        texts = classes[label]
        texts = rng.sample(texts, per_class)  # a seeded sample, in random order
        n_test = round(args.test_fraction * per_class)
        test += [(t, label) for t in texts[:n_test]]
        train += [(t, label) for t in texts[n_test:]]
    rng.shuffle(train)
    rng.shuffle(test)

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "train.csv", train)
    write_csv(args.out / "test.csv", test)
    n_words = write_vectors(
        args.out / "vectors.vec", [t for t, _ in train], args.dim, args.min_count, args.seed
    )
    print(
        f"{per_class} texts per class ({', '.join(f'{k}: {len(v)} usable' for k, v in classes.items())}); "
        f"train {len(train)}, test {len(test)}; vectors.vec: {n_words} words x {args.dim}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
