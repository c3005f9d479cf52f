"""predict.py and serving.py: windows of long clips, aggregation, inputs, unreadable files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_export import tiny_export_dir

from deepwave_tf import audio, predict, serving
from deepwave_tf.config import FeatureConfig

SR = 32000


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, sample_records, tiny_cfg) -> Path:
    return tiny_export_dir(tmp_path_factory, sample_records, tiny_cfg)


@pytest.fixture(scope="module")
def model(export_dir):
    return serving.load_export(export_dir)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory, sample_dir) -> Path:
    """long.wav (11.5 s), short.flac (16 kHz), nested/clip.ogg, corrupt.ogg, empty.wav, notes.txt."""
    d = tmp_path_factory.mktemp("audio")
    train = sorted((sample_dir / "train").glob("*.ogg"))
    a, _ = sf.read(train[0], dtype="float32")
    b, _ = sf.read(train[1], dtype="float32")
    long = np.concatenate([a, b, a, b, a])[: int(11.5 * SR)]
    assert len(long) == int(11.5 * SR)
    sf.write(d / "long.wav", long, SR, subtype="FLOAT")
    import soxr

    sf.write(d / "short.flac", soxr.resample(a[: 2 * SR], SR, 16000), 16000)
    (d / "nested").mkdir()
    (d / "nested" / "clip.ogg").write_bytes((sample_dir / "test" / "TEST_00120.ogg").read_bytes())
    (d / "corrupt.ogg").write_bytes(b"OggS" + bytes(300))
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("not audio")
    return d


def test_window_starts():
    assert serving.window_starts(100, 160, 80) == [0]  # shorter: one padded window
    assert serving.window_starts(160, 160, 80) == [0]  # exactly one window
    assert serving.window_starts(320, 160, 80) == [0, 80, 160]
    assert serving.window_starts(330, 160, 80) == [0, 80, 160, 170]  # last one ends at the end
    assert serving.window_starts(161, 160, 80) == [0, 1]


def test_windows_pad_like_fix_length():
    import tensorflow as tf

    from deepwave_tf import features

    for pad in ("end", "center"):
        cfg = FeatureConfig(clip_seconds=0.5, pad=pad)
        wav = np.arange(1, 5001, dtype=np.float32)
        got = serving.windows(wav, cfg, hop_seconds=0.25)
        assert got.shape == (1, cfg.num_samples)
        np.testing.assert_array_equal(got[0], features.fix_length(tf.constant(wav), cfg).numpy())
    cfg = FeatureConfig(clip_seconds=0.5)
    wav = np.arange(int(1.2 * SR), dtype=np.float32)
    got = serving.windows(wav, cfg, hop_seconds=0.25)
    assert got.shape == (4, cfg.num_samples)  # starts 0, 0.25, 0.5, 0.7 s
    assert [int(w[0]) for w in got] == [0, 8000, 16000, 22400]
    assert int(got[-1][-1]) == len(wav) - 1


def test_aggregate():
    scores = np.array([[0.1, 0.9], [0.7, 0.3], [0.4, 0.6]])
    np.testing.assert_allclose(serving.aggregate(scores, "max"), [0.7, 0.9])
    np.testing.assert_allclose(serving.aggregate(scores, "mean"), [0.4, 0.6])
    with pytest.raises(ValueError, match="aggregate must be 'max' or 'mean'"):
        serving.aggregate(scores, "median")


def test_long_clip_is_scored_in_windows_and_aggregated(model, audio_dir):
    long = audio_dir / "long.wav"
    (by_max,) = serving.score_files(model, [long], progress=False)
    (by_mean,) = serving.score_files(model, [long], how="mean", progress=False)
    assert by_max.ok and by_max.seconds == pytest.approx(11.5)
    # 5 s windows every 2.5 s: starts 0, 2.5, 5 and 6.5 (= 11.5 - 5) s.
    assert by_max.windows == 4
    wav, _ = sf.read(long, dtype="float32")
    cuts = np.stack([wav[int(s * SR) : int(s * SR) + 5 * SR] for s in (0, 2.5, 5, 6.5)])
    per_window = model(cuts)
    assert (by_max.fake, by_max.real) == pytest.approx(tuple(per_window.max(axis=0)), abs=1e-6)
    assert (by_mean.fake, by_mean.real) == pytest.approx(tuple(per_window.mean(axis=0)), abs=1e-6)
    assert np.ptp(per_window[:, 0]) > 0  # the windows really differ
    (hop5,) = serving.score_files(model, [long], hop_seconds=5.0, progress=False)
    assert hop5.windows == 3  # starts 0, 5, 6.5 s


def test_predict_windows_csv_is_the_timeline(export_dir, audio_dir, tmp_path, model):
    out = tmp_path / "windows.csv"
    scores = predict.run(
        export_dir,
        [audio_dir / "long.wav", audio_dir / "short.flac"],
        windows_out=out,
        progress=False,
    )
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "start_s", "end_s", "fake", "real"]
    long_rows = [r for r in rows if r["path"].endswith("long.wav")]
    assert [(r["start_s"], r["end_s"]) for r in long_rows] == [
        ("0.000", "5.000"),
        ("2.500", "7.500"),
        ("5.000", "10.000"),
        ("6.500", "11.500"),
    ]
    assert [(r["start_s"], r["end_s"]) for r in rows if r["path"].endswith("short.flac")] == [
        ("0.000", "2.000")
    ]
    # The file's score is the max over its windows, and equals serving_default on the whole file.
    fake = [float(r["fake"]) for r in long_rows]
    assert scores[0].fake == max(fake)
    wav, _ = sf.read(audio_dir / "long.wav", dtype="float32")
    assert model(wav[None])[0] == pytest.approx([scores[0].fake, scores[0].real], abs=1e-6)


def test_expand_inputs(audio_dir, tmp_path, sample_dir):
    files = predict.expand_inputs([audio_dir])
    assert [p.relative_to(audio_dir).as_posix() for p in files] == [
        "corrupt.ogg",
        "empty.wav",
        "long.wav",
        "nested/clip.ogg",
        "short.flac",
    ]
    listed = predict.expand_inputs([sample_dir / "test.csv"])
    assert len(listed) == 40 and listed[0] == sample_dir / "./test/TEST_00120.ogg"
    (tmp_path / "bad.csv").write_text("file\nx.wav\n")
    with pytest.raises(
        predict.PredictError, match=r"bad.csv has no 'path' column \(columns: file\)"
    ):
        predict.expand_inputs([tmp_path / "bad.csv"])
    (tmp_path / "quiet").mkdir()
    with pytest.raises(predict.PredictError, match="holds no audio files"):
        predict.expand_inputs([tmp_path / "quiet"])
    assert predict.expand_inputs([tmp_path / "missing.wav"]) == [tmp_path / "missing.wav"]


def test_predict_cli_table_csv_and_failures(export_dir, audio_dir, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code = predict.main(
        [
            "--model",
            str(export_dir.parent.parent),
            str(audio_dir),
            str(tmp_path / "gone.ogg"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 1  # some files could not be read
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0].split() == ["path", "seconds", "windows", "fake", "real"]
    row = next(line for line in table if line.startswith(str(audio_dir / "short.flac")))
    assert row.split()[1:3] == ["2.00", "1"]  # resampled from 16 kHz, one padded window
    assert "3 of 6 files scored" in captured.out
    assert predict.PROBABILITIES_NOTE in captured.out  # fake and real are independent
    assert (
        "skipped 1 non-audio file found in the directories (.txt); --list-skipped" in captured.out
    )
    assert "warning:" not in captured.err  # 16 kHz is not below 16 kHz
    assert "3 files could not be read:" in captured.err
    assert f"{tmp_path / 'gone.ogg'}: file not found" in captured.err
    assert f"{audio_dir / 'empty.wav'}: empty file (0 bytes)" in captured.err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "seconds", "windows", "fake", "real", "error"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["long.wav"]["windows"] == "4" and by_name["long.wav"]["error"] == ""
    assert 0 <= float(by_name["clip.ogg"]["fake"]) <= 1
    assert by_name["corrupt.ogg"]["fake"] == "" and by_name["corrupt.ogg"]["error"]
    assert by_name["gone.ogg"]["error"] == "file not found"


def test_predict_scores_equal_submission_path(model, sample_dir):
    """A 5 s test clip: predict's windowing is one plain serving_default call."""
    import tensorflow as tf

    from deepwave_tf import audio

    path = sample_dir / "test" / "TEST_00120.ogg"
    (score,) = serving.score_files(model, [path], progress=False)
    wav = audio.load(path, SR)
    out = model._serve(waveform=tf.constant(wav[None]))
    assert score.windows == 1
    assert (score.fake, score.real) == pytest.approx(
        (out["fake"].numpy()[0], out["real"].numpy()[0]), abs=1e-7
    )


