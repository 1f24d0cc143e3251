"""Verifying TEE evidence as a party does (``coffer attest verify`` on the CLI).

Verification reads nothing but its inputs: the evidence, SEV-SNP certificates, DCAP
collateral, a sim platform key and a policy, at the time given (default: now).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence, Union

from . import _coffer
from .errors import Refused

__all__ = ["verify"]

PathLike = Union[str, "os.PathLike[str]"]


def _bytes(value: bytes | PathLike) -> bytes:
    return value if isinstance(value, bytes) else Path(value).read_bytes()


def _certs(certs: bytes | PathLike | Sequence[bytes | PathLike] | None) -> list[bytes]:
    if certs is None:
        return []
    if isinstance(certs, bytes):
        return [certs]
    if isinstance(certs, (str, os.PathLike)):
        p = Path(certs)
        if p.is_dir():
            return [f.read_bytes() for f in sorted(p.iterdir()) if f.is_file()]
        return [p.read_bytes()]
    return [_bytes(c) for c in certs]


def verify(
    tee: str,
    evidence: bytes | PathLike,
    at: datetime | int | None = None,
    collateral: PathLike | None = None,
    certs: bytes | PathLike | Sequence[bytes | PathLike] | None = None,
    policy: PathLike | None = None,
    sim_root: PathLike | None = None,
) -> dict[str, Any]:
    """Verify ``tee`` evidence (``sgx``, ``tdx``, ``snp``, ``nitro`` or ``sim``) and
    appraise it with ``policy`` (a YAML file, as a manifest's ``enclave:``).

    ``evidence`` is bytes or a file (raw, hex or base64). ``at`` is the time to verify at
    (a datetime or Unix seconds; default now). ``collateral`` is DCAP collateral for SGX/TDX
    (a dcap-qvl JSON file or a directory of Intel PCS files); ``certs`` the VCEK/VLEK (and
    ASK/ARK) for SEV-SNP; ``sim_root`` the sim platform key to trust for ``sim`` evidence.

    Returns the appraisal: ``{"tee", "verified", "tcb_status", "measurements",
    "report_data", "accepted", "failed_checks", ...}``. Raises ``Refused`` (with ``.check``
    naming the first failed check and ``.report`` the appraisal) unless the evidence
    verified and the policy accepted it.
    """
    when = int(at.timestamp()) if isinstance(at, datetime) else at
    text, refusal = _coffer.attest_verify(
        None,
        tee,
        _bytes(evidence),
        _certs(certs),
        when,
        None if collateral is None else Path(collateral),
        None if sim_root is None else Path(sim_root),
        None if policy is None else Path(policy),
    )
    report: dict[str, Any] = json.loads(text)
    if report.get("simulated"):
        print(
            "WARNING: simulated evidence proves nothing: whoever holds the sim platform key "
            "can sign any measurement.",
            file=sys.stderr,
        )
    if refusal is not None:
        check, message = refusal
        err = Refused(message, check)
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report
