"""evaluate.py: metrics.json from a submission and from the export, breakdowns, plots, errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_export import tiny_export_dir

from deepwave_tf import calibration, evaluate, metrics, submit


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, sample_records, tiny_cfg) -> Path:
    return tiny_export_dir(tmp_path_factory, sample_records, tiny_cfg)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def labels(sample_dir) -> dict[str, tuple[int, int]]:
    return {
        r["id"]: (int(r["fake"]), int(r["real"])) for r in read_csv(sample_dir / "test_labels.csv")
    }


@pytest.fixture(scope="module")
def made_up_submission(tmp_path_factory, sample_dir, labels) -> Path:
    """Probabilities that depend on the labels (so the metrics are far from chance), deterministic."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("eval") / "made_up.csv"
    ids = [r["id"] for r in read_csv(sample_dir / "test.csv")]
    y = np.array([labels[i] for i in ids], float)
    p = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, y.shape), 0.01, 0.99)
    submit.write_submission(path, ids, {"fake": p[:, 0], "real": p[:, 1]})
    return path


def test_evaluate_submission_metrics(made_up_submission, sample_dir, labels, tmp_path):
    result = evaluate.run(
        sample_dir, sample_dir / "test_labels.csv", tmp_path, submission=made_up_submission
    )
    rows = read_csv(made_up_submission)
    y = np.array([labels[r["id"]] for r in rows], float)
    p = np.array([[float(r["fake"]), float(r["real"])] for r in rows])
    expected = metrics.challenge_score(y, p)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["score"] == pytest.approx(expected["score"], abs=1e-12)
    assert written["auc"] == pytest.approx(expected["auc"])
    assert written["n"] == 40
    assert result["source"] == {"submission": str(made_up_submission.resolve())}
    assert "uncalibrated" not in written  # no model: temperatures unknown
    # Conditions from meta.csv: the sample's 7 test conditions with their sizes.
    conds = written["conditions"]
    assert {k: v["n"] for k, v in conds.items()} == {
        "single_real": 8,
        "single_fake": 8,
        "real+fake": 8,
        "fake+fake": 4,
        "real+real": 4,
        "noise": 4,
        "silence": 4,
    }
    assert conds["single_fake"]["target_fake"] == 1.0 and conds["single_fake"]["target_real"] == 0.0
    meta = {r["id"]: r for r in read_csv(sample_dir / "meta.csv")}
    ids = [r["id"] for r in rows]
    m = np.array([meta[i]["label"] == "noise" for i in ids])
    assert conds["noise"]["mean_fake"] == pytest.approx(p[m, 0].mean())
    correct = ((p[m] >= 0.5) == (y[m] == 1)).all(axis=1).mean()
    assert conds["noise"]["accuracy"] == pytest.approx(correct)
    # EER on the 16 single-voice clips.
    single = np.array([meta[i]["label"] in ("single_real", "single_fake") for i in ids])
    assert written["single_voice_clips"]["n"] == 16
    assert written["eer_fake_single_voice"] == pytest.approx(
        metrics.equal_error_rate(y[single, 0], p[single, 0])
    )
    # Generators: every generator family of the fake test clips, with AUC against single_real.
    fams = {
        g for i in ids if labels[i][0] == 1 for g in meta[i]["generator"].split("+") if g != "-"
    }
    assert set(written["generators"]) == fams
    assert all(0 <= g["auc_vs_single_real"] <= 1 for g in written["generators"].values())
    # predictions.csv and the plots.
    preds = read_csv(tmp_path / "predictions.csv")
    assert [r["id"] for r in preds] == ids
    assert preds[0]["condition"] == meta[ids[0]]["label"]
    for name in ("roc.png", "reliability.png", "histograms.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name


def test_evaluate_through_the_export_matches_its_submission(export_dir, sample_dir, tmp_path):
    sub = tmp_path / "submission.csv"
    assert submit.run(export_dir, sample_dir, sub, progress=False).exit_code == 0
    scored = evaluate.run(
        sample_dir,
        sample_dir / "test_labels.csv",
        tmp_path / "a",
        model=export_dir,
        progress=False,
        plots=False,
        overrides=["export.aggregate=mean"],
    )
    from_file = evaluate.run(
        sample_dir,
        sample_dir / "test_labels.csv",
        tmp_path / "b",
        model=export_dir,
        submission=sub,
        plots=False,
    )
    assert scored["plots"] == {} and not list((tmp_path / "a").glob("*.png"))
    assert scored["score"] == pytest.approx(from_file["score"], abs=1e-6)
    assert scored["source"]["model"] == str(export_dir.resolve())
    # 5 s clips are one window each: mean = max. metrics.json records what was used.
    assert scored["source"]["export"] == {"window_hop_seconds": 2.5, "aggregate": "mean"}
    # With the export's calibration (Platt: scale and bias): the uncalibrated metrics, and
    # the uncalibrated probabilities are sigmoid((logit(p) - bias) / scale).
    meta = json.loads((export_dir / "assets" / "deepwave.json").read_text())
    scale, bias = np.array(meta["calibration"]["scale"]), np.array(meta["calibration"]["bias"])
    assert scored["temperatures"] == pytest.approx(dict(zip(["fake", "real"], 1 / scale)))
    preds = read_csv(tmp_path / "a" / "predictions.csv")
    y = np.array([[int(r["fake_true"]), int(r["real_true"])] for r in preds])
    p = np.array([[float(r["fake"]), float(r["real"])] for r in preds])
    raw = calibration.uncalibrate_affine(p, scale, bias)
    before = metrics.challenge_score(y, raw)
    assert scored["uncalibrated"]["score"] == pytest.approx(before["score"])
    assert scored["uncalibrated"]["auc"] == pytest.approx(
        scored["auc"]
    )  # a positive scale never changes the ranking
    # ECE and Brier before and after, per output and on average, and what the export kept.
    calib = scored["calibration"]
    assert calib["methods"] == {"fake": "platt", "real": "platt"}
    assert calib["scale"] == pytest.approx(dict(zip(["fake", "real"], scale)))
    assert calib["bias"] == pytest.approx(dict(zip(["fake", "real"], bias)))
    for m in ("ece", "brier"):
        assert calib[m]["before"] == pytest.approx(before[m])
        assert calib[m]["after"] == pytest.approx(metrics.challenge_score(y, p)[m])
        assert calib[f"mean_{m}"] == pytest.approx(
            {"before": before[f"mean_{m}"], "after": scored[f"mean_{m}"]}
        )
    assert calib["ece"]["before"] != calib["ece"]["after"]
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["calibration"] == calib
    for m in ("ece", "brier"):  # --submission with --model: the same before / after
        for when in ("before", "after"):
            assert from_file["calibration"][m][when] == pytest.approx(calib[m][when], abs=1e-6)
    summary = evaluate.format_summary(scored)
    e, b = calib["ece"], calib["brier"]
    assert "calibration (fake platt, real platt), before -> after on these clips:" in summary
    assert (
        f"  fake  ECE {e['before']['fake']:.4f} -> {e['after']['fake']:.4f}  "
        f"Brier {b['before']['fake']:.4f} -> {b['after']['fake']:.4f}"
    ) in summary.splitlines()


def test_export_calibration_of_an_export_made_before_platt():
    """Old exports record temperatures only: scale = 1 / T, no bias."""
    old = {"temperatures": [2.0, 1.0], "calibration": {"fitted": True, "metrics": {}}}
    assert evaluate.export_calibration(old) == {
        "scale": [0.5, 1.0],
        "bias": [0.0, 0.0],
        "methods": ["temperature", "none"],
    }


def test_evaluate_cli(made_up_submission, sample_dir, tmp_path, capsys):
    code = evaluate.main(
        [
            "--data",
            str(sample_dir),
            "--labels",
            str(sample_dir / "test_labels.csv"),
            "--out",
            str(tmp_path),
            "--submission",
            str(made_up_submission),
            "--no-plots",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    score = json.loads((tmp_path / "metrics.json").read_text())["score"]
    assert out.startswith(f"challenge score {score:.4f} (lower is better) on 40 clips")
    assert "single_fake" in out and "EER of fake on 16 single-voice clips" in out
    assert out.count("acc@0.5") == 2 and evaluate.ACC_NOTE in out  # the column is explained
    with pytest.raises(SystemExit):  # --set changes scoring by --model, not a submission
        evaluate.main(
            ["--data", str(sample_dir), "--labels", str(sample_dir / "test_labels.csv")]
            + ["--out", str(tmp_path), "--submission", str(made_up_submission)]
            + ["--set", "export.aggregate=mean"]
        )
    assert "--submission is scored already" in capsys.readouterr().err


def test_roc_legend_names_every_mark(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 10)
    p = np.clip(y * 0.4 + rng.uniform(0, 0.6, y.shape), 0, 1)
    single = y.sum(axis=1) == 1
    result = metrics.challenge_score(y, p)
    result["eer_fake_single_voice"] = metrics.eer_with_threshold(y[single, 0], p[single, 0])[0]
    labels = evaluate.plot_roc(tmp_path / "roc.png", y, p, single, result)
    assert labels[3:] == [
        "EER point (false positive = miss rate)",
        "chance (AUC 0.5)",
        "equal error line (EER points lie on it)",
    ]
    assert labels[2].startswith("fake, single-voice clips: EER ")


def test_without_meta_conditions_come_from_targets(made_up_submission, sample_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_dir / "test.csv", data / "test.csv")
    result = evaluate.run(
        data,
        sample_dir / "test_labels.csv",
        tmp_path / "out",
        submission=made_up_submission,
        plots=False,
    )
    assert {k: v["n"] for k, v in result["conditions"].items()} == {
        "fake": 12,
        "real": 12,
        "real+fake": 8,
        "no voice": 8,
    }
    assert result["single_voice_clips"] == {"n": 24, "rule": "fake + real == 1"}
    assert "generators" not in result
    assert result["condition_source"] == "targets (no meta.csv)"


def test_evaluate_errors(made_up_submission, sample_dir, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    rows = (sample_dir / "test_labels.csv").read_text().splitlines()
    labels.write_text("\n".join(rows[:-2]) + "\n")  # two ids without labels
    with pytest.raises(evaluate.EvaluateError, match="2 test ids have no row in"):
        evaluate.run(sample_dir, labels, tmp_path / "o", submission=made_up_submission)
    bad = tmp_path / "bad.csv"
    bad.write_text(made_up_submission.read_text().replace("id,fake,real", "id,real,fake"))
    code = evaluate.main(
        [
            "--data",
            str(sample_dir),
            "--labels",
            str(sample_dir / "test_labels.csv"),
            "--out",
            str(tmp_path / "o"),
            "--submission",
            str(bad),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: submission {bad} is invalid (1 problem):" in err
    assert "expected id,fake,real in that order" in err
    with pytest.raises(evaluate.EvaluateError, match="give --model EXPORT"):
        evaluate.run(sample_dir, sample_dir / "test_labels.csv", tmp_path / "o")
    labels.write_text("id,fake\nTEST_00120,1\n")
    with pytest.raises(evaluate.EvaluateError, match="has no real column"):
        evaluate.read_labels(labels)
