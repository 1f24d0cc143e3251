"""The exceptions the coffer package raises."""

from __future__ import annotations


class CofferError(Exception):
    """Base class of every coffer error. ``check`` names what failed, as on the CLI."""

    check: str

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


class Refused(CofferError):
    """A check refused: a tampered or foreign file, a wrong key, bad evidence, a replay.

    ``check`` is the failed check's stable name (``footer_decryption``, ``key_unwrap``,
    ``output_digest``, ``measurement``, …), the same name the CLI prints in brackets.
    """


class UsageError(CofferError):
    """The caller's mistake: a bad argument, a missing file or identity, an I/O failure."""
