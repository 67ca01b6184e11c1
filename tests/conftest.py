import os

import pytest
import torch

# Two cores on the reference machine: tests run in parallel processes, one thread each.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes caches under a temporary HIRELC_CACHE_DIR, never the user's."""
    if "HIRELC_CACHE_DIR_KEEP" not in os.environ:
        monkeypatch.setenv("HIRELC_CACHE_DIR", str(tmp_path_factory.mktemp("hirelc_cache")))
    torch.manual_seed(0)
