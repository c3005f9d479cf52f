"""protocol.py: folds, the per-band statistics baseline, detection metrics, scoring a split."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deepwave_tf import protocol

DEV_FAMILIES = {
    "piper",
    "festival-hts",
    "festival-diphone",
    "flite",
    "espeak-ng",
    "mbrola",
    "pico",
    "rhvoice",
    "world",
    "griffinlim",
}  # fmt: skip  (the dev corpus README's ten generator families)


def test_folds_partition_the_dev_families(sample_dir):
    members = [g for fold in protocol.FOLDS.values() for g in fold]
    assert len(members) == len(set(members))  # no family in two folds
    assert set(members) == DEV_FAMILIES
    with open(Path(sample_dir) / "meta.csv", newline="") as f:
        gens = {r["generator"] for r in csv.DictReader(f) if r["label"] == "fake"}
    assert gens <= DEV_FAMILIES


def test_val_holdout_family_is_a_dev_family_outside_each_fold():
    assert protocol.val_holdout_for("hts") == ("mbrola",)  # hts holds rhvoice out
    assert protocol.val_holdout_for("full") == ("rhvoice",)
    for fold, held in protocol.FOLDS.items():
        (family,) = protocol.val_holdout_for(fold)
        assert family in DEV_FAMILIES and family not in held


def test_band_statistics_shape_and_values():
    rng = np.random.default_rng(0)
    mfcc = rng.normal(size=(2, 313, 40))
    mel = rng.normal(-30, 10, size=(2, 128, 313, 1))
    x = protocol.band_statistics(mfcc, mel)
    assert x.shape == (2, 2 * (128 + 40))
    np.testing.assert_allclose(x[:, :128], mel[..., 0].mean(axis=2))
    np.testing.assert_allclose(x[:, 128:256], mel[..., 0].std(axis=2))
    np.testing.assert_allclose(x[:, 256:296], mfcc.mean(axis=1))
    np.testing.assert_allclose(x[:, 296:], mfcc.std(axis=1))


def test_feature_statistics_of_other_front_ends_put_the_image_first():
    from deepwave_tf.config import FeatureConfig

    f = FeatureConfig(sequence="lfcc", image="linear", n_lfcc=20, linear_bins=64)
    rng = np.random.default_rng(1)
    lfcc = rng.normal(size=(2, 313, 20))
    linear = rng.normal(size=(2, 64, 313, 1))  # as read_split gives it: with a channel
    x = protocol.feature_statistics({"lfcc": lfcc, "linear": linear}, f)
    assert x.shape == (2, 2 * (64 + 20))
    np.testing.assert_allclose(x[:, :64], linear[..., 0].mean(axis=2))
    np.testing.assert_allclose(x[:, 64:128], linear[..., 0].std(axis=2))
    np.testing.assert_allclose(x[:, 128:148], lfcc.mean(axis=1))
    np.testing.assert_allclose(x[:, 148:], lfcc.std(axis=1))
    # the default front-end gives band_statistics' layout
    mfcc, mel = rng.normal(size=(2, 313, 40)), rng.normal(size=(2, 128, 313, 1))
    np.testing.assert_allclose(
        protocol.feature_statistics({"mfcc": mfcc, "mel": mel}, FeatureConfig()),
        protocol.band_statistics(mfcc, mel),
    )


def test_detection_metrics_on_known_cases():
    fake = np.array([0, 0, 0, 1, 1, 1])
    perfect = protocol.detection_metrics(fake, np.array([-9.0, -8, -7, 50, 60, 70]))
    assert perfect == {"eer": 0.0, "auc": 1.0, "n_fake": 3, "n_real": 3}
    # large logits must not tie (a sigmoid would map 50/60/70 and 40 all to 1.0)
    inverted = protocol.detection_metrics(fake, np.array([40.0, 50, 60, -1, -2, -3]))
    assert inverted["auc"] == 0.0 and inverted["eer"] == 1.0
    assert np.isnan(protocol.detection_metrics(np.ones(3), np.zeros(3))["eer"])


def test_per_generator_scores_each_family_against_all_reals():
    gens = ["-", "-", "a", "a", "b"]
    fake = np.array([0, 0, 1, 1, 1])
    score = np.array([0.0, 1.0, 2.0, 3.0, 0.5])
    out = protocol.per_generator(gens, fake, score)
    assert set(out) == {"a", "b"}
    assert out["a"]["auc"] == 1.0 and out["a"]["n_real"] == 2
    assert out["b"]["auc"] == 0.5 and out["b"]["n_fake"] == 1


def test_stats_baseline_separates_separable_statistics():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 6))
    y = (x[:, 0] + 0.1 * rng.normal(size=80) > 0).astype(int)
    model = protocol.fit_stats_baseline(x, y)
    assert protocol.detection_metrics(y, model.decision_function(x))["auc"] > 0.95


def test_score_split_and_statistics_cover_every_record(sample_records, tiny_cfg):
    from deepwave_tf import data, records
    from deepwave_tf import model as model_lib

    model = model_lib.build_model(tiny_cfg, data.load_stats(sample_records))
    scored = protocol.score_split(model, sample_records, "val", tiny_cfg)
    ids = [i for i, _ in records.read_ids_and_generators(sample_records, "val")]
    n = records.read_manifest(sample_records)["counts"]["val"]["total"]
    assert scored["ids"] == ids and len(ids) == n
    assert scored["logits"].shape == (n, 2) and np.isfinite(scored["logits"]).all()
    assert set(np.unique(scored["targets"])) <= {0, 1}
    stats = protocol.split_statistics(sample_records, "val", tiny_cfg)
    assert stats["ids"] == ids and stats["x"].shape == (n, 2 * (128 + 40))
    with pytest.raises(records.ManifestError, match="no 'unseen' split"):
        protocol.score_split(model, sample_records, "unseen", tiny_cfg)


def _bench(name: str):
    """A module of benchmarks/ (they put their own folder on sys.path for their helpers)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_unseen():
    return _bench("bench_unseen")


