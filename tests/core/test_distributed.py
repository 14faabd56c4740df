"""Training in several processes (kshot.core.distributed): 2 ranks with gloo on loopback give the
one-process step; a killed rank fails the run with a message instead of a hang; bad --nproc input."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy import TOY

from kshot.cli import main
from kshot.core import distributed
from kshot.data import DATASETS

WORKER = str(Path(__file__).parent.parent / "dist_worker.py")
ROOT = str(Path(__file__).resolve().parents[2])
LAUNCH = distributed.launch
COMMON = [
    "train",
    "--dataset",
    "toy",
    "--backbone",
    "mlp",
    "-b",
    "hidden=[16]",
    "-b",
    "out_dim=8",
    "--way",
    "3",
    "--shot",
    "2",
    "--query",
    "2",
    "--val-way",
    "3",
    "--val-episodes",
    "4",
    "--lr",
    "0.01",
    "--no-progress",
]


@pytest.fixture
def toy_cli(monkeypatch):
    """The toy dataset in this process and in the processes `--nproc` starts (through dist_worker.py)."""
    monkeypatch.setitem(DATASETS, "toy", TOY)
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("KSHOT_DIST_TIMEOUT", "60")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(distributed, "launch", lambda n, args: LAUNCH(n, ["cli", *args], script=WORKER))


def weights(run):
    return load_file(str(run / "last.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        if not k.startswith("optim."):
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_maml_two_ranks_equal_one_process_and_resume(tmp_path, toy_cli, capfd):
    maml = COMMON + ["--method", "maml", "--meta-batch", "4", "--val-every", "8", "-p", "inner_lr=0.1"]
    # two processes, 8 tasks (2 steps), then resumed to 16 tasks (4 steps) ...
    assert main(maml + ["--episodes", "8", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    assert main(maml + ["--episodes", "16", "--nproc", "2", "--resume", "--out", str(tmp_path / "two")]) == 0
    out = capfd.readouterr()  # the processes' own output too: the launcher reports, rank 0 does not repeat it
    assert out.err.count("4 tasks per step over 2 processes: 2 + 2") == 2, out.err
    assert out.out.count("best validation accuracy") == 2, out.out
    assert "after 16 episodes" in out.out and "2 processes" in out.out
    # ... equal one process doing the 4 steps of 4 tasks in one go
    assert main(maml + ["--episodes", "16", "--out", str(tmp_path / "one")]) == 0
    assert_same_weights(tmp_path / "two", tmp_path / "one")
    assert any(k.startswith("optim.") for k in weights(tmp_path / "two"))  # Adam's state, resumed


def test_protonet_two_ranks_uneven_split_equal_one_process(tmp_path, toy_cli, capsys):
    # plain SGD: the last layer's bias has a zero gradient up to rounding (distances ignore a shift),
    # which Adam would blow up to full-size steps of random sign
    proto = COMMON + [
        "--method",
        "protonet",
        "--meta-batch",
        "3",
        "--episodes",
        "9",
        "--val-every",
        "9",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
    ]
    assert main(proto + ["--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    assert "3 tasks per step over 2 processes: 2 + 1 (uneven" in capsys.readouterr().err
    assert main(proto + ["--out", str(tmp_path / "one")]) == 0
    assert_same_weights(tmp_path / "two", tmp_path / "one")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_rank_fails_the_run_with_a_message(tmp_path):
    """Two processes started as an external torchrun would (no launcher to stop the survivor): rank 1
    is SIGKILLed in its third step; rank 0 must stop with a one-line error, not wait for ever."""
    port = free_port()
    args = COMMON + [
        "--method",
        "protonet",
        "--meta-batch",
        "2",
        "--episodes",
        "40",
        "--val-every",
        "40",
        "--out",
        str(tmp_path / "run"),
    ]
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "KSHOT_DIST_TIMEOUT": "30",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, WORKER, "die", "1", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    t0 = time.monotonic()
    try:
        _, err0 = procs[0].communicate(timeout=90)
    finally:
        for p in procs:
            p.kill()
    assert procs[1].wait() == -9
    assert procs[0].returncode == 1, err0
    lines = [line for line in err0.splitlines() if line.startswith("error:")]
    assert (
        len(lines) == 1 and "rank 0 of 2: the gradient all-reduce failed: another process of the run died" in lines[0]
    ), err0
    assert "Traceback" not in err0
    assert time.monotonic() - t0 < 90
    assert not (tmp_path / "run" / "last.json").exists()  # no checkpoint was due: none half-written


def test_launcher_reports_a_killed_rank(tmp_path, toy_cli, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch", lambda n, args: LAUNCH(n, ["die", "1", *args], script=WORKER))
    code = main(
        COMMON
        + [
            "--method",
            "protonet",
            "--meta-batch",
            "2",
            "--episodes",
            "40",
            "--nproc",
            "2",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("error: training with 2 processes failed: rank 1 was killed by signal SIGKILL"), err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--nproc", "0"], "--nproc must be an integer >= 1, got 0"),
        (["--nproc", "64"], "--nproc 64 is more than the"),
        (["--nproc", "2", "--meta-batch", "1"], "meta_batch=1 is smaller than the number of processes (2)"),
        (["--nproc", "2", "--device", "cuda"], "--nproc 2 needs one GPU per process"),
    ],
)
def test_nproc_user_errors(argv, message, tmp_path, toy_cli, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "usable_cores", lambda: 4)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    code = main(COMMON + ["--method", "protonet", "--episodes", "4", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_nproc_inside_torchrun_is_refused(tmp_path, toy_cli, capsys, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    assert main(COMMON + ["--method", "protonet", "--meta-batch", "2", "--nproc", "2", "--out", str(tmp_path)]) == 2
    assert "already runs under torchrun" in capsys.readouterr().err


def test_share_covers_every_task_once():
    for total in range(1, 9):
        for size in range(1, total + 1):
            parts = [distributed.share(total, distributed.World(r, size)) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


def test_the_root_failure_is_the_killed_rank_not_a_peer_or_a_rank_torchrun_stopped(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    def failures(*rows):  # (rank, exit code, second torchrun noticed it), in detection order
        out = {}
        for rank, code, when in rows:
            out[rank] = ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file=str(tmp_path / "x"))
            out[rank].timestamp = when
        return out

    root = lambda *rows: distributed.root_failure(failures(*rows))[0]  # noqa: E731
    # rank 1 SIGKILLed; rank 0 raised on the broken connection and was noticed first, same second or earlier
    assert root((0, 1, 10), (1, -9, 10)) == 1
    assert root((0, 1, 10), (1, -9, 11)) == 1
    assert root((0, -6, 10), (1, -9, 10)) == 1  # rank 0 aborted (gloo) when rank 1 vanished
    assert root((0, -6, 10), (1, 1, 10)) == 0  # an abort is still a signal: ahead of an exit status
    # rank 1 exited 3; torchrun stopped rank 0 with SIGTERM in the same second: not the cause
    assert root((0, -15, 10), (1, 3, 10)) == 1
    # a rank that ignored SIGTERM and was SIGKILLed 30 s later is not the cause either
    assert root((0, 1, 10), (1, -9, 40)) == 0
    # no kill: the first noticed; only SIGTERM exits: the first of them
    assert root((1, 1, 10), (0, 1, 10)) == 1
    assert root((1, -15, 10), (0, -15, 10)) == 1
