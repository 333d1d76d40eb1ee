"""The one cache idiom (blurgen/plumbing/caches.py, issue 21.6): a file is read once while it
is unchanged, and afresh once it is replaced in place; at most ``size`` entries are kept."""
import os

from blurgen.plumbing.caches import FileCache


def test_a_file_is_read_once_until_it_is_replaced(tmp_path):
    path = tmp_path / "bank.txt"
    path.write_text("one")
    cache, reads = FileCache(size=2), []

    def load():
        reads.append(path.read_text())
        return reads[-1]

    assert cache.get(path, load) == cache.get(path, load) == "one" and len(reads) == 1
    path.write_text("two!")   # replaced in place: another size (and time)
    os.utime(path, ns=(1, 1))
    assert cache.get(path, load) == "two!" and len(reads) == 2
    assert cache.get(path, load, "other key") == "two!" and len(reads) == 3   # further key parts count


def test_the_least_recently_used_entry_goes_first(tmp_path):
    paths = [tmp_path / f"{k}.txt" for k in range(3)]
    for p in paths:
        p.write_text(p.name)
    cache, reads = FileCache(size=2), []

    def loader(p):
        return lambda: reads.append(p.name) or p.name

    cache.get(paths[0], loader(paths[0]))
    cache.get(paths[1], loader(paths[1]))
    cache.get(paths[0], loader(paths[0]))      # 0 is now the most recent
    cache.get(paths[2], loader(paths[2]))      # 1 goes
    cache.get(paths[0], loader(paths[0]))
    cache.get(paths[1], loader(paths[1]))
    assert reads == ["0.txt", "1.txt", "2.txt", "1.txt"]


def test_a_missing_file_is_left_to_its_loader(tmp_path):
    calls = []
    value = FileCache().get(tmp_path / "none.json", lambda: calls.append(1) or "the loader's own answer")
    assert value == "the loader's own answer" and calls == [1]
