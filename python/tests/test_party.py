"""The coffer package against itself, PyArrow and the coffer CLI's file format."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import coffer


def table() -> pa.Table:
    return pa.table(
        {
            "patient_id": pa.array(range(1, 101), pa.int64()),
            "age": pa.array([20 + i % 60 for i in range(100)], pa.int64()),
            "diagnosis": pa.array([f"diag-{i % 7}" for i in range(100)]),
        }
    )


@pytest.fixture()
def alpha(tmp_path: Path) -> coffer.Party:
    party = coffer.Party.init("alpha", home=tmp_path / "alpha")
    party.keys.new("k1")
    party.keys.new("k2", bits=128)
    return party


def test_init_open_and_identity(tmp_path: Path, alpha: coffer.Party) -> None:
    ident = alpha.identity
    assert ident.name == "alpha"
    assert ident.signing_key.startswith("ed25519:")
    assert ident.recipient.startswith("age1")
    again = coffer.Party.open(tmp_path / "alpha")
    assert again.identity == ident
    with pytest.raises(coffer.CofferError) as e:
        coffer.Party.init("alpha", home=tmp_path / "alpha")
    assert e.value.check == "identity_exists"
    with pytest.raises(coffer.UsageError) as e:
        coffer.Party.open(tmp_path / "nobody")
    assert e.value.check == "no_identity"


def test_keys_are_listed_never_shown_and_never_replaced(alpha: coffer.Party) -> None:
    assert alpha.keys.list() == [coffer.KeyInfo("k1", 256), coffer.KeyInfo("k2", 128)]
    info = alpha.keys.import_hex("k3", "00" * 32)
    assert info == coffer.KeyInfo("k3", 256)
    with pytest.raises(coffer.CofferError) as e:
        alpha.keys.new("k1")
    assert e.value.check == "key_exists"
    with pytest.raises(coffer.CofferError):
        alpha.keys.new("k4", bits=100)


def test_round_trip_with_footer_and_column_keys(tmp_path: Path, alpha: coffer.Party) -> None:
    path = tmp_path / "t.parquet"
    rows = alpha.encrypt(table(), path, footer_key="k1", column_keys={"k2": ["age"]})
    assert rows == 100
    assert path.read_bytes()[-4:] == b"PARE"
    assert alpha.decrypt(path).equals(table())
    info = alpha.inspect(path)
    assert "k1" in str(info) and "k2" in str(info)
    # PyArrow without keys cannot read it.
    with pytest.raises(Exception):
        pq.read_table(path)


def test_csv_and_parquet_paths_are_data_too(tmp_path: Path, alpha: coffer.Party) -> None:
    plain = tmp_path / "plain.parquet"
    pq.write_table(table(), plain)
    assert alpha.encrypt(plain, tmp_path / "a.parquet", footer_key="k1") == 100
    assert alpha.decrypt(tmp_path / "a.parquet").equals(table())
    with pytest.raises(coffer.UsageError) as e:
        alpha.encrypt(42, tmp_path / "b.parquet", footer_key="k1")
    assert e.value.check == "data"
    assert not (tmp_path / "b.parquet").exists()


def test_another_party_is_refused_by_name(tmp_path: Path, alpha: coffer.Party) -> None:
    path = tmp_path / "t.parquet"
    alpha.encrypt(table(), path, footer_key="k1")
    beta = coffer.Party.init("beta", home=tmp_path / "beta")
    with pytest.raises(coffer.Refused) as e:
        beta.decrypt(path)
    assert e.value.check == "key_not_found"
    # Same id, different key: the unwrap fails, naming the key.
    beta.keys.new("k1")
    with pytest.raises(coffer.Refused) as e:
        beta.decrypt(path)
    assert e.value.check == "key_unwrap"
    assert "diag-" not in str(e.value)


def test_tampered_files_are_refused_or_read_unchanged(tmp_path: Path, alpha: coffer.Party) -> None:
    """Every flipped byte is refused by name, or lies where a read never looks (page
    indexes, module length prefixes) and the read returns exactly the original."""
    path = tmp_path / "t.parquet"
    alpha.encrypt(table(), path, footer_key="k1")
    data = path.read_bytes()
    checks: dict[str, int] = {}
    unchanged = 0
    for offset in range(0, len(data), 7):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        tampered = tmp_path / "bad.parquet"
        tampered.write_bytes(bytes(bad))
        try:
            back = alpha.decrypt(tampered)
        except coffer.Refused as e:
            assert "diag-" not in str(e)
            checks[e.check] = checks.get(e.check, 0) + 1
        else:
            assert back.equals(table()), offset
            unchanged += 1
    # Named refusals of the file, never an internal error or a blame on the caller.
    assert not set(checks) & {"internal", "io", "invalid_input", "api_misuse"}, checks
    assert checks.get("column_decryption") and checks.get("footer_decryption"), checks
    assert unchanged * 4 < len(data) // 7, (unchanged, checks)
    truncated = tmp_path / "short.parquet"
    truncated.write_bytes(data[:100])
    with pytest.raises(coffer.Refused):
        alpha.decrypt(truncated)


def test_encrypting_under_an_unknown_key_writes_nothing(
    tmp_path: Path, alpha: coffer.Party
) -> None:
    with pytest.raises(coffer.CofferError) as e:
        alpha.encrypt(table(), tmp_path / "x.parquet", footer_key="nope")
    assert e.value.check == "key_not_found"
    assert list(tmp_path.glob("x.parquet*")) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".coffer-tmp")] == []


def test_pandas_in_and_out(tmp_path: Path, alpha: coffer.Party) -> None:
    pandas = pytest.importorskip("pandas")
    df = pandas.DataFrame({"id": [1, 2, 3], "city": ["Oslo", "Lima", "Pune"]})
    path = tmp_path / "df.parquet"
    assert alpha.encrypt(df, path, footer_key="k1") == 3
    back = alpha.decrypt(path).to_pandas()
    pandas.testing.assert_frame_equal(back, df)


def test_seal_and_unseal_bind_the_name_and_refuse_tampering(
    tmp_path: Path, alpha: coffer.Party
) -> None:
    src = tmp_path / "model.json"
    src.write_bytes(b'{"trees": [1, 2, 3]}' * 1000)
    alpha.seal(src, tmp_path / "model.sealed", key="k1")
    alpha.unseal(tmp_path / "model.sealed", tmp_path / "back.json")
    assert (tmp_path / "back.json").read_bytes() == src.read_bytes()
    # Renamed: it does not open under another name, unless the sealed name is given.
    (tmp_path / "model.sealed").rename(tmp_path / "other.sealed")
    with pytest.raises(coffer.Refused):
        alpha.unseal(tmp_path / "other.sealed", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    alpha.unseal(tmp_path / "other.sealed", tmp_path / "x.json", name="model.sealed")
    data = bytearray((tmp_path / "other.sealed").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "bad.sealed").write_bytes(bytes(data))
    with pytest.raises(coffer.Refused):
        alpha.unseal(tmp_path / "bad.sealed", tmp_path / "y.json", name="model.sealed")
    assert not (tmp_path / "y.json").exists()


def test_seal_to_age_recipients(tmp_path: Path, alpha: coffer.Party) -> None:
    beta = coffer.Party.init("beta", home=tmp_path / "beta")
    src = tmp_path / "report.csv"
    src.write_text("a,b\n1,2\n")
    alpha.seal(src, tmp_path / "report.age", to=[beta.identity.recipient])
    beta.unseal(tmp_path / "report.age", tmp_path / "report-beta.csv")
    assert (tmp_path / "report-beta.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(coffer.Refused):
        alpha.unseal(tmp_path / "report.age", tmp_path / "nope.csv")
    with pytest.raises(coffer.UsageError) as e:
        alpha.seal(src, tmp_path / "z", key="k1", to=[beta.identity.recipient])
    assert e.value.check == "seal_to"
