"""Camera profiles: a camera's calibration (:class:`blurgen.physics.cameras.Camera`) as a JSON file.

``--camera FILE.json`` reads one; ``blurgen camera-profile PHOTO.dng`` writes one from a
DNG's own tags (:mod:`blurgen.physics.dng`); the built-in cameras are written in the same
format by :func:`to_dict`.  Every key, its units and ranges: docs/camera.md, "Your own
camera".  NumPy and json only: the command lines resolve ``--camera`` as they start.

A manifest records a profile camera by its content (:func:`to_dict`), not by its path:
a run resumes wherever the file lies, and is refused once the file's content changed.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from blurgen.errors import BlurgenError
from blurgen.physics import cameras
from blurgen.physics.cameras import Camera
from blurgen.plumbing.caches import FileCache

#: The ``format`` key of every profile, and the version this code reads and writes.
FORMAT = "blurgen-camera-profile"
VERSION = 1
#: A matrix whose rows map D65 white to 1 within this is kept bit for bit (a profile
#: written by :func:`to_dict`); any other is normalised on reading.
NORMALISED_TOLERANCE = 1e-9
_KEYS = {"format", "version", "name", "description", "xyz_to_camera", "white_balance", "noise", "tone", "source"}

# One read per file while it is unchanged (path, size, mtime): a run's workers and the
# trainer's data loaders ask for the same profile many times.
_PROFILES = FileCache(size=4)


class CameraProfileError(BlurgenError):
    """A camera profile that cannot be used: one line naming the file (or what held the
    profile) and the key."""


# --- Camera <-> JSON value -----------------------------------------------------------------------


def _range_or_number(value):
    return list(value) if isinstance(value, tuple) else value


def to_dict(camera: Camera, source: dict | None = None) -> dict:
    """The profile of ``camera`` as JSON values (:func:`from_dict` gives ``camera`` back exactly).
    ``source``: what the profile was made from, kept as written (informational)."""
    if camera.gain_pairs is not None:
        balance = {"pairs": [list(pair) for pair in camera.gain_pairs]}
    else:
        balance = {"red_gain": list(camera.red_gain), "blue_gain": list(camera.blue_gain)}
    if camera.noise_iso is not None:
        noise = {"iso": {f"{iso:g}": [shot, read] for iso, shot, read in camera.noise_iso}}
    else:
        noise = {"shot": _range_or_number(camera.shot), "read": _range_or_number(camera.read)}
    out = {"format": FORMAT, "version": VERSION, "name": camera.name, "description": camera.description,
           "xyz_to_camera": np.asarray(camera.xyz_to_camera, np.float64).tolist(),
           "white_balance": balance, "noise": noise,
           "tone": "srgb" if camera.tone is None else list(camera.tone)}
    if source is not None:
        out["source"] = source
    return out


class _Reader:
    """Checks of one profile's values; every failure names ``where`` and the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, message: str):
        raise CameraProfileError(f"{self.where}: key {key!r}: {message}")

    def number(self, value, key: str, low: float = 0.0, strict: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be a number, got {json.dumps(value)}")
        if not math.isfinite(value):
            self.fail(key, f"must be finite, got {value}")
        if value < low or (strict and value == low):
            self.fail(key, f"must be {'>' if strict else '>='} {low:g}, got {value:g}")
        return float(value)

    def pair(self, value, key: str, strict: bool = True) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            self.fail(key, f"must be [lo, hi], got {json.dumps(value)}")
        lo, hi = (self.number(v, key, strict=strict) for v in value)
        if lo > hi:
            self.fail(key, f"must be [lo, hi] with lo <= hi, got [{lo:g}, {hi:g}]")
        return lo, hi

    def level(self, value, key: str):
        """A noise level: a number (a calibration) or [lo, hi]; >= 0."""
        return self.pair(value, key, strict=False) if isinstance(value, list) else self.number(value, key, strict=False)

    def section(self, data: dict, key: str) -> dict:
        if key not in data:
            self.fail(key, "missing")
        if not isinstance(data[key], dict):
            self.fail(key, f"must be an object, got {json.dumps(data[key])[:60]}")
        return data[key]

    def only(self, section: dict, key: str, allowed: set[str]) -> None:
        unknown = sorted(set(section) - allowed)
        if unknown:
            self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                      f"unknown (known: {', '.join(sorted(allowed))})")

    def matrix(self, value) -> np.ndarray:
        key = "xyz_to_camera"
        if (not isinstance(value, list) or len(value) != 3
                or not all(isinstance(row, list) and len(row) == 3 for row in value)):
            self.fail(key, "must be 3 rows of 3 numbers (XYZ -> camera RGB)")
        matrix = np.array([[self.number(v, key, low=-math.inf) for v in row] for row in value])
        white = cameras.d65_response(matrix)
        if not np.all(white > 0):
            self.fail(key, f"every row must give D65 white a positive response, got {np.round(white, 6).tolist()}")
        if abs(np.linalg.det(matrix)) < 1e-12 * max(1.0, float(np.abs(matrix).max())) ** 3:
            self.fail(key, "is singular (it must be invertible: the development undoes it)")
        if np.all(np.abs(white - 1) <= NORMALISED_TOLERANCE):
            return matrix
        return cameras.normalise_xyz_to_camera(matrix)

    def balance(self, section: dict) -> dict:
        if "pairs" in section:
            self.only(section, "white_balance", {"pairs"})
            pairs = section["pairs"]
            if not isinstance(pairs, list) or not pairs:
                self.fail("white_balance.pairs", "must be a non-empty list of [red, blue] gains")
            out = []
            for pair in pairs:
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail("white_balance.pairs", f"each entry must be [red, blue], got {json.dumps(pair)}")
                out.append(tuple(self.number(g, "white_balance.pairs") for g in pair))
            return {"red_gain": None, "blue_gain": None, "gain_pairs": tuple(out)}
        self.only(section, "white_balance", {"red_gain", "blue_gain"})
        out = {"gain_pairs": None}
        for name in ("red_gain", "blue_gain"):
            key = f"white_balance.{name}"
            if name not in section:
                self.fail(key, "missing (or give white_balance.pairs)")
            value = section[name]
            out[name] = self.pair(value, key) if isinstance(value, list) else (self.number(value, key),) * 2
        return out

    def noise(self, section: dict) -> dict:
        if "iso" in section:
            self.only(section, "noise", {"iso"})
            table = section["iso"]
            if not isinstance(table, dict) or not table:
                self.fail("noise.iso", 'must be a non-empty object {"ISO": [shot, read], ...}')
            rows = []
            for iso, levels in table.items():
                key = f"noise.iso.{iso}"
                try:
                    speed = float(iso)
                except ValueError:
                    self.fail(key, "the ISO must be a number")
                self.number(speed, key)
                if not isinstance(levels, list) or len(levels) != 2:
                    self.fail(key, f"must be [shot, read], got {json.dumps(levels)}")
                rows.append((speed, *(self.number(v, key, strict=False) for v in levels)))
            return {"shot": None, "read": None, "noise_iso": tuple(sorted(rows))}
        self.only(section, "noise", {"shot", "read"})
        out = {"noise_iso": None}
        for name in ("shot", "read"):
            if name not in section:
                self.fail(f"noise.{name}", "missing (or give noise.iso)")
            out[name] = self.level(section[name], f"noise.{name}")
        return out

    def tone(self, value) -> tuple[float, ...] | None:
        if value == "srgb":
            return None
        if not isinstance(value, list) or not value:
            self.fail("tone", f'must be "srgb" or a list of polynomial coefficients, got {json.dumps(value)[:60]}')
        return tuple(self.number(v, "tone", low=-math.inf) for v in value)


