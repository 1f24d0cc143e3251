"""Manifests signed from Python, and PyArrow writing and reading through crypto_factory()."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest

import coffer


def party(tmp_path: Path, name: str) -> coffer.Party:
    p = coffer.Party.init(name, home=tmp_path / name)
    p.keys.new("k1")
    p.keys.new("k2")
    return p


def manifest_text(alpha: coffer.Party, beta: coffer.Party, query: str) -> str:
    def entry(p: coffer.Party) -> str:
        i = p.identity
        return f"  - name: {i.name}\n    signing_key: {i.signing_key}\n    recipient: {i.recipient}\n"

    digest = "sha256:" + hashlib.sha256(b"a").hexdigest()
    return (
        "version: 1\nid: study\nparties:\n"
        + entry(alpha)
        + entry(beta)
        + "enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement=" + "ab" * 48 + "\"]\n"
        + "  allow_simulation: true\n"
        + f"datasets:\n  - {{name: a_data, owner: alpha, uri: \"file://a\", digest: \"{digest}\"}}\n"
        + "computations:\n  - name: counts\n    kind: sql\n"
        + f"    query: {query}\n    inputs: [a_data]\n    recipients: [alpha, beta]\n"
        + "governance: {update: all}\n"
    )


def test_both_parties_sign_and_the_manifest_becomes_active(tmp_path: Path) -> None:
    alpha, beta = party(tmp_path, "alpha"), party(tmp_path, "beta")
    path = tmp_path / "study.yaml"
    path.write_text(manifest_text(alpha, beta, "SELECT count(*) AS n FROM a_data"))
    m = coffer.Manifest.load(path)
    assert m.id == "study" and m.hash.startswith("sha256:") and len(m.hash) == 71
    m.check()
    assert m.status()["active"] is False
    sigs = alpha.sign(m)
    assert sigs == tmp_path / "study.yaml.sigs"
    status = m.status()
    assert status["signed_by"] == ["alpha"] and status["missing"] == ["beta"]
    beta.sign(m)
    status = m.status()
    assert status["active"] is True and status["hash"] == m.hash
    # A changed manifest is another manifest: the signatures are for the old hash.
    path.write_text(manifest_text(alpha, beta, "SELECT count(*) AS rows FROM a_data"))
    changed = coffer.Manifest.load(path)
    assert changed.hash != m.hash
    status = changed.status()
    assert status["active"] is False and status["signed_by"] == []
    assert {i["party"] for i in status["invalid"]} == {"alpha", "beta"}
    assert m.hash in status["invalid"][0]["reason"]


def test_invalid_manifests_are_refused_by_name(tmp_path: Path) -> None:
    alpha, beta = party(tmp_path, "alpha"), party(tmp_path, "beta")
    path = tmp_path / "bad.yaml"
    path.write_text(manifest_text(alpha, beta, "SELECT 1").replace("owner: alpha", "owner: mallory"))
    with pytest.raises(coffer.Refused) as e:
        coffer.Manifest.load(path)
    assert e.value.check == "unknown_owner"
    path.write_text("version: 1\nid: [unclosed\n")
    with pytest.raises(coffer.Refused) as e:
        coffer.Manifest.load(path)
    assert e.value.check == "syntax"
    with pytest.raises(coffer.UsageError) as u:
        coffer.Manifest.load(tmp_path / "missing.yaml")
    assert u.value.check == "io"


def table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(50), pa.int64()),
            "age": pa.array([30 + i % 40 for i in range(50)], pa.int64()),
            "city": pa.array([f"c{i % 5}" for i in range(50)]),
        }
    )


@pytest.mark.parametrize("double_wrapping", [True, False])
def test_pyarrow_writes_through_crypto_factory_and_coffer_reads(
    tmp_path: Path, double_wrapping: bool
) -> None:
    alpha = party(tmp_path, "alpha")
    config = pe.EncryptionConfiguration(
        footer_key="k1", column_keys={"k2": ["age"]}, double_wrapping=double_wrapping
    )
    props = alpha.crypto_factory().file_encryption_properties(pe.KmsConnectionConfig(), config)
    path = tmp_path / "pa.parquet"
    pq.write_table(table(), path, encryption_properties=props)
    assert path.read_bytes()[-4:] == b"PARE"
    assert alpha.decrypt(path).equals(table())


def test_coffer_writes_and_pyarrow_reads_through_crypto_factory(tmp_path: Path) -> None:
    alpha = party(tmp_path, "alpha")
    path = tmp_path / "c.parquet"
    alpha.encrypt(table(), path, footer_key="k1", column_keys={"k2": ["age", "city"], "k1": ["id"]})
    props = alpha.crypto_factory().file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )
    assert pq.read_table(path, decryption_properties=props).equals(table())
    # Another party's keyring, same key ids, different keys: PyArrow cannot read it either.
    beta = party(tmp_path, "beta")
    other = beta.crypto_factory().file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )
    with pytest.raises(Exception):
        pq.read_table(path, decryption_properties=other)
