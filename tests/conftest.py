"""Shared fixtures.

``EVOCL_TEST_TORCH_THREADS=N make test`` runs the suite with N torch threads in the test
process and its subprocesses (OMP_NUM_THREADS); the suite passes with 1 and 2 (issue 18).
"""

import os

import pytest


def pytest_configure(config):
    threads = os.environ.get("EVOCL_TEST_TORCH_THREADS")
    if not threads:
        return
    n = int(threads)
    if n < 1:
        raise pytest.UsageError(f"EVOCL_TEST_TORCH_THREADS={threads}: must be a positive integer")
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two threads on a loaded 2-core machine are ~10x slower on tiny tensors."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_backbone():
    """The seeded random 2-layer BERT (evocl.cl.load_backbone("tiny"))."""
    from evocl.cl import load_backbone

    return load_backbone("tiny")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped where CUDA is not available."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in gpu_items:
        item.add_marker(skip)
