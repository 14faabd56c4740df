"""What the kshot serve tests share: a small model directory, server processes on loopback, a throwaway
PostgreSQL cluster."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "where is my card",
    "my card has not arrived yet",
    "when will my new card come",
    "what is my balance",
    "how much money is in my account",
    "show my account balance",
    "I want to close my account",
    "please delete my account",
    "cancel my account for good",
]
LABELS = ["card_arrival"] * 3 + ["balance"] * 3 + ["close_account"] * 3


_MODEL: list[Path] = []


def make_model() -> Path:
    """A logistic model directory on 3 intents (made once per test process, shared by the modules)."""
    if not _MODEL:
        from kshot.text.classifier import FewShotClassifier

        root = Path(tempfile.mkdtemp(prefix="kshot-serve-model-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _MODEL.append(FewShotClassifier(method="logistic").fit(TEXTS, LABELS).save(root / "model"))
    return _MODEL[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m kshot serve MODEL_DIR`` in a child process on 127.0.0.1."""

    def __init__(self, model_dir: Path, db: str, workdir: Path, *args: str, threads: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kshot",
                "serve",
                str(Path(model_dir).resolve()),
                "--db",
                db,
                "--port",
                str(self.port),
                "--export-dir",
                str(Path(workdir).resolve() / "exports"),
                "--poll",
                "0.3",
                *args,
            ],
            cwd=workdir,
            env=env,
            stdout=open(self.log, "w"),
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 180.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the server did not answer within {timeout} s:\n{self.log.read_text()}")

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def assert_error(response: httpx.Response, status: int, field: str | None = None, limit: str | None = None) -> dict:
    """A JSON error with this status that names the field (and the limit), and no traceback."""
    assert response.status_code == status, (response.status_code, response.text)
    assert "Traceback" not in response.text
    err = response.json()["error"]
    assert err["message"]
    if field is not None:
        assert err.get("field") == field, err
        assert field.split("[")[0].split(".")[-1] in err["message"] or field == "body", err
    if limit is not None:
        assert err.get("limit") == limit, err
    return err


class Postgres:
    """A throwaway PostgreSQL cluster on a loopback port (run as the ``postgres`` user when we are root)."""

    def __init__(self):
        bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins and not shutil.which("initdb"):
            pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs Debian's postgresql")
        self.bin = Path(bins[-1]).parent if bins else Path(shutil.which("initdb")).parent
        self.root = Path(tempfile.mkdtemp(prefix="kshot-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                pytest.skip("running as root without runuser; PostgreSQL refuses to run as root")
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.root / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        out = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120)
        if out.returncode:
            log = self.root / "log"
            pytest.skip(
                f"cannot start a PostgreSQL cluster ({tool} exited {out.returncode}): "
                f"{(out.stderr or out.stdout).strip()[-500:]} {log.read_text()[-500:] if log.exists() else ''}"
            )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


class InProcess:
    """``kshot.serve.app.create_app`` under uvicorn in a thread of this process, on 127.0.0.1: real HTTP,
    and the test can reach the app's model and store to make faults happen (a slow database, a failing
    refit, a dead batcher)."""

    def __init__(self, model_dir: Path, db: str, workdir: Path, limits: dict | None = None, **config):
        import threading

        import uvicorn

        from kshot.serve.app import Config, create_app

        self.app = create_app(
            Config(
                model_dir=str(model_dir),
                db=db,
                export_dir=str(Path(workdir) / "exports"),
                limits=limits or {},
                **config,
            )
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the in-process server did not start")
            time.sleep(0.05)

    @property
    def model(self):
        return self.app.state.holder["model"]

    @property
    def store(self):
        return self.app.state.store

    def call(self, coro):
        """Run ``coro`` on the server's event loop; returns its result."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.model.tasks[0].get_loop()).result(30)

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
