"""What a process reads from a file once and keeps: the one cache idiom.

A worker builds shard after shard from the same kernel bank, zip of photos,
COCO annotations and instance photos; reading them again per shard (or per
sample) would cost more than the work.  Every such cache here has one rule:
an entry is keyed by the file's path *and* its size and modification time,
so a file replaced in place (a re-downloaded zip, an edited annotations file)
is read afresh, never served stale.  A cache holds at most ``size`` entries,
the least recently used going first.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable, Hashable


class FileCache:
    """``cache.get(path, load, *key)``: ``load()``'s result for ``path`` (and any further
    ``key`` parts that decide it), read once while the file is unchanged."""

    def __init__(self, size: int = 8):
        self.size = size
        self._entries: OrderedDict = OrderedDict()

    def get(self, path: str | os.PathLike, load: Callable[[], object], *key: Hashable):
        try:
            info = os.stat(path)
        except OSError:  # missing or unreadable: not cached, the loader says what is wrong, its own way
            return load()
        full = (os.path.abspath(path), info.st_mtime_ns, info.st_size, *key)
        if full in self._entries:
            self._entries.move_to_end(full)
            return self._entries[full]
        value = load()
        self._entries[full] = value
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()