def test_resolve_export_dir(export_dir, tmp_path):
    run_dir = export_dir.parent.parent
    assert serving.resolve_export_dir(run_dir) == export_dir
    assert serving.resolve_export_dir(run_dir / "export") == export_dir
    assert serving.resolve_export_dir(export_dir) == export_dir
    with pytest.raises(serving.ExportError, match="model not found"):
        serving.resolve_export_dir(tmp_path / "nothing")
    with pytest.raises(serving.ExportError, match="is not a SavedModel export"):
        serving.resolve_export_dir(tmp_path)
    assert predict.main(["--model", str(tmp_path), str(tmp_path)]) == 2


def test_predict_keeps_csv_columns_applies_set_and_warns_on_low_rates(
    export_dir, model, audio_dir, tmp_path, capsys
):
    """Issue 12: --config/--set on predict, input csv columns in --out, 8 kHz warning, grammar."""
    import soxr

    wav, _ = sf.read(audio_dir / "long.wav", dtype="float32")
    narrow = tmp_path / "phone.wav"
    sf.write(narrow, soxr.resample(wav[: 3 * SR], SR, 8000), 8000)
    listing = tmp_path / "list.csv"
    listing.write_text(
        f"id,path,label,fake\nA1,{audio_dir / 'long.wav'},real,0\nA2,phone.wav,fake,1\n"
    )
    export_toml = tmp_path / "export.toml"
    export_toml.write_text('[export]\naggregate = "max"\nwindow_hop_seconds = 5.0\n')
    out = tmp_path / "preds.csv"
    argv = ["--model", str(export_dir), str(listing), "--out", str(out), "--no-progress"]
    argv += ["--config", str(export_toml), "--set", "export.aggregate=mean"]
    assert predict.main(argv) == 0
    captured = capsys.readouterr()
    assert "2 of 2 files scored" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {audio.low_rate_warning(narrow, 8000)}"]
    assert "8000 Hz audio (below 16 kHz)" in warnings[0]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "label", "input_fake", *predict.OUT_COLUMNS]
    assert [(r["id"], r["label"], r["input_fake"]) for r in rows] == [
        ("A1", "real", "0"),
        ("A2", "fake", "1"),
    ]
    # --set (mean) beat --config (max); the hop of --config (5 s) was used: 3 windows.
    (expected,) = serving.score_files(
        model, [audio_dir / "long.wav"], how="mean", hop_seconds=5.0, progress=False
    )
    assert rows[0]["windows"] == "3"
    assert float(rows[0]["fake"]) == pytest.approx(expected.fake, abs=1e-6)

    # One file: "1 of 1 file"; --list-skipped names what a directory scan left out.
    one = tmp_path / "one"
    one.mkdir()
    (one / "clip.wav").write_bytes((audio_dir / "long.wav").read_bytes())
    (one / "readme.md").write_text("notes")
    assert (
        predict.main(["--model", str(export_dir), str(one), "--no-progress", "--list-skipped"]) == 0
    )
    printed = capsys.readouterr().out
    assert "1 of 1 file scored\n" in printed
    assert "skipped 1 non-audio file found in the directories (.md)\n" in printed
    assert f"  skipped: {one / 'readme.md'}\n" in printed

    # Config errors come before the model loads, and name their origin.
    assert (
        predict.main(["--model", str(export_dir), str(one), "--set", "export.aggregat=mean"]) == 2
    )
    assert "'export.aggregat' given with --set" in capsys.readouterr().err
    assert predict.main(["--model", str(export_dir), str(one), "--set", "model.dropout=0"]) == 2
    assert "only export.* can be changed when scoring" in capsys.readouterr().err
