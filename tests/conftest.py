"""Fixtures shared by several test modules."""
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def make_gopro(tmp_path_factory):
    """Factory: make_gopro(name, **kwargs) builds a small GOPRO_Large-layout folder with
    data/make_gopro_sample.py's ``build_sample`` and returns its root."""
    spec = importlib.util.spec_from_file_location("make_gopro_sample", ROOT / "data" / "make_gopro_sample.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)

    def make(name: str, **kwargs) -> Path:
        root = tmp_path_factory.mktemp(name) / "GOPRO_Large"
        builder.build_sample(root, **kwargs)
        return root

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for the module's tests, restored after: on a busy 2-core
    machine two OpenMP threads per run make a tiny step 10x slower, and equal thread
    counts keep the runs a module compares bit-identical."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_disk(tmp_path):
    """Factory: small_disk(mib) mounts a tmpfs of that size (root in a container); skips
    where mounting is not allowed (the simulated-ENOSPC tests cover those machines)."""
    mounted = []

    def mount(mib):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def learning_bench():
    """``bench/learning.py`` as a module (a script, not a package), loaded afresh per test module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "learning.py"
    spec = importlib.util.spec_from_file_location("learning_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
