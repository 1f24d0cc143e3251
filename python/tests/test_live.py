"""A full two-party collaboration through live `coffer broker|worker|orchestrator serve`
processes, driven only through the Python package: the README's example, then what an
attacker or a careless party would try."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import coffer

from conftest import ROOT, Services

sys.path.insert(0, str(ROOT / "python" / "examples"))
import two_party  # noqa: E402


def frames(n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = random.Random(7)
    diagnoses = ["asthma", "copd", "diabetes", "hypertension"]
    patients = pd.DataFrame(
        {
            "patient_id": range(1, n + 1),
            "age": [rng.randint(18, 90) for _ in range(n)],
            "diagnosis": rng.choices(diagnoses, [30, 20, 25, 25], k=n),
        }
    )
    # Three patients (all seen by beta too) with a rare diagnosis: under min_group_size.
    patients.loc[150:152, "diagnosis"] = "rare"
    ids = range(n // 3, n + n // 3)
    treatments = pd.DataFrame(
        {"patient_id": ids, "cost_eur": [float(rng.randint(200, 9000)) for _ in ids]}
    )
    return patients, treatments


@pytest.fixture(scope="module")
def collaboration(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    work = tmp_path_factory.mktemp("two_party")
    patients, treatments = frames()
    result = two_party.main(
        work,
        services.broker,
        services.orchestrator,
        services.storage,
        services.sim_root,
        services.worker_measurement,
        patients,
        treatments,
    )
    return work, patients, treatments, result


def test_the_readme_example_matches_duckdb_on_the_plaintext(
    collaboration: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    _, patients, treatments, result = collaboration
    con = duckdb.connect()
    con.register("alpha_patients", patients)
    con.register("beta_treatments", treatments)
    # min_group_size 5: with one row per patient on each side, a group's contributors are
    # its rows; smaller groups are suppressed.
    expected = con.execute(
        two_party.QUERY.replace("ORDER BY", "HAVING count(*) >= 5 ORDER BY")
    ).df()
    assert "rare" not in set(result["diagnosis"]), "a group under min_group_size was released"
    assert len(result) == len(expected) == 4
    pd.testing.assert_frame_equal(
        result.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )


def test_tampered_output_is_refused_and_nothing_written(
    services: Services,
    collaboration: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    work, *_ = collaboration
    alpha = coffer.Party.open(work / "alpha")
    manifest = coffer.Manifest.load(work / "manifest.yaml")
    job = alpha.submit(services.orchestrator, manifest, "outcomes", format="csv")
    seen: list[str] = []
    status = job.wait(timeout=120, progress=lambda st, _secs: seen.append(st["state"]))
    assert status["state"] == "done" and seen[-1] == "done"
    assert job.status()["state"] == "done"
    mine = [o for o in status["receipt"]["receipt"]["outputs"] if "alpha" in o["recipients"]]
    stored = Path(services.storage) / mine[0]["path"]
    original = stored.read_bytes()
    fetched = work / "fetched.age"
    assert coffer.download(mine[0]["path"], services.storage, fetched) == mine[0]["digest"]
    assert fetched.read_bytes() == original
    with pytest.raises(coffer.UsageError):
        coffer.download("no/such/object", services.storage, work / "none")
    assert not (work / "none").exists()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 1
    stored.write_bytes(bytes(flipped))
    out = work / "out"
    try:
        with pytest.raises(coffer.Refused) as e:
            job.result(services.storage, dir=out)
        assert e.value.check == "output_digest"
        assert not out.exists() or not any(out.iterdir())
    finally:
        stored.write_bytes(original)
    results = job.result(services.storage, dir=out)
    assert results.simulated
    assert [p.name for p in out.iterdir()] == list(results)
    assert results.to_pandas()["patients"].sum() > 0


def test_refusals_carry_the_check(
    services: Services,
    collaboration: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    work, *_ = collaboration
    alpha = coffer.Party.open(work / "alpha")
    beta = coffer.Party.open(work / "beta")
    manifest = coffer.Manifest.load(work / "manifest.yaml")
    # A simulated broker is refused unless simulation is allowed.
    carol = coffer.Party.init("carol", home=work / "carol")
    with pytest.raises(coffer.Refused) as e:
        carol.broker(services.broker)
    assert e.value.check == "simulation"
    # Beta cannot grant a key for alpha's dataset.
    beta.keys.new("stolen")
    with pytest.raises(coffer.Refused) as e:
        beta.broker(services.broker).grant("alpha_patients", "stolen", manifest)
    assert e.value.check == "not_owner"
    # A computation the manifest does not have.
    with pytest.raises(coffer.Refused) as e:
        alpha.submit(services.orchestrator, manifest, "everything")
    assert e.value.check == "unknown_computation"
    # A job signed by someone who is not a party fails at the worker, by name; there is
    # nothing to collect.
    job = carol.submit(services.orchestrator, manifest, "outcomes")
    with pytest.raises(coffer.Refused) as e:
        job.wait(timeout=120, progress=False)
    assert e.value.check == "unknown_party"
    with pytest.raises(coffer.Refused):
        job.result(services.storage)
    # The audit log is verified against the pin; a revoked key is released no more.
    entries = alpha.broker(services.broker).audit()
    assert all("signature" in x for x in entries)
    alpha.broker(services.broker).revoke("alpha_patients", manifest)
    job = alpha.submit(services.orchestrator, manifest, "outcomes")
    with pytest.raises(coffer.Refused) as e:
        job.wait(timeout=120, progress=False)
    assert e.value.check == "key_revoked"


def test_help_shows_the_docstrings() -> None:
    doc = coffer.Party.submit.__doc__ or ""
    assert "Sign a job" in doc
    for f in (
        coffer.Party.broker,
        coffer.Broker.grant,
        coffer.Broker.audit,
        coffer.Job.wait,
        coffer.Job.result,
        coffer.upload,
        coffer.download,
        coffer.gbdt.train,
        coffer.gbdt.Booster.predict,
        coffer.attest.verify,
    ):
        assert f.__doc__, f


def test_an_exception_in_the_progress_callback_stops_the_wait(
    services: Services,
    collaboration: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    work, *_ = collaboration
    alpha = coffer.Party.open(work / "alpha")
    manifest = coffer.Manifest.load(work / "manifest.yaml")
    job = alpha.submit(services.orchestrator, manifest, "outcomes")

    def stop(_status: dict[str, object], _secs: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(timeout=120, progress=stop)
    # Only the wait stopped: the job is still there to follow.
    assert job.status()["id"] == job.id
