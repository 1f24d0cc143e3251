"""coffer.gbdt against XGBoost, and coffer.attest on recorded evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import coffer

from conftest import ROOT

NITRO_DOC = ROOT / "testdata" / "nitro" / "evervault" / "test-data" / "valid-attestation-doc-base64"
NITRO_AT = 1_695_050_165  # 2023-09-18T15:16:05Z, while its certificates were valid


def frame(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - 0.3 * x[:, 3] > 0).astype(np.float32)
    df = pd.DataFrame(x.astype(np.float32), columns=["a", "b", "c", "d"])
    df["label"] = y
    return df


def test_a_coffer_model_loads_in_xgboost_and_predicts_the_same(tmp_path: Path) -> None:
    train, test = frame(), frame(500, seed=4)
    rounds: list[int] = []
    model = coffer.gbdt.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3},
        train,
        "label",
        valid=test,
        num_boost_round=20,
        callback=lambda r, _scores: rounds.append(r),
    )
    assert rounds == list(range(20))
    assert model.num_boosted_rounds() == 20
    assert model.feature_names == ["a", "b", "c", "d"]
    ours = model.predict(test)
    assert ours.shape == (500,)
    accuracy = float(((ours > 0.5) == test["label"].to_numpy()).mean())
    assert accuracy > 0.85, accuracy
    path = tmp_path / "model.json"
    model.save_model(path)
    theirs = xgb.Booster(model_file=str(path)).predict(
        xgb.DMatrix(test[["a", "b", "c", "d"]])
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # And back: XGBoost's own save loads here and predicts the same.
    again = coffer.gbdt.Booster(model_file=path)
    np.testing.assert_allclose(again.predict(test), ours, rtol=1e-6)


def test_training_reads_encrypted_parquet_with_the_party_keyring(tmp_path: Path) -> None:
    alpha = coffer.Party.init("alpha", home=tmp_path / "alpha")
    alpha.keys.new("k1")
    df = frame(800)
    alpha.encrypt(df, tmp_path / "train.parquet", footer_key="k1")
    params = {"objective": "binary:logistic", "max_depth": 3}
    model = coffer.gbdt.train(params, tmp_path / "train.parquet", "label", num_boost_round=5,
                              party=alpha)
    plain = coffer.gbdt.train(params, df, "label", num_boost_round=5)
    np.testing.assert_allclose(model.predict(df), plain.predict(df), rtol=1e-6)
    # Without the keyring, the file stays closed.
    with pytest.raises(coffer.Refused):
        coffer.gbdt.train(params, tmp_path / "train.parquet", "label", num_boost_round=5)


def test_bad_parameters_columns_and_models_are_named(tmp_path: Path) -> None:
    with pytest.raises(coffer.UsageError):
        coffer.gbdt.train({"no_such_param": 1}, frame(100), "label", num_boost_round=2)
    with pytest.raises(coffer.UsageError):
        coffer.gbdt.train({}, frame(100), "missing", num_boost_round=2)
    bad = tmp_path / "bad.json"
    bad.write_text('{"learner": 7}')
    with pytest.raises(coffer.Refused) as e:
        coffer.gbdt.Booster(model_file=bad)
    assert e.value.check == "model"
    with pytest.raises(coffer.UsageError):
        coffer.gbdt.Booster().predict(frame(10))


def test_recorded_nitro_evidence_verifies_and_a_flipped_byte_is_refused(tmp_path: Path) -> None:
    report = coffer.attest.verify("nitro", NITRO_DOC, at=NITRO_AT)
    assert report["verified"] is True
    assert "pcr0" in report["measurements"]
    assert not report.get("simulated")
    # Years later its certificates have expired.
    with pytest.raises(coffer.Refused) as e:
        coffer.attest.verify("nitro", NITRO_DOC, at=1_751_328_000)
    assert e.value.check
    assert e.value.report["verified"] is False  # type: ignore[attr-defined]
    raw = bytearray(__import__("base64").b64decode(NITRO_DOC.read_bytes()))
    raw[len(raw) // 2] ^= 1
    with pytest.raises(coffer.Refused):
        coffer.attest.verify("nitro", bytes(raw), at=NITRO_AT)
    # A policy that wants another TEE refuses it, naming the check.
    policy = tmp_path / "policy.yaml"
    policy.write_text("tee: [sgx]\nmeasurements: []\n")
    with pytest.raises(coffer.Refused) as e:
        coffer.attest.verify("nitro", NITRO_DOC, at=NITRO_AT, policy=policy)
    assert e.value.report["accepted"] is False  # type: ignore[attr-defined]
    with pytest.raises(coffer.UsageError):
        coffer.attest.verify("tpm", NITRO_DOC)