def from_dict(data, where: str = "camera profile") -> Camera:
    """The Camera of a profile's JSON value; CameraProfileError naming ``where`` and the key."""
    reader = _Reader(where)
    if not isinstance(data, dict):
        raise CameraProfileError(f"{where}: a camera profile is a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        reader.fail("format", f"must be {FORMAT!r}, got {json.dumps(data.get('format'))}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        reader.fail("version", f"must be a whole number >= 1, got {json.dumps(version)}")
    if version > VERSION:
        reader.fail("version", f"{version} is newer than this blurgen reads ({VERSION}): update blurgen")
    reader.only(data, "", _KEYS)
    for key in ("name", "xyz_to_camera", "tone"):
        if key not in data:
            reader.fail(key, "missing")
    name, description = data["name"], data.get("description", "")
    if not isinstance(name, str) or not name.strip():
        reader.fail("name", f"must be a non-empty text, got {json.dumps(name)}")
    if not isinstance(description, str):
        reader.fail("description", f"must be a text, got {json.dumps(description)[:60]}")
    return Camera(name=name, description=description, xyz_to_camera=reader.matrix(data["xyz_to_camera"]),
                  tone=reader.tone(data["tone"]), **reader.balance(reader.section(data, "white_balance")),
                  **reader.noise(reader.section(data, "noise")))


# --- files ----------------------------------------------------------------------------------------


def _read(path: Path) -> Camera:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CameraProfileError(f"{path}: no such camera profile") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CameraProfileError(f"{path}: cannot read the camera profile ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CameraProfileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    camera = from_dict(data, str(path))
    camera.xyz_to_camera.flags.writeable = False  # shared by every caller of the cache
    return camera


def load(path: str | os.PathLike) -> Camera:
    """The Camera of the profile file ``path``, read once while the file is unchanged."""
    path = Path(path)
    return _PROFILES.get(path, lambda: _read(path))


def save(camera: Camera, path: str | os.PathLike, source: dict | None = None) -> None:
    """Write ``camera``'s profile to ``path`` atomically (indented JSON, keys in the documented order)."""
    from blurgen.plumbing.files import write_text

    write_text(path, dumps(to_dict(camera, source)) + "\n")


def dumps(value, indent: str = "") -> str:
    """JSON of a profile for people to read: objects one key a line, a list of numbers (a
    matrix row, a range, a pair) on one line.  ``json.loads`` gives ``value`` back."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(key)}: {dumps(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value and not all(isinstance(v, (int, float)) for v in value):
        return "[\n" + ",\n".join(f"{inner}{dumps(item, inner)}" for item in value) + f"\n{indent}]"
    return json.dumps(value)


# --- what --camera names ----------------------------------------------------------------------------


def is_profile_path(value: str) -> bool:
    """Whether ``--camera VALUE`` names a profile file: it ends in ``.json``, or it is not a
    built-in camera's name and an existing file has it (a built-in name wins over a file)."""
    return value.lower().endswith(".json") or (value not in cameras.CAMERAS and os.path.isfile(value))


def resolve(value) -> str | Camera:
    """What ``--camera VALUE`` (or a manifest's ``camera``) means: a built-in camera's name stays
    the name; a profile file's path (:func:`is_profile_path`), a profile's JSON value (a
    manifest's record) or a Camera become the Camera.  CameraProfileError (one line) on an
    unknown name or a bad profile."""
    if isinstance(value, Camera):
        return value
    if isinstance(value, dict):
        return from_dict(value, "the recorded camera profile")
    if not isinstance(value, str):
        raise CameraProfileError(f"a camera is a name or a profile file, got {value!r}")
    if is_profile_path(value):
        return load(value)
    if value not in cameras.CAMERAS:
        raise CameraProfileError(f"unknown camera {value!r}; known: {', '.join(sorted(cameras.CAMERAS))}, "
                                 "or a profile FILE.json (docs/camera.md)")
    return value


def camera_of(value: str | Camera) -> Camera:
    """The Camera of a :func:`resolve`\\ d value (a built-in name, or a Camera)."""
    return value if isinstance(value, Camera) else cameras.get_camera(value)


def recorded(value: str | Camera):
    """A :func:`resolve`\\ d camera as a manifest records it: a built-in's name, a profile's content."""
    return value if isinstance(value, str) else to_dict(value)


def describe(camera: Camera) -> list[str]:
    """A few lines of what a camera's calibration is (``blurgen camera-profile``)."""
    def span(value) -> str:
        return f"{value[0]:.4g}-{value[1]:.4g}" if isinstance(value, tuple) else f"{value:.4g} x 0.5-1.5"

    if camera.gain_pairs is not None:
        balance = f"{len(camera.gain_pairs)} measured (red, blue) pairs, one drawn per sample"
    else:
        balance = f"red {span(camera.red_gain)}, blue {span(camera.blue_gain)}"
    if camera.noise_iso is not None:
        noise = "per ISO, one drawn per sample: " + ", ".join(f"ISO {iso:g} shot {s:.3g} read {r:.3g}"
                                                              for iso, s, r in camera.noise_iso)
    else:
        noise = f"shot {span(camera.shot)}, read {span(camera.read)}"
    rows = "; ".join(" ".join(f"{v:+.4f}" for v in row) for row in np.asarray(camera.xyz_to_camera))
    return [f"camera {camera.name!r}: {camera.description}", f"  XYZ (D65) -> camera: {rows}",
            f"  white balance: {balance}", f"  noise: {noise}",
            f"  tone curve: {'sRGB' if camera.tone is None else f'polynomial of degree {len(camera.tone) - 1}'}"]
