"""A training process for tests/test_distributed.py, started by torchrun (kshot.core.distributed.launch).

``python tests/dist_worker.py cli ARGS...``: ``kshot ARGS`` with the synthetic ``toy`` dataset registered.
``python tests/dist_worker.py die RANK ARGS...``: the same, but process RANK kills itself (SIGKILL) in
its third training step, as a crashed or OOM-killed rank would.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from toy import TOY  # noqa: E402

from kshot.cli import main  # noqa: E402
from kshot.data import DATASETS  # noqa: E402

DATASETS["toy"] = TOY

if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "die":
        victim, args = int(args[0]), args[1:]
        if int(os.environ["RANK"]) == victim:
            from kshot.images.methods.base import FewShotMethod

            calls = []
            original = FewShotMethod.loss

            def loss(self, episode):
                calls.append(1)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(self, episode)

            FewShotMethod.loss = loss
    from kshot.core.distributed import exit_process

    exit_process(main(args))
