"""Fixtures shared by several test modules."""
import importlib.util
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