def test_bench_unseen_config_variants_parse_label_path_and_overrides():
    bench = _bench_unseen()
    cfg = str(Path(__file__).resolve().parent.parent / "configs" / "default.toml")
    assert bench.parse_config_arg(cfg) == ("default", Path(cfg), [])
    assert bench.parse_config_arg(f"views={cfg}+wavaug.views_per_clip=1") == (
        "views",
        Path(cfg),
        ["wavaug.views_per_clip=1"],
    )
    label, _, overrides = bench.parse_config_arg(
        f'st={cfg}+model.branches=["mfcc","mel","stats"]+model.lstm_units=32'
    )
    assert (label, overrides) == (
        "st",
        ['model.branches=["mfcc","mel","stats"]', "model.lstm_units=32"],
    )
    with pytest.raises(ValueError, match="no config file at configs/nope.toml"):
        bench.parse_config_arg("x=configs/nope.toml")
    with pytest.raises(ValueError, match="override 'oops' is not of the form section.key=value"):
        bench.parse_config_arg(f"{cfg}+oops")
    with pytest.raises(ValueError, match="label before '=' must be a plain name"):
        bench.parse_config_arg(f"a/b={cfg}")


def test_bench_unseen_run_key_ignores_added_fields_at_their_defaults():
    from deepwave_tf.config import load_config

    bench = _bench_unseen()
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "copies.toml")
    d = cfg.to_dict()
    for section, key in bench._ADDED_FIELDS:
        if (section, key) != ("vocode", "val_copies"):  # copies.toml sets it: part of the key
            del d[section][key]
    assert d["vocode"]["val_copies"] is False
    assert bench.run_key(cfg) == bench._hash(d)  # what runs cached before them were keyed by
    balanced = cfg.replace(train=dataclasses.replace(cfg.train, class_balance=True))
    assert bench.run_key(balanced) != bench.run_key(cfg)
    copies_only = load_config(
        Path(__file__).resolve().parent.parent / "configs" / "copies.toml",
        ["vocode.corpus_fakes=false", "vocode.val_copies=true"],
    )
    assert bench.run_key(copies_only) != bench.run_key(cfg)
    assert bench.prep_key(copies_only) != bench.prep_key(cfg)


def test_bench_gate_mixes_at_the_asked_snr_and_reads_the_floor():
    gate = _bench("bench_gate")
    rng = np.random.default_rng(0)
    t = np.arange(gate.CLIP) / gate.RATE
    voice = 0.5 * np.sin(2 * np.pi * 220 * t) * (t < 2.5)  # a tone, then silence
    noise = rng.standard_normal(gate.CLIP)
    mixed = gate.mixture(voice, noise, 10.0)
    snr = 10 * np.log10(np.mean(voice**2) / np.mean((mixed - voice) ** 2))
    assert snr == pytest.approx(10.0, abs=1e-9)
    assert np.abs(gate.peak_normalised(mixed)).max() == pytest.approx(0.9)
    clean, noisy = gate.level_statistics(voice), gate.level_statistics(mixed)
    assert clean.shape == noisy.shape == (52,)
    # the silent half sits at the floor in the clean clip, ~10 dB under the peak once mixed
    assert clean[-4] < -100.0 < -20.0 < noisy[-4]


