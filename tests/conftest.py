import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

# before torch loads OpenMP: waiting threads sleep instead of spinning. On a machine whose cores are shared
# (CI, several jobs at once) spinning threads of a 2-thread forward pass starve each other: an
# EfficientNet forward of 9 small images took 6 s instead of 0.07 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def real_data_root():
    """The real data root from KSHOT_DATA; tests that need it skip only when it is unset."""
    root = os.environ.get("KSHOT_DATA")
    if not root:
        pytest.skip("KSHOT_DATA is not set")
    return Path(root)


@pytest.fixture
def http_server(tmp_path):
    """A static HTTP server on 127.0.0.1 over ``tmp_path/served``: (that folder, its base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
