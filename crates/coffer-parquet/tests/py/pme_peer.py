"""PyArrow's CryptoFactory as the interop peer for coffer-parquet's tests.

Reads one JSON job on stdin and prints one JSON result on stdout:

  {"mode": "write", "path": …, "keys": {id: hex}, "footer_key": id,
   "column_keys": {id: [column, …]}, "uniform": bool, "double_wrapping": bool,
   "plaintext_footer": bool, "data_key_bits": 128, "columns": {name: [value | null, …]}}
      -> {}
  {"mode": "read", "path": …, "keys": {id: hex}}
      -> {"schema": {name: type}, "columns": {name: [value | null, …]}}

Timestamps travel as integer microseconds since the epoch; floats as their IEEE 754 bit
patterns (unsigned integers), so values compare bit for bit whatever either JSON library does
with decimal text.
"""

import base64
import json
import os
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class LocalWrapKms(pe.KmsClient):
    """parquet-mr's InMemoryKMS wrapping: base64(nonce ‖ AES-GCM(key) ‖ tag), AAD = key id."""

    def __init__(self, master_keys):
        super().__init__()
        self.master_keys = master_keys

    def wrap_key(self, key_bytes, master_key_identifier):
        key = self.master_keys[master_key_identifier]
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key, master_key_identifier):
        key = self.master_keys[master_key_identifier]
        raw = base64.b64decode(wrapped_key)
        return AESGCM(key).decrypt(raw[:12], raw[12:], master_key_identifier.encode())


FLOAT_CODES = {"f64": "<d", "f32": "<f"}  # column -> struct code of its bit pattern


def from_bits(code, bits):
    if bits is None:
        return None
    width = struct.calcsize(code)
    return struct.unpack(code, bits.to_bytes(width, "little"))[0]


def to_bits(code, value):
    if value is None:
        return None
    return int.from_bytes(struct.pack(code, value), "little")


SCHEMA = pa.schema(
    [
        ("i64", pa.int64()),
        ("i32", pa.int32()),
        ("f64", pa.float64()),
        ("f32", pa.float32()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)


def factory(job):
    keys = {k: bytes.fromhex(v) for k, v in job["keys"].items()}
    return pe.CryptoFactory(lambda _config: LocalWrapKms(keys)), pe.KmsConnectionConfig()


def write(job):
    cf, kms = factory(job)
    cols = job["columns"]
    arrays = []
    for field in SCHEMA:
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(cols[field.name], pa.int64()).cast(field.type))
        elif field.name in FLOAT_CODES:
            code = FLOAT_CODES[field.name]
            values = [from_bits(code, b) for b in cols[field.name]]
            arrays.append(pa.array(values, field.type))
        else:
            arrays.append(pa.array(cols[field.name], field.type))
    table = pa.Table.from_arrays(arrays, schema=SCHEMA)
    config = pe.EncryptionConfiguration(
        footer_key=job["footer_key"],
        double_wrapping=job["double_wrapping"],
        plaintext_footer=job["plaintext_footer"],
        data_key_length_bits=job["data_key_bits"],
    )
    if job["uniform"]:
        config.uniform_encryption = True
    else:
        config.column_keys = job["column_keys"]
    props = cf.file_encryption_properties(kms, config)
    pq.write_table(table, job["path"], encryption_properties=props)
    return {}


def read(job):
    cf, kms = factory(job)
    props = cf.file_decryption_properties(kms, pe.DecryptionConfiguration())
    table = pq.read_table(job["path"], decryption_properties=props)
    out = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        values = column.to_pylist()
        if name in FLOAT_CODES:
            values = [to_bits(FLOAT_CODES[name], v) for v in values]
        out[name] = values
    return {"schema": {f.name: str(f.type) for f in table.schema}, "columns": out}


def main():
    job = json.load(sys.stdin)
    result = {"write": write, "read": read}[job["mode"]](job)
    json.dump(result, sys.stdout, ensure_ascii=False, allow_nan=False)
    sys.stdout.flush()
    sys.stderr.flush()
    # PyArrow's crypto factory can abort in its thread-pool teardown at interpreter exit
    # ("terminate called without an active exception"), about one run in ten under load.
    # The result is complete and flushed: skip the teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
