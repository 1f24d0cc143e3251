"""Two hospitals join their tables without showing them to each other (or to the host).

Run against live services (see README "Python"): a key broker, an enclave worker and an
orchestrator, here in simulation mode. Everything below is what each hospital's data
scientist writes on their own machine; `main` only puts the two side by side.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

import coffer

QUERY = """SELECT a.diagnosis, count(*) AS patients, round(avg(a.age), 1) AS mean_age,
       round(avg(b.cost_eur), 0) AS mean_cost_eur
FROM alpha_patients a JOIN beta_treatments b ON a.patient_id = b.patient_id
GROUP BY a.diagnosis ORDER BY a.diagnosis"""


def manifest_yaml(
    alpha: coffer.Identity,
    beta: coffer.Identity,
    digests: dict[str, str],
    worker_measurement: str,
    min_group_size: int = 5,
) -> str:
    """The collaboration both sign: who takes part, which files (by digest), which query,
    which enclave may run it, who gets the result."""
    parties = "".join(
        f'  - name: {p.name}\n    signing_key: "{p.signing_key}"\n    recipient: "{p.recipient}"\n'
        for p in (alpha, beta)
    )
    query = QUERY.replace("\n", "\n      ")
    return f"""version: 1
id: two-hospitals
predecessor: null
parties:
{parties}enclave:
  tee: [sim]
  measurements: ["sim:measurement={worker_measurement}"]
  allow_debug: false
  allow_simulation: true   # development only: simulation proves nothing
datasets:
  - name: alpha_patients
    owner: alpha
    uri: alpha/patients.parquet
    digest: "{digests['alpha']}"
    privacy_unit: patient_id
  - name: beta_treatments
    owner: beta
    uri: beta/treatments.parquet
    digest: "{digests['beta']}"
    privacy_unit: patient_id
computations:
  - name: outcomes
    kind: sql
    query: |
      {query}
    inputs: [alpha_patients, beta_treatments]
    recipients: [alpha, beta]
    constraints: {{min_group_size: {min_group_size}}}
governance: {{update: all}}
"""


def main(
    workdir: Path,
    broker_url: str,
    orchestrator: str,
    storage: str,
    sim_root: Path,
    worker_measurement: str,
    patients: pd.DataFrame,
    treatments: pd.DataFrame,
) -> pd.DataFrame:
    # Each hospital: an identity and a data key, on its own machine.
    alpha = coffer.Party.init("alpha", home=workdir / "alpha")
    beta = coffer.Party.init("beta", home=workdir / "beta")
    alpha.keys.new("alpha.patients")
    beta.keys.new("beta.treatments")

    # Alpha encrypts a DataFrame with coffer; beta writes with PyArrow itself, through a
    # CryptoFactory whose KMS is beta's keyring. Both are Parquet Modular Encryption.
    alpha.encrypt(patients, workdir / "patients.parquet", footer_key="alpha.patients")
    config = pe.EncryptionConfiguration(
        footer_key="beta.treatments", uniform_encryption=True, double_wrapping=True
    )
    props = beta.crypto_factory().file_encryption_properties(pe.KmsConnectionConfig(), config)
    pq.write_table(
        pa.Table.from_pandas(treatments, preserve_index=False),
        workdir / "treatments.parquet",
        encryption_properties=props,
    )

    # Only ciphertext leaves: into the shared storage.
    digests = {
        "alpha": coffer.upload(workdir / "patients.parquet", storage, "alpha/patients.parquet"),
        "beta": coffer.upload(workdir / "treatments.parquet", storage, "beta/treatments.parquet"),
    }

    # Both sign the same manifest.
    path = workdir / "manifest.yaml"
    path.write_text(manifest_yaml(alpha.identity, beta.identity, digests, worker_measurement))
    manifest = coffer.Manifest.load(path)
    alpha.sign(manifest)
    beta.sign(manifest)
    assert manifest.status()["active"]

    # Each attests the key broker (pinning what it saw) and grants its key, for this
    # manifest only.
    for party, dataset, key in [
        (alpha, "alpha_patients", "alpha.patients"),
        (beta, "beta_treatments", "beta.treatments"),
    ]:
        broker = party.broker(broker_url, allow_simulation=True, sim_root=sim_root)
        broker.submit(manifest)
        broker.grant(dataset, key, manifest)

    # Alpha runs the query; the result comes back encrypted to both, and is opened only
    # after the worker's receipt and evidence check out against the manifest.
    job = alpha.submit(orchestrator, manifest, "outcomes")
    job.wait(timeout=120)
    result: pd.DataFrame = job.result(storage).to_pandas()

    # Beta reads the same result, and the broker's audit log shows the key releases.
    same = beta.job(orchestrator, job.id, manifest).result(storage).to_pandas()
    assert same.equals(result)
    events = [e["entry"]["event"]["type"] for e in beta.broker(broker_url).audit()]
    assert "key_released" in events
    return result
