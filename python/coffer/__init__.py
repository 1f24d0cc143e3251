"""Coffer: confidential analytics across organisations that do not trust each other.

Every party encrypts its data on its own machine; a compute service in a trusted execution
environment proves by remote attestation what code it runs; keys reach it only for
computations that every data owner signed; results leave encrypted to the named recipients.

This package is a thin layer over the Rust client (``coffer._coffer``): all cryptography
happens there. It converts between pandas / PyArrow and Parquet.

>>> import coffer
>>> alpha = coffer.Party.init("alpha", home="/tmp/alpha")   # doctest: +SKIP
>>> alpha.keys.new("k1")                                      # doctest: +SKIP
>>> alpha.encrypt(df, "patients.parquet", footer_key="k1")    # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from . import _coffer
from .errors import CofferError, Refused, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "Broker",
    "CofferError",
    "Identity",
    "Job",
    "KeyInfo",
    "Keys",
    "Manifest",
    "Party",
    "Refused",
    "Results",
    "UsageError",
    "__version__",
    "attest",
    "download",
    "gbdt",
    "upload",
]

__version__: str = _coffer.__version__

PathLike = Union[str, "os.PathLike[str]"]
TableLike = Union[pa.Table, "pandas.DataFrame", PathLike]


@dataclass(frozen=True)
class Identity:
    """A party's public identity, the part parties exchange."""

    name: str
    """The party's name, as manifests use it."""
    signing_key: str
    """``ed25519:<hex>``: the key that verifies the party's signatures."""
    recipient: str
    """``age1…``: the key results are encrypted to."""


@dataclass(frozen=True)
class KeyInfo:
    """A key in the keyring: its id and size, never the key."""

    id: str
    bits: int


class Keys:
    """The party's keyring of data and master keys (``party.keys``)."""

    def __init__(self, native: _coffer.NativeParty) -> None:
        self._native = native

    def new(self, id: str, bits: int = 256) -> KeyInfo:
        """Create a random ``bits``-bit key (128, 192 or 256) named ``id``.

        Raises ``Refused`` (``key_exists``) if the id is taken: keys are never replaced.
        """
        self._native.key_new(id, bits)
        return KeyInfo(id, bits)

    def import_hex(self, id: str, hex: str) -> KeyInfo:
        """Import a key given as hex (16, 24 or 32 bytes) under ``id``."""
        self._native.key_import_hex(id, hex)
        return next(k for k in self.list() if k.id == id)

    def list(self) -> builtins.list[KeyInfo]:
        """Every key's id and size."""
        return [KeyInfo(i, b) for i, b in self._native.key_list()]


def _to_table(data: TableLike) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        return pq.read_table(path)
    if hasattr(data, "to_parquet") and hasattr(data, "columns"):  # a pandas DataFrame
        return pa.Table.from_pandas(data, preserve_index=False)
    raise UsageError(
        f"data must be a pandas DataFrame, a pyarrow Table or a path, not {type(data).__name__}",
        "data",
    )


class Manifest:
    """A collaboration manifest: parties, datasets pinned by digest, computations, the
    enclave policy. Load one with ``Manifest.load(path)``; sign it with ``party.sign``."""

    def __init__(self, native: _coffer.NativeManifest) -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "Manifest":
        """Read and validate the manifest at ``path``.

        Raises ``Refused`` naming the failed check (``syntax``, ``unknown_owner``,
        ``unknown_constraint``, ``bad_digest``, …) for an invalid manifest.
        """
        return cls(_coffer.NativeManifest.load(Path(path)))

    @property
    def path(self) -> Path:
        """Its file."""
        return Path(self._native.path)

    @property
    def hash(self) -> str:
        """The canonical hash, ``sha256:<hex>``: what parties sign and jobs name."""
        return self._native.hash

    @property
    def id(self) -> str:
        """The collaboration's id."""
        return self._native.id

    def check(self) -> None:
        """Validate the file again (it may have changed since it was loaded)."""
        Manifest.load(self.path)

    def status(
        self, sigs: PathLike | None = None, predecessors: Sequence[PathLike] = ()
    ) -> dict[str, Any]:
        """Who signed, who is missing, and whether the manifest is active.

        Signatures are read from ``sigs`` (default: ``FILE.sigs``); for an update, pass its
        predecessors, nearest first. Returns ``{"hash", "active", "signed_by", "missing",
        "invalid", ...}``.
        """
        text = self._native.status_json(
            None if sigs is None else Path(sigs), [Path(p) for p in predecessors]
        )
        result: dict[str, Any] = json.loads(text)
        return result

    def __repr__(self) -> str:
        return f"Manifest({self.id!r}, {self.hash!r})"


