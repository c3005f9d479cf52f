"""submit.py: order and ids of the submission, unreadable clips and --fill, --check messages."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from test_export import tiny_export_dir

from deepwave_tf import audio, submit


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, sample_records, tiny_cfg) -> Path:
    return tiny_export_dir(tmp_path_factory, sample_records, tiny_cfg)


@pytest.fixture(scope="module")
def submission(export_dir, sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("submit") / "submission.csv"
    result = submit.run(export_dir, sample_dir, out, progress=False)
    assert result.exit_code == 0 and result.out == out and result.errors == []
    return out


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def sample_ids(sample_dir) -> list[str]:
    return [r[0] for r in read_rows(sample_dir / "test.csv")[1:]]


def test_submission_has_test_csv_ids_in_order(submission, sample_dir):
    rows = read_rows(submission)
    assert rows[0] == ["id", "fake", "real"]
    assert [r[0] for r in rows[1:]] == sample_ids(sample_dir)
    assert len(rows) == 41
    values = [float(v) for r in rows[1:] for v in r[1:]]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert len(set(values)) > 40  # real scores, not a constant
    assert submit.check_submission(submission, sample_dir) == []


def test_submission_matches_serving_default_per_clip(submission, export_dir, sample_dir):
    """Batched tf.data scoring = one serving_default call per decoded clip."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    rows = {r[0]: (float(r[1]), float(r[2])) for r in read_rows(submission)[1:]}
    for clip_id in sample_ids(sample_dir)[:3]:
        wav = audio.load(sample_dir / "test" / f"{clip_id}.ogg", 32000)
        out = loaded.signatures["serving_default"](waveform=tf.constant(wav[None]))
        assert rows[clip_id] == pytest.approx(
            (out["fake"].numpy()[0], out["real"].numpy()[0]), abs=1e-6
        )


@pytest.fixture
def broken_data(sample_dir, tmp_path) -> Path:
    """A copy of the sample's test set with one corrupt and one missing clip."""
    data = tmp_path / "data"
    shutil.copytree(sample_dir / "test", data / "test")
    shutil.copy(sample_dir / "test.csv", data / "test.csv")
    ids = sample_ids(sample_dir)
    (data / "test" / f"{ids[3]}.ogg").write_bytes(b"OggS" + bytes(500))
    (data / "test" / f"{ids[7]}.ogg").unlink()
    return data


def test_missing_paths_are_refused_before_anything_is_scored(
    export_dir, broken_data, sample_dir, tmp_path, capsys, monkeypatch
):
    """Issue 12, item 3: a missing path is found before 600 clips are scored, not after."""
    from deepwave_tf import serving

    ids = sample_ids(sample_dir)
    out = tmp_path / "sub.csv"
    monkeypatch.setattr(serving, "score_files", lambda *a, **k: pytest.fail("scored anyway"))
    monkeypatch.setattr(serving, "load_export", lambda *a, **k: pytest.fail("loaded the model"))
    code = submit.main(
        ["--model", str(export_dir), "--data", str(broken_data), "--out", str(out), "--no-progress"]
    )
    assert code == 1
    assert not out.exists()
    err = capsys.readouterr().err
    missing = broken_data / "test" / f"{ids[7]}.ogg"
    assert f"unreadable: {ids[7]} ({missing}): file not found\n" in err
    assert "1 of 40 test clips are missing or unreadable (listed above); nothing was scored" in err
    assert "pass --fill VALUE" in err
    (broken_data / "test" / f"{ids[9]}.ogg").write_bytes(b"")
    with pytest.raises(submit.SubmitError, match=r"2 of 40 test clips are missing or unreadable"):
        submit.score_test_set(export_dir, broken_data)  # evaluate's path: the same check


