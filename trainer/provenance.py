"""What a run trains and validates on, as fingerprints its checkpoints keep.

``--resume`` continues a run exactly only on the data it started on.  A shard
folder rebuilt with another seed (``synthesize --overwrite``) or grown
(``--append``, which also moves the held-out last shard into training), or a
GoPro folder with frames added or replaced, would silently change the draws,
the epoch length and the validation set under the resumed run.  So every
checkpoint records a fingerprint of each data folder, and a resume whose
folders no longer match is refused in one line.

A shard folder's fingerprint is its manifests' list of finished shards (name,
pair count, the shard's checksum), so it costs no read of the pixels; a GoPro
folder's is the relative path and size of every frame of its splits.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from trainer.errors import TrainerError


class DataChanged(TrainerError):
    """A resumed run's data folders differ from those it started on (one line)."""


def shard_fingerprint(folder: str | Path) -> dict:
    """{"kind": "shards", "shards": n, "pairs": total, "digest": hex} of the finished shards
    the folder's manifests list (blurgen.shards.find_shards; ShardError if it has none)."""
    from blurgen.shards import find_shards

    infos = find_shards(folder)
    digest = hashlib.sha256()
    for info in infos:
        digest.update(f"{info.path.name} {info.count} {info.checksum}\n".encode())
    return {"kind": "shards", "shards": len(infos), "pairs": sum(int(i.count) for i in infos),
            "digest": digest.hexdigest()}


def gopro_fingerprint(root: str | Path, blur: str) -> dict:
    """{"kind": "gopro", "frames": n, "digest": hex} over the relative path and size of every
    blurred and sharp frame of ``root``'s train/ and test/ splits (those that exist)."""
    from trainer.gopro import scan_gopro

    root = Path(root)
    digest, frames = hashlib.sha256(), 0
    for split in ("train", "test"):
        if not (root / split).is_dir():
            continue
        for pair in scan_gopro(root, split, blur):
            for path in (pair.blurred, pair.sharp):
                digest.update(f"{path.relative_to(root)} {path.stat().st_size}\n".encode())
            frames += 1
    return {"kind": "gopro", "frames": frames, "digest": digest.hexdigest()}


def data_fingerprints(cfg) -> dict[str, dict]:
    """Folder (as the config names it: absolute after trainer.loop.absolute_paths) ->
    fingerprint, for every shard folder, the validation folder and the GoPro root of the
    trainer.data.DataConfig ``cfg``."""
    prints = {str(folder): shard_fingerprint(folder) for folder in cfg.shards}
    if cfg.val_shards is not None:
        prints[str(cfg.val_shards)] = shard_fingerprint(cfg.val_shards)
    if cfg.gopro is not None:
        prints[str(cfg.gopro)] = gopro_fingerprint(cfg.gopro, cfg.gopro_blur)
    return prints


def _contents(fingerprint: dict) -> str:
    if fingerprint["kind"] == "shards":
        return f"{fingerprint['shards']} shards, {fingerprint['pairs']} pairs"
    return f"{fingerprint['frames']} frame pairs"


def check_same_data(recorded: dict[str, dict] | None, current: dict[str, dict], checkpoint: str | Path) -> None:
    """DataChanged naming the first folder whose fingerprint differs from the one
    ``checkpoint`` recorded.  Checkpoints written before fingerprints existed
    (``recorded`` None) are not checked."""
    if recorded is None:
        return
    for folder, now in current.items():
        then = recorded.get(folder)
        if then is not None and then != now:
            how = ("rebuilt" if _contents(then) == _contents(now)
                   else f"{_contents(then)} then, {_contents(now)} now")
            raise DataChanged(
                f"{folder} changed since the run in {Path(checkpoint).parent} started ({how}): resumed, it "
                f"would train and validate on other data than it did; start a new run from its weights "
                f"(--init-from {checkpoint} --out NEW_RUN), or restore the folder")