class _KeyringKms(pe.KmsClient):  # type: ignore[misc]
    """PyArrow's KMS client, backed by a party's keyring: keys are wrapped in Rust."""

    def __init__(self, native: _coffer.NativeParty) -> None:
        super().__init__()
        self._native = native

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return self._native.wrap_key(bytes(key_bytes), master_key_identifier)

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return self._native.unwrap_key(wrapped_key, master_key_identifier)


class Party:
    """A party: its identity and keyring, kept in a home directory.

    Create one with ``Party.init(name)``, or open an existing home with ``Party.open()``.
    ``home`` defaults to ``$COFFER_HOME``, else ``~/.coffer``, as for the ``coffer`` CLI.
    """

    def __init__(self, native: _coffer.NativeParty) -> None:
        self._native = native
        self.keys = Keys(native)

    @classmethod
    def init(cls, name: str, home: PathLike | None = None) -> "Party":
        """Create the identity of party ``name`` (an Ed25519 signing key and an age key).

        Refuses (``identity_exists``) to overwrite an identity already in ``home``.
        """
        return cls(_coffer.NativeParty.init(name, None if home is None else Path(home)))

    @classmethod
    def open(cls, home: PathLike | None = None) -> "Party":
        """Open the party whose identity is in ``home``."""
        return cls(_coffer.NativeParty.open(None if home is None else Path(home)))

    @property
    def home(self) -> Path:
        """The home directory."""
        return Path(self._native.home)

    @property
    def identity(self) -> Identity:
        """The public identity: name, signing key, age recipient."""
        return Identity(*self._native.identity())

    def encrypt(
        self,
        data: TableLike,
        path: PathLike,
        footer_key: str,
        column_keys: Mapping[str, Sequence[str]] | None = None,
        double_wrapping: bool = True,
        plaintext_footer: bool = False,
    ) -> int:
        """Encrypt ``data`` to an encrypted Parquet file at ``path``; returns the row count.

        ``data`` is a pandas DataFrame, a pyarrow Table, or a path to a CSV or Parquet file.
        The footer, and every column not listed in ``column_keys``, is encrypted under the
        keyring key ``footer_key``; ``column_keys={"k2": ["age", "diagnosis"]}`` puts those
        columns under their own key. With ``column_keys``, unlisted columns stay plaintext,
        as with PyArrow. The file is PyArrow-compatible (Parquet Modular Encryption with
        PyArrow's key-material format) and appears whole or not at all.
        """
        table = _to_table(data)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        pairs = [(k, list(cols)) for k, cols in (column_keys or {}).items()]
        return self._native.encrypt_parquet(
            buf.getvalue(), Path(path), footer_key, pairs, double_wrapping, plaintext_footer
        )

    def decrypt(self, path: PathLike, aad_prefix: str | None = None) -> pa.Table:
        """Decrypt an encrypted Parquet file with this party's keys into a pyarrow Table.

        Raises ``Refused`` naming the failed check (``key_not_found``, ``key_unwrap``,
        ``footer_decryption``, ``column_decryption``, ``corrupt``, …) for a wrong key or a
        tampered file.
        """
        plain = self._native.decrypt_parquet(Path(path), aad_prefix)
        return pq.read_table(pa.BufferReader(plain))

    def seal(
        self,
        src: PathLike,
        dst: PathLike,
        key: str | None = None,
        to: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        """Seal the file ``src`` into ``dst``.

        With ``key``: under that keyring key in Coffer's seekable sealed format, bound to
        ``name`` (default: ``dst``'s file name), so it will not open under another name.
        With ``to``: encrypted to those age recipients (``age1…``), for ``age -d`` or
        ``unseal``. ``dst`` appears whole or not at all.
        """
        self._native.seal(Path(src), Path(dst), key, list(to or []), name)

    def unseal(self, src: PathLike, dst: PathLike, name: str | None = None) -> None:
        """Open ``src`` (sealed under a keyring key, or an age file to this party) into ``dst``.

        A sealed file opens only under the name it was sealed with (default: ``src``'s file
        name); a renamed or tampered file raises ``Refused``.
        """
        self._native.unseal(Path(src), Path(dst), name)

    def sign(self, manifest: Manifest, predecessor: Manifest | None = None) -> Path:
        """Sign ``manifest`` as this party; the signature is merged into ``FILE.sigs``.

        For an update, pass its ``predecessor`` (the manifest it replaces). Returns the
        signatures file's path.
        """
        pred = None if predecessor is None else predecessor.path
        return Path(self._native.sign_manifest(manifest.path, pred))

    def crypto_factory(self) -> pe.CryptoFactory:
        """A ``pyarrow.parquet.encryption.CryptoFactory`` whose KMS is this party's keyring.

        PyArrow then writes and reads files Coffer reads and writes::

            cf = alpha.crypto_factory()
            config = pe.EncryptionConfiguration(footer_key="k1", column_keys={"k2": ["age"]})
            props = cf.file_encryption_properties(pe.KmsConnectionConfig(), config)
            pq.write_table(table, "t.parquet", encryption_properties=props)

        Key wrapping happens in Rust; master keys never reach Python.
        """
        native = self._native
        return pe.CryptoFactory(lambda _config: _KeyringKms(native))

    def inspect(self, path: PathLike, aad_prefix: str | None = None) -> dict[str, Any]:
        """What a file is and how it is protected: format, algorithm, key ids, columns."""
        result: dict[str, Any] = json.loads(self._native.inspect_json(Path(path), aad_prefix))
        return result

    def broker(
        self,
        url: str,
        policy: PathLike | None = None,
        allow_simulation: bool = False,
        sim_root: PathLike | None = None,
    ) -> "Broker":
        """The key broker at ``url`` (``https://HOST:PORT``), attested and pinned on first use.

        The first call appraises the broker's evidence (with ``policy``, a YAML file as a
        manifest's ``enclave:``; without one, trust on first use) and pins its TEE,
        measurement, TLS key and audit key in this party's home; every later call is checked
        against that pin. Simulated evidence is refused unless ``allow_simulation``, and is
        then trusted only from the sim platform key in ``sim_root`` (a file of 64 hex
        digits; default: this home's ``sim-platform.pub``). A broker already pinned is not
        appraised again: call ``broker.attest(...)`` for that.

        Raises ``Refused`` (``simulation``, ``sim_root``, ``measurement``, ``pin``, …) when
        the broker fails appraisal.
        """
        b = Broker(self, _coffer.NativeBroker(self.home, url))
        if b.pin is None:
            b.attest(policy=policy, allow_simulation=allow_simulation, sim_root=sim_root)
        return b

    def submit(
        self,
        orchestrator: str,
        manifest: Manifest,
        computation: str,
        params: Mapping[str, Any] | None = None,
        format: str = "parquet",
        predecessors: Sequence[Manifest] = (),
    ) -> "Job":
        """Sign a job for ``computation`` of ``manifest`` and submit it to ``orchestrator``.

        The job is signed by this party (the manifest's signatures are read from
        ``FILE.sigs``); ``params`` fills the computation's template parameters; ``format``
        is the output format, ``"parquet"`` or ``"csv"``. For an updated manifest, pass its
        ``predecessors``, nearest first. Returns the queued ``Job``; follow it with
        ``job.wait()`` and collect it with ``job.result(storage)``.

        Raises ``Refused`` when the orchestrator refuses the request and ``UsageError`` for
        a bad argument or an unreachable orchestrator.
        """
        native = _coffer.NativeOrchestrator(self.home, orchestrator)
        status = json.loads(
            native.submit(
                manifest.path,
                computation,
                json.dumps(dict(params or {})),
                format,
                None,
                [p.path for p in predecessors],
            )
        )
        return Job(native, status["id"], manifest)

    def job(self, orchestrator: str, id: str, manifest: Manifest) -> "Job":
        """A job submitted earlier (by any party), to follow it or collect its outputs."""
        return Job(_coffer.NativeOrchestrator(self.home, orchestrator), id, manifest)

    def __repr__(self) -> str:
        return f"Party({self.identity.name!r}, home={str(self.home)!r})"


class Broker:
    """A key broker as this party uses it (``party.broker(url)``): pinned, and checked
    against the pin on every call."""

    def __init__(self, party: Party, native: _coffer.NativeBroker) -> None:
        self._party = party
        self._native = native

    @property
    def url(self) -> str:
        """The broker's URL."""
        return self._native.url

    @property
    def pin(self) -> dict[str, Any] | None:
        """What was pinned: TEE, simulated, measurements, TLS key hash, audit key, audit head."""
        text = self._native.pin_json()
        return None if text is None else dict(json.loads(text))

    def attest(
        self,
        policy: PathLike | None = None,
        allow_simulation: bool = False,
        sim_root: PathLike | None = None,
    ) -> dict[str, Any]:
        """Appraise the broker again and replace the pin (keeping the audit head seen)."""
        pin: dict[str, Any] = json.loads(
            self._native.attest(
                None if policy is None else Path(policy),
                allow_simulation,
                None if sim_root is None else Path(sim_root),
            )
        )
        if pin.get("simulated"):
            print(
                f"WARNING: {pin['url']} runs in SIMULATION mode: its evidence proves nothing, "
                "and the host can read every key it holds.",
                file=sys.stderr,
            )
        return pin

    def submit(self, manifest: Manifest) -> dict[str, Any]:
        """Submit ``manifest`` with the signatures in ``FILE.sigs``.

        Returns the broker's judgement: ``{"hash", "active", "signed_by", "missing",
        "invalid"}``. The manifest is active once every party has signed it.
        """
        result: dict[str, Any] = json.loads(self._native.submit(manifest.path, None))
        return result

    def grant(
        self,
        dataset: str,
        key: str,
        manifest: Manifest,
        reuse_across_manifests: bool = False,
    ) -> dict[str, Any]:
        """Give the broker keyring key ``key`` as ``dataset``'s key under ``manifest``.

        The broker releases it only to workers that pass the manifest's enclave policy, for
        jobs of its computations. A key already granted to a manifest with a different
        enclave policy is refused (``key_reuse``) unless ``reuse_across_manifests``.
        Raises ``Refused`` (``not_owner``, ``unknown_dataset``, ``key_exists``, …).
        """
        result: dict[str, Any] = json.loads(
            self._native.grant(manifest.path, dataset, key, reuse_across_manifests)
        )
        return result

    def revoke(self, dataset: str, manifest: Manifest) -> None:
        """Revoke this party's key for ``dataset`` under ``manifest``: no later release."""
        self._native.revoke(manifest.path, dataset)

    def retire(self, manifest: Manifest) -> None:
        """Retire ``manifest``: the broker releases no key for it any more."""
        self._native.retire(manifest.path)

    def audit(self) -> builtins.list[dict[str, Any]]:
        """The broker's audit log, every entry verified: signed by the pinned audit key,
        chained, and extending the log seen last (a truncated or forked log is refused as
        ``audit_log``). Each entry is ``{"entry": {"seq", "time", "event": {...}, ...},
        "signature"}``."""
        log = json.loads(self._native.audit())
        entries: builtins.list[dict[str, Any]] = log["entries"]
        return entries

    def __repr__(self) -> str:
        return f"Broker({self.url!r})"


class Results(dict[str, Union[pa.Table, bytes]]):
    """A job's verified, decrypted outputs for this party: ``{file_name: Table | bytes}``.

    Tables (``.parquet`` and ``.csv`` outputs) are pyarrow Tables; anything else (a model,
    JSON) is bytes. ``receipt`` is the worker's receipt they were checked against.
    """

    receipt: dict[str, Any]

    @property
    def simulated(self) -> bool:
        """Whether the worker ran in simulation mode (nothing was protected)."""
        return bool(self.receipt.get("simulated"))

    def table(self) -> pa.Table:
        """The one table among the outputs."""
        tables = [v for v in self.values() if isinstance(v, pa.Table)]
        if len(tables) != 1:
            raise UsageError(
                f"{len(tables)} tables among the outputs ({', '.join(self)}); pick one by name",
                "outputs",
            )
        return tables[0]

    def to_pandas(self) -> "pandas.DataFrame":
        """The one table among the outputs, as a pandas DataFrame."""
        frame: "pandas.DataFrame" = self.table().to_pandas()
        return frame


def _output(name: str, data: bytes) -> pa.Table | bytes:
    if name.endswith(".parquet"):
        return pq.read_table(pa.BufferReader(data))
    if name.endswith(".csv"):
        import pyarrow.csv as pacsv

        return pacsv.read_csv(pa.BufferReader(data))
    return data


class Job:
    """A submitted job (``party.submit(...)``)."""

    def __init__(self, native: _coffer.NativeOrchestrator, id: str, manifest: Manifest) -> None:
        self._native = native
        self.id = id
        """The job id (64 hex digits)."""
        self.manifest = manifest

    def status(self) -> dict[str, Any]:
        """Where the job is: ``{"id", "state", "attempts", "worker", "check", ...}``."""
        result: dict[str, Any] = json.loads(self._native.status(self.id))
        return result

    def wait(
        self,
        timeout: float = 600,
        progress: bool | Callable[[dict[str, Any], float], None] = True,
        storage: str | None = None,
    ) -> dict[str, Any]:
        """Wait for the job to finish; returns its final status.

        ``progress=True`` shows a one-line progress display on a terminal (stderr);
        a callable is called with each status seen and the seconds waited. A failed job
        raises ``Refused`` with the worker's check; with ``storage``, the message includes
        the worker's detail when it was encrypted to this party. Past ``timeout`` seconds it
        raises ``UsageError`` (``timeout``). Ctrl-C stops waiting.
        """
        callback: Callable[[str, float], None] | None = None
        tty = progress is True and sys.stderr.isatty()
        if callable(progress):
            user = progress

            def callback(text: str, secs: float) -> None:
                user(json.loads(text), secs)

        elif tty:

            def callback(text: str, secs: float) -> None:
                s = json.loads(text)
                worker = f", worker {s['worker']}" if s.get("worker") else ""
                sys.stderr.write(
                    f"\r\x1b[2Kjob {self.id[:12]}…: {s['state']} "
                    f"(attempt {s.get('attempts', 0)}{worker}) {secs:.0f}s"
                )
                sys.stderr.flush()

        try:
            result: dict[str, Any] = json.loads(
                self._native.wait(self.id, float(timeout), callback, storage)
            )
        finally:
            if tty:
                sys.stderr.write("\r\x1b[2K")
                sys.stderr.flush()
        return result

    def result(
        self, storage: str, dir: PathLike | None = None, sim_root: PathLike | None = None
    ) -> Results:
        """This party's outputs, after every check passed.

        The worker's receipt and evidence are verified against the manifest's enclave
        policy, every output's digest against the receipt, and only then is anything
        decrypted. Returns ``{file_name: pyarrow.Table | bytes}`` (``.to_pandas()`` for a
        single table); with ``dir``, the outputs are also written there, all or none.
        Simulated workers are trusted only from sim platform keys this home pinned (or
        ``sim_root``). Raises ``Refused`` (``receipt_signature``, ``measurement``,
        ``output_digest``, ``not_a_recipient``, …) and writes nothing if any check fails.
        """
        receipt, outputs = self._native.results(
            self.id,
            self.manifest.path,
            storage,
            None if dir is None else Path(dir),
            None if sim_root is None else Path(sim_root),
        )
        results = Results({name: _output(name, data) for name, _rows, data in outputs})
        results.receipt = json.loads(receipt)
        if results.simulated:
            print(
                "WARNING: the worker ran in SIMULATION mode; nothing was protected",
                file=sys.stderr,
            )
        return results

    def __repr__(self) -> str:
        return f"Job({self.id!r})"


def upload(path: PathLike, storage: str, name: str) -> str:
    """Put the file at ``path`` (ciphertext) into ``storage`` (``file:///DIR`` or a
    directory) as ``name``; returns its digest (``sha256:<hex>``)."""
    return _coffer.upload(Path(path), storage, name)


def download(name: str, storage: str, path: PathLike) -> str:
    """Get object ``name`` from ``storage`` into ``path`` (whole or not at all); returns
    its digest."""
    return _coffer.download(name, storage, Path(path))


from . import attest, gbdt  # noqa: E402  (submodules use the classes above)