def test_decode_failures_come_in_one_pass_and_the_rerun_reuses_the_scores(
    export_dir, broken_data, submission, sample_dir, tmp_path, capsys, monkeypatch
):
    """Unreadable clips are all reported after one pass; --fill then decodes nothing again."""
    from deepwave_tf import serving

    ids = sample_ids(sample_dir)
    shutil.copy(sample_dir / "test" / f"{ids[7]}.ogg", broken_data / "test" / f"{ids[7]}.ogg")
    (broken_data / "test" / f"{ids[5]}.ogg").write_bytes(b"OggS" + bytes(900))
    out = tmp_path / "sub.csv"
    argv = ["--model", str(export_dir), "--data", str(broken_data), "--out", str(out)]
    assert submit.main([*argv, "--no-progress"]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    saved = submit.partial_path(out)
    for i in (3, 5):
        assert f"unreadable: {ids[i]} ({broken_data / 'test' / f'{ids[i]}.ogg'}): " in err
    assert "2 of 40 test clips could not be read; not writing" in err
    assert f"The scores of the other 38 are saved in {saved}" in err
    assert saved.is_file()

    calls = []
    real_score_files = serving.score_files

    def counting(model, paths, **kwargs):
        calls.append([Path(p).name for p in paths])
        return real_score_files(model, paths, **kwargs)

    monkeypatch.setattr(serving, "score_files", counting)
    changed = broken_data / "test" / f"{ids[0]}.ogg"
    changed.write_bytes(changed.read_bytes())  # same audio, new mtime: scored again
    assert submit.main([*argv, "--no-progress", "--fill", "0.5"]) == 0
    assert calls == [[f"{ids[0]}.ogg"]]  # nothing else decoded a second time
    assert "reusing saved results of 39 clips" in capsys.readouterr().err
    assert not saved.exists()
    filled = {r[0]: r[1:] for r in read_rows(out)[1:]}
    normal = {r[0]: r[1:] for r in read_rows(submission)[1:]}
    assert list(filled) == ids
    assert filled[ids[3]] == filled[ids[5]] == ["0.5", "0.5"]
    for i in ids:
        if i not in (ids[3], ids[5]):
            assert [float(v) for v in filled[i]] == pytest.approx(
                [float(v) for v in normal[i]], abs=1e-6
            )


def test_fill_writes_the_value_only_for_unreadable_clips(
    export_dir, broken_data, submission, sample_dir, tmp_path
):
    ids = sample_ids(sample_dir)
    out = tmp_path / "filled.csv"
    result = submit.run(export_dir, broken_data, out, fill=0.5, progress=False)
    assert result.exit_code == 0 and result.filled == 2
    assert [e[0] for e in result.errors] == [ids[3], ids[7]]
    filled = {r[0]: r[1:] for r in read_rows(out)[1:]}
    normal = {r[0]: r[1:] for r in read_rows(submission)[1:]}
    assert list(filled) == ids
    assert filled[ids[3]] == filled[ids[7]] == ["0.5", "0.5"]
    for i in ids:
        if i not in (ids[3], ids[7]):
            assert [float(v) for v in filled[i]] == pytest.approx(
                [float(v) for v in normal[i]], abs=1e-6
            )
    assert submit.check_submission(out, broken_data) == []
    with pytest.raises(
        submit.SubmitError, match=r"--fill must be a probability in \[0, 1\], got 1.5"
    ):
        submit.run(export_dir, broken_data, out, fill=1.5, progress=False)


def test_test_csv_problems_are_named(tmp_path, capsys, export_dir):
    (tmp_path / "test.csv").write_text("id,file\nTEST_1,./test/a.ogg\n")
    with pytest.raises(
        submit.SubmitError, match=r"has no 'path' column \(columns: id, file; expected id,path\)"
    ):
        submit.read_test_csv(tmp_path)
    code = submit.main(
        ["--model", str(export_dir), "--data", str(tmp_path), "--out", str(tmp_path / "s.csv")]
    )
    assert code == 2
    assert "error: " in capsys.readouterr().err
    (tmp_path / "test.csv").write_text("id,path\nTEST_1,a.ogg\nTEST_1,b.ogg\n")
    with pytest.raises(submit.SubmitError, match="line 3: id TEST_1 repeats line 2"):
        submit.read_test_csv(tmp_path)
    with pytest.raises(submit.SubmitError, match="test.csv not found"):
        submit.read_test_csv(tmp_path / "nowhere")


# --------------------------------------------------------------------------- #
# --check
# --------------------------------------------------------------------------- #
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def good_rows(sample_dir) -> list[str]:
    return [f"{i},0.25,0.75" for i in sample_ids(sample_dir)]


def test_check_accepts_valid_submission(tmp_path, sample_dir, good_rows, capsys):
    path = write(tmp_path / "ok.csv", "id,fake,real\n" + "\n".join(reversed(good_rows)) + "\n")
    assert submit.check_submission(path, sample_dir) == []  # row order is free
    assert submit.main(["--check", str(path), "--data", str(sample_dir)]) == 0
    assert "valid against" in capsys.readouterr().out


@pytest.mark.parametrize(
    "header, edit, expected",
    [
        (
            "id,real,fake",
            None,
            "columns are in the order id,real,fake; expected id,fake,real in that order",
        ),
        ("id,fake", None, "missing column(s) real (header: id,fake)"),
        ("id,fake,real,extra", None, "unexpected column(s) extra (expected exactly id,fake,real)"),
        (
            "id,fake,real",
            lambda rows: rows + [rows[0]],
            "1 ids appear more than once: TEST_00120 (2 times)",
        ),
        (
            "id,fake,real",
            lambda rows: rows[2:],
            "2 ids of {test_csv} are missing: TEST_00120, TEST_00133",
        ),
        (
            "id,fake,real",
            lambda rows: rows + ["TEST_99999,0.1,0.1"],
            "1 ids are not in {test_csv}: TEST_99999",
        ),
        (
            "id,fake,real",
            lambda rows: [rows[0].replace("0.25", "nan")] + rows[1:],
            "column fake has 1 NaN values: line 2 (TEST_00120)",
        ),
        (
            "id,fake,real",
            lambda rows: [rows[0].replace("0.75", "")] + rows[1:],
            "column real has 1 empty values: line 2 (TEST_00120)",
        ),
        (
            "id,fake,real",
            lambda rows: [rows[0].replace("0.75", "1.2")] + rows[1:],
            "column real has 1 values outside [0, 1]: line 2 (TEST_00120): 1.2",
        ),
        (
            "id,fake,real",
            lambda rows: [rows[0].replace("0.25", "-0.01")] + rows[1:],
            "column fake has 1 values outside [0, 1]: line 2 (TEST_00120): -0.01",
        ),
        (
            "id,fake,real",
            lambda rows: [rows[0].replace("0.25", "high")] + rows[1:],
            "column fake has 1 non-numeric values: line 2 (TEST_00120): 'high'",
        ),
    ],
)
def test_check_names_each_problem(tmp_path, sample_dir, good_rows, capsys, header, edit, expected):
    rows = good_rows  # for "id,real,fake" only the header changes
    if header == "id,fake":
        rows = [r.rsplit(",", 1)[0] for r in rows]
    elif header.endswith(",extra"):
        rows = [r + ",x" for r in rows]
    if edit is not None:
        rows = edit(rows)
    path = write(tmp_path / "sub.csv", header + "\n" + "".join(r + "\n" for r in rows))
    expected = expected.format(test_csv=sample_dir / "test.csv")
    problems = submit.check_submission(path, sample_dir)
    assert len(problems) == 1, problems
    assert problems[0] == f"{path}: {expected}"
    assert submit.main(["--check", str(path), "--data", str(sample_dir)]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}: {expected}" in err
    assert "INVALID (1 problem)" in err


def test_check_reports_every_problem_at_once(tmp_path, sample_dir, good_rows):
    rows = (
        [good_rows[0].replace("0.25", "nan").replace("0.75", "2")] + good_rows[2:] + [good_rows[2]]
    )
    path = write(tmp_path / "sub.csv", "id,fake,real\n" + "\n".join(rows) + "\n")
    problems = submit.check_submission(path, sample_dir)
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "column fake has 1 NaN values",
        "column real has 1 values outside [0, 1]",
        "1 ids appear more than once",
        f"1 ids of {sample_dir / 'test.csv'} are missing",
    ]


def test_check_without_data_skips_ids_and_missing_file(tmp_path, capsys):
    path = write(tmp_path / "sub.csv", "id,fake,real\nA,0.1,0.2\n")
    assert submit.main(["--check", str(path)]) == 0
    assert "ids not checked: no --data" in capsys.readouterr().out
    header_only = write(tmp_path / "h.csv", "id,fake,real\n")
    assert submit.check_submission(header_only) == [f"{header_only}: no rows (header only)"]
    assert submit.check_submission(tmp_path / "none.csv") == [
        f"{tmp_path / 'none.csv'}: file not found"
    ]
    assert submit.check_submission(write(tmp_path / "e.csv", "")) == [
        f"{tmp_path / 'e.csv'}: empty file (expected the header id,fake,real)"
    ]