def test_bench_stats_features_scorers_flag_deviation_the_right_way():
    sf = _bench("bench_stats_features")
    rng = np.random.default_rng(1)
    real = rng.standard_normal((300, 4))
    fake = real[:200] * [3.0, 1.0, 1.0, 1.0]  # the fakes spread wider on one axis, both ways
    x, y = np.r_[real, fake], np.r_[np.zeros(300), np.ones(200)]
    probe = np.array([[0.0, 0, 0, 0], [4.0, 0, 0, 0], [-4.0, 0, 0, 0]])
    for name in ("lr_sq", "real_distance", "gauss_llr"):
        s = sf.fit_scorer(name, x, y, 0.1)(probe)
        assert s.shape == (3,)
        assert s[1] > s[0] and s[2] > s[0], name  # a deviation either way is more fake
    lr = sf.fit_scorer("lr", x, y, 0.1)(probe)
    assert not (lr[1] > lr[0] and lr[2] > lr[0])  # a linear score cannot rise both ways
    with pytest.raises(ValueError, match="unknown scorer 'svm'"):
        sf.fit_scorer("svm", x, y, 0.1)


def test_bench_fusion_matches_clips_by_id_and_refuses_different_sets():
    fusion = _bench("bench_fusion")
    a = {"ids": ["c", "a", "b"]}
    b = {"ids": ["b", "c", "a"]}
    ids, ia, ib = fusion.aligned(a, b, "hts seed1 unseen")
    assert ids == ["a", "b", "c"]
    assert [a["ids"][i] for i in ia] == ids and [b["ids"][i] for i in ib] == ids
    with pytest.raises(
        SystemExit,
        match=r"hts seed1 unseen: .*different clips \(3 and 3; only in "
        r"the first: \['a'\], only in the second: \['d'\]\)",
    ):
        fusion.aligned(a, {"ids": ["b", "c", "d"]}, "hts seed1 unseen")


def test_bench_stats_features_lfcc_families_share_one_cepstrum():
    sf = _bench("bench_stats_features")
    rng = np.random.default_rng(2)
    lin = rng.uniform(-90, 0, (3, sf.BINS, 20)).astype(np.float16)
    mel = rng.uniform(-80, 0, (3, 128, 20)).astype(np.float16)
    ms = sf.features(lin, mel, "lfcc510ms")
    d = sf.features(lin, mel, "lfcc510d")
    both = sf.features(lin, mel, "lfcc510all")
    assert ms.shape == d.shape == (3, 60) and both.shape == (3, 120)
    np.testing.assert_array_equal(both, np.concatenate([ms, d], axis=1))
    # another array is not served the first one's cached cepstrum
    other = (lin.astype(np.float32) - 10).astype(np.float16)
    assert not np.allclose(sf.features(other, mel, "lfcc510ms"), ms)
    c = sf._dct(sf._filtered(lin, 510), 30)
    np.testing.assert_allclose(ms, np.concatenate([c.mean(2), c.std(2)], axis=1), rtol=1e-6)


def test_bench_copies_lr_resynthesis_gap_measures_shift_alignment_and_seen_auc():
    cl = _bench("bench_copies_lr")
    rng = np.random.default_rng(3)
    real = rng.standard_normal((400, 6))
    reals_of_family = real[:100]
    family = reals_of_family + [2.0, 0, 0, 0, 0, 0]  # the same clips, shifted on axis 0
    copies = {
        "along": real[100:300] + [1.0, 0, 0, 0, 0, 0],
        "across": real[100:300] + [0, 1.0, 0, 0, 0, 0],
    }
    speakers = np.repeat(np.arange(10), 10)
    g = cl.resynthesis_gap(real, family, reals_of_family, speakers, speakers, copies)
    sd = real.std(0)[0]
    assert g["shift"] == pytest.approx(2.0 / sd, rel=1e-6)
    assert g["cosine"]["along"] > 0.95 and abs(g["cosine"]["across"]) < 0.3
    assert g["seen_auc"] > 0.9
    same = cl.resynthesis_gap(real, reals_of_family, reals_of_family, speakers, speakers, copies)
    assert same["shift"] == pytest.approx(0.0, abs=1e-12)
    assert same["seen_auc"] < 0.7  # nothing to learn: near chance
