"""Live services for the end-to-end tests: `coffer broker|worker|orchestrator serve`, in
simulation, as separate processes on loopback (the binaries `cargo test` or `cargo build`
left in the target directory; `COFFER_BIN_DIR` names another)."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bin_dir() -> Path:
    if "COFFER_BIN_DIR" in os.environ:
        return Path(os.environ["COFFER_BIN_DIR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug"


@dataclass
class Services:
    broker: str
    orchestrator: str
    storage: str
    sim_root: Path
    worker_measurement: str
    bin: Path
    logs: Path


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def _start(procs: list[subprocess.Popen[str]], exe: Path, log: Path, args: list[str]) -> str:
    proc = subprocess.Popen(
        [str(exe), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    procs.append(proc)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("listening on "):
            threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
            return line.removeprefix("listening on ").strip()
    raise RuntimeError(f"{' '.join(args[:2])} exited before listening; see {log}")


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    bins = bin_dir()
    coffer = bins / "coffer"
    missing = [n for n in ("coffer", "coffer-broker", "coffer-worker") if not (bins / n).is_file()]
    if missing:
        message = f"{', '.join(missing)} not in {bins}: run `cargo build --bins` or set COFFER_BIN_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    d = tmp_path_factory.mktemp("services")
    home, platform, storage = d / "home", d / "sim-platform", d / "storage"
    storage.mkdir()

    def measure(name: str) -> str:
        out = subprocess.run(
            [str(coffer), "measure", str(bins / name)], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    policy = d / "broker-policy.yaml"
    policy.write_text(
        f'tee: [sim]\nmeasurements: ["sim:measurement={measure("coffer-broker")}"]\n'
        "allow_debug: false\nallow_simulation: true\n"
    )
    procs: list[subprocess.Popen[str]] = []
    base = ["--home", str(home)]
    try:
        broker = _start(
            procs,
            coffer,
            d / "broker.log",
            [*base, "broker", "serve", "--listen", "127.0.0.1:0", "--data", str(d / "broker"),
             "--tee", "sim", "--sim-platform", str(platform)],
        )
        worker = _start(
            procs,
            coffer,
            d / "worker.log",
            [*base, "worker", "serve", "--listen", "127.0.0.1:0", "--tee", "sim", "--broker",
             broker, "--storage", str(storage), "--sim-platform", str(platform),
             "--broker-policy", str(policy)],
        )
        orchestrator = _start(
            procs,
            coffer,
            d / "orchestrator.log",
            [*base, "orchestrator", "serve", "--listen", "127.0.0.1:0", "--storage",
             str(storage), "--db", str(d / "orchestrator.sqlite"), "--worker", worker],
        )
        yield Services(
            broker=broker,
            orchestrator=orchestrator,
            storage=str(storage),
            sim_root=platform / "sim-platform.pub",
            worker_measurement=measure("coffer-worker"),
            bin=bins,
            logs=d,
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()
