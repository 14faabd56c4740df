import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def real_data_root():
    """The real data root from KSHOT_DATA; tests that need it skip only when it is unset."""
    root = os.environ.get("KSHOT_DATA")
    if not root:
        pytest.skip("KSHOT_DATA is not set")
    return Path(root)
