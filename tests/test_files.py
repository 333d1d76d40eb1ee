"""blurgen.plumbing.files: a file is complete under its name or absent, whatever interrupts the write."""

import pytest

from blurgen.plumbing import files


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "manifest.json"
    files.write_text(path, "old")
    with pytest.raises(type(error)):
        with files.atomic_path(path) as tmp:
            tmp.write_text("half of the new")
            raise error
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


@pytest.mark.parametrize("durable", [False, True])
def test_a_complete_write_replaces_the_file(tmp_path, durable):
    path = tmp_path / "report.tsv"
    files.write_text(path, "old")
    with files.atomic_path(path, durable=durable) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".report.tsv.tmp-")
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.tsv"]
