"""Moving objects (`blurgen.physics.objects`, `synthesize --objects`): COCO masks and the layered blur."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_shake import write_photos
from test_synthesize import datasets, one_run_equals_two_parts

from blurgen.physics import objects
from blurgen.physics.blur import convolve_valid
from blurgen.physics.psf import rasterize
from blurgen.physics.trajectory import random_trajectories
from cli import blurgen


def run(*args):
    return CliRunner().invoke(blurgen, [str(a) for a in args], catch_exceptions=False)


def rle_encode(mask: np.ndarray) -> list[int]:
    """Column-major run lengths of a bool mask, from a run of 0s (a straightforward reference)."""
    flat = mask.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return ([0] + runs) if flat[0] else runs


def rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string (pycocotools' rleToString), written from its specification."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if c & 0x10 else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


# --- masks ------------------------------------------------------------------------


def test_compressed_rle_strings_decode_as_by_hand():
    assert objects.rle_counts_from_string("345") == [3, 4, 5]
    # 30 is stored as 30 - 2 = 28 (two groups: 28 | more, then 0); 1 as 1 - 2 = -1 (sign bit).
    assert objects.rle_counts_from_string("123l0") == [1, 2, 3, 30]
    assert objects.rle_counts_from_string("123O") == [1, 2, 3, 1]


def test_rle_decodes_a_hand_made_mask_column_major():
    # 3 rows x 4 columns; columns read top to bottom: col0 000, col1 011, col2 011, col3 000
    expected = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]], bool)
    counts = [4, 2, 1, 2, 3]
    assert np.array_equal(objects.rle_decode(counts, 3, 4), expected)
    seg = {"counts": rle_string(counts), "size": [3, 4]}
    assert np.array_equal(objects.decode_segmentation(seg, 3, 4), expected)
    assert np.array_equal(objects.decode_segmentation({"counts": counts, "size": [3, 4]}, 3, 4), expected)


def test_rle_and_polygon_of_the_same_shape_agree():
    poly = [[5, 3, 20, 3, 20, 12, 12, 17, 5, 12]]  # a house shape
    mask = objects.polygon_mask(poly, 24, 30)
    reference = np.zeros((24, 30), np.uint8)
    cv2.fillPoly(reference, [np.array(poly[0]).reshape(-1, 2).astype(np.int32)], 1)
    assert np.array_equal(mask, reference.astype(bool))
    assert mask[3:13, 5:21].all() and not mask[:3].any() and not mask[:, :5].any()
    counts = rle_encode(mask)
    assert objects.rle_counts_from_string(rle_string(counts)) == counts  # long counts, negative differences
    for seg in ({"counts": counts, "size": [24, 30]}, {"counts": rle_string(counts), "size": [24, 30]}):
        assert np.array_equal(objects.decode_segmentation(seg, 24, 30), mask)


@pytest.mark.parametrize("seg, size, message", [
    ({"counts": [3, 4], "size": [3, 4]}, (3, 4), "RLE counts sum to 7, not 3x4"),
    ({"counts": "12", "size": [2, 2]}, (2, 2), "RLE counts sum to 3, not 2x2"),
    ({"counts": [12], "size": [4, 4]}, (3, 4), "an RLE of size [4, 4] on an image of 3x4"),
    ({"counts": "1(", "size": [2, 2]}, (2, 2), "holds the character '('"),
    ({"counts": "1l", "size": [2, 2]}, (2, 2), "ends in the middle of a count"),
    ([[1, 2, 3]], (3, 4), "at least three x, y pairs"),
    (17, (3, 4), "neither polygons nor RLE"),
])
def test_bad_segmentations_are_one_line_errors(seg, size, message):
    with pytest.raises(objects.ObjectsError) as raised:
        objects.decode_segmentation(seg, *size)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("seg, message", [
    ({"counts": [2 ** 70, 0], "size": [3, 4]}, "RLE counts sum to more than 10^15"),
    ({"counts": [2 ** 63 - 1, 2 ** 63 - 1, 14], "size": [3, 4]}, "RLE counts sum to more than"),  # wraps in int64
    ({"counts": "o" * 100_000, "size": [3, 4]}, "runs over 13 groups"),
    ({"counts": "1\u00e92", "size": [3, 4]}, "non-ASCII"),
    ({"counts": ["1", 11], "size": [3, 4]}, "a list of whole numbers"),
    ({"counts": 12, "size": [3, 4]}, "a list of whole numbers"),
    ({"counts": [12], "size": 5}, "an RLE of size 5"),
    (["1 2 3 4 5 6"], "a polygon must be a list of numbers"),
    ([[1, 2, None, 4, 5, 6]], "not a finite number"),
    ([[1, 2, [3], 4, 5, 6]], "a polygon must be a list of numbers"),
    ([[1e400, 2, 3, 4, 5, 6]], "not a finite number"),
    ("a string", "neither polygons nor RLE"),
    ([17], "at least three x, y pairs"),
])
def test_malformed_segmentations_are_one_line_errors(seg, message):
    """Issue 22.21: huge RLE counts, overflowing compressed strings, string polygons, "size": 5
    gave tracebacks (OverflowError, TypeError, ValueError) or hung; now each is an ObjectsError,
    which skips the instance (`object-mask` in the skip report)."""
    with pytest.raises(objects.ObjectsError) as raised:
        objects.decode_segmentation(seg, 3, 4)
    assert message in str(raised.value) and "\n" not in str(raised.value) and len(str(raised.value)) < 200


def test_far_off_polygon_vertices_are_clipped_not_wrapped():
    mask = objects.decode_segmentation([[0, 0, 1e12, 0, 0, 1e12]], 3, 4)
    assert mask.all()  # the whole image lies inside that triangle


# --- the layered model ---------------------------------------------------------------


def camera_walk(seed=5, iters=300, length=9.0):
    pts = random_trajectories(np.array([seed], np.uint64), iters, length, samples=iters).points[:, 0]
    return pts.astype(np.complex128) - pts.mean(dtype=np.complex128)


def scene(shape=(40, 44), seed=0):
    rng = np.random.default_rng(seed)
    background = rng.random((*shape, 3)).astype(np.float32)
    colours = np.zeros((*shape, 3), np.float32)
    alpha = np.zeros(shape, np.float32)
    alpha[14:26, 12:30] = 1
    alpha[13, 15:20] = 0.5  # a soft edge
    colours[alpha > 0] = rng.random((int((alpha > 0).sum()), 3))
    return background, colours, alpha


def test_the_partial_psfs_add_up_to_the_camera_kernel():
    camera = camera_walk()
    parts, _ = objects.partial_psfs(camera, np.zeros_like(camera), 15, 16)
    reference = rasterize(camera[:, None].astype(np.complex64), 15)[0]
    assert len(parts) == 16
    np.testing.assert_allclose(sum(parts), reference, atol=2e-6)


def test_an_object_that_does_not_move_on_its_own_gets_the_camera_only_blur_of_the_sharp_composite():
    B, F, M = scene()
    camera = camera_walk()
    parts, offsets = objects.partial_psfs(camera, np.zeros_like(camera), 15, 8)
    out, _ = objects.layered_blur(B, F, M, parts, offsets)
    composite = B * (1 - M[..., None]) + F * M[..., None]
    expected = convolve_valid(composite, sum(parts).astype(np.float32))
    np.testing.assert_allclose(out, expected, atol=2e-6)


def test_an_object_on_a_flat_background_follows_the_closed_form_and_keeps_its_area():
    _, F, M = scene()
    B = np.full_like(F, 0.3)
    camera = camera_walk()
    n = len(camera)
    own = np.repeat(np.arange(-3, 4) * (1 + 1j), -(-n // 7))[:n].astype(np.complex128)  # whole-pixel steps
    own -= own.mean()
    parts, offsets = objects.partial_psfs(camera, own, 15, 7)
    out, alpha = objects.layered_blur(B, F, M, parts, offsets)
    assert alpha.sum() == pytest.approx(M.sum(), rel=1e-5)  # every bit of the object is somewhere
    # The closed form: B_blurred (1 - k_o * M) + k_o * (M F), k_o = sum_j k_j shifted by o_j.
    k_o = sum(objects.shift(p.astype(np.float32), float(o.real), float(o.imag)) for p, o in zip(parts, offsets))
    # Shifting a kernel by o_j has to stay on its 15x15 grid: it does here (camera ~9 px, object 3 px).
    assert k_o.sum() == pytest.approx(1, abs=1e-5)
    blurred_m = convolve_valid(M, k_o)
    expected = 0.3 * (1 - blurred_m)[..., None] + convolve_valid(F * M[..., None], k_o)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(alpha, blurred_m, atol=1e-6)


# --- synthesize --objects ------------------------------------------------------------


def write_scene_photos(folder: Path, n: int, size=(96, 112), seed=0) -> Path:
    """Smooth random photos of the size the annotations below describe."""
    return write_photos(folder, n, size, seed)


def write_annotations(path: Path, folder: Path) -> Path:
    """A COCO file with a polygon, a compressed RLE and an uncompressed RLE instance, and a crowd."""
    h, w = 96, 112
    ring = np.zeros((h, w), bool)
    ring[20:50, 30:70] = True
    ring[30:40, 40:60] = False
    blob = np.zeros((h, w), bool)
    cv2.circle(blob.view(np.uint8), (60, 50), 18, 1, -1)
    data = {
        "images": [{"id": i, "file_name": f"img{i:03d}.png", "height": h, "width": w} for i in range(3)],
        "annotations": [
            {"id": 7, "image_id": 0, "iscrowd": 0, "area": 700, "segmentation": [[10, 10, 50, 12, 40, 40, 12, 35]]},
            {"id": 8, "image_id": 1, "iscrowd": 0, "area": float(ring.sum()),
             "segmentation": {"counts": rle_string(rle_encode(ring)), "size": [h, w]}},
            {"id": 9, "image_id": 2, "iscrowd": 0, "area": float(blob.sum()),
             "segmentation": {"counts": rle_encode(blob), "size": [h, w]}},
            {"id": 10, "image_id": 2, "iscrowd": 1, "area": 5000,
             "segmentation": {"counts": rle_encode(blob), "size": [h, w]}},
            {"id": 11, "image_id": 1, "iscrowd": 0, "area": 10, "segmentation": [[1, 1, 3, 1, 3, 3]]},
        ],
    }
    path.write_text(json.dumps(data))
    return path


SMALL = ["--kernel-size", "15", "--iters", "200", "--max-len", "10", "--crop", "48", "--object-len", "12"]


def test_read_instances_skips_crowds_and_small_ones(tmp_path):
    src = write_scene_photos(tmp_path / "src", 3)
    found = objects.read_instances(write_annotations(tmp_path / "a.json", src), src, 400)
    assert [i.id for i in found] == [7, 8, 9]


def test_synthesize_objects_is_deterministic_and_records_its_parameters(tmp_path):
    src = write_scene_photos(tmp_path / "src", 4)
    ann = write_annotations(tmp_path / "ann.json", src)
    args = ["synthesize", "--src", src, "--objects", ann, *SMALL, "--crops-per-image", "2", "--shard-size", "4",
            "--workers", "1", "--linear"]
    a = one_run_equals_two_parts(run, args, tmp_path)
    shard = {name: a[("shard-00000.h5", name)] for (s, name) in a if s == "shard-00000.h5"}
    assert set(shard["object_id"]) <= {7, 8, 9} and len(set(shard["object_id"])) > 1
    assert (shard["object_area"] > 0).all() and (shard["object_length"] >= 0).all()
    np.testing.assert_allclose(shard["object_kernel"].sum(axis=(1, 2)), 1, atol=1e-5)
    # The sharp image is the source crop, with the object pasted inside its box.
    photo = cv2.cvtColor(cv2.imread(str(src / shard["source"][0].decode())), cv2.COLOR_BGR2RGB)
    y0, x0, y1, x1 = shard["crop_box"][0]
    oy0, ox0, oy1, ox1 = shard["object_box"][0]
    outside = np.ones((y1 - y0, x1 - x0), bool)
    outside[oy0:oy1, ox0:ox1] = False
    assert np.array_equal(shard["sharp"][0][outside], photo[y0:y1, x0:x1][outside])
    assert not np.array_equal(shard["sharp"][0][~outside], photo[y0:y1, x0:x1][~outside])
    assert run("verify", tmp_path / "a").exit_code == 0
    shown = run("inspect", tmp_path / "a", "--samples", "1")
    assert shown.exit_code == 0 and "moving objects" in shown.output and "object_id=" in shown.output


def test_objects_with_zero_own_motion_blur_like_the_camera_alone(tmp_path):
    src = write_scene_photos(tmp_path / "src", 2)
    ann = write_annotations(tmp_path / "ann.json", src)
    assert run("synthesize", "--src", src, "--objects", ann, *SMALL, "--object-len", "0", "--workers", "1",
               "--out", tmp_path / "out").exit_code == 0
    data = datasets(tmp_path / "out")
    lengths = data[("shard-00000.h5", "object_length")]
    assert (lengths == 0).all()
    kernels, object_kernels = data[("shard-00000.h5", "kernel")], data[("shard-00000.h5", "object_kernel")]
    np.testing.assert_allclose(object_kernels, kernels, atol=2e-6)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON file"),
    ('{"images": []}', "not COCO instance annotations"),
    ('{"images": [{"id": 1}], "annotations": []}', "a malformed image or annotation entry"),
    ('{"images": [], "annotations": []}', "no usable instance"),
])
def test_a_bad_annotations_file_is_a_one_line_error(tmp_path, content, message):
    src = write_scene_photos(tmp_path / "src", 1)
    (tmp_path / "bad.json").write_text(content)
    result = run("synthesize", "--src", src, "--objects", tmp_path / "bad.json", "--out", tmp_path / "out")
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1
    missing = run("synthesize", "--src", src, "--objects", tmp_path / "none.json", "--out", tmp_path / "out")
    assert missing.exit_code != 0 and "cannot read the annotations" in missing.output
    both = run("synthesize", "--src", src, "--objects", tmp_path / "bad.json", "--shake", "nonuniform",
               "--out", tmp_path / "out")
    assert both.exit_code != 0 and "cannot be combined with --shake" in both.output


def test_a_bad_instance_is_skipped_not_the_run(tmp_path):
    """Issue 22.21: one instance with a malformed segmentation among good ones failed the whole
    run, on every re-run (a traceback when it was drawn).  Now the crops that drew it are not
    made, and the skip report says which instance and why; the run goes on, exit 0."""
    src = write_scene_photos(tmp_path / "src", 3)
    path = write_annotations(tmp_path / "a.json", src)
    data = json.loads(path.read_text())
    bad = [["1 2 3 4 5 6"], {"counts": [2 ** 70, 1], "size": [96, 112]}, {"counts": "o" * 5000, "size": [96, 112]},
           {"counts": [10752], "size": 5}, [[1, 2, 3]]]
    for k, seg in enumerate(bad * 2):
        data["annotations"].append({"id": 12 + k, "image_id": 0, "iscrowd": 0, "area": 900, "segmentation": seg})
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = run("synthesize", "--src", src, "--objects", path, "--out", out, "--crops-per-image", 4, "--workers", 1,
                 *SMALL)
    assert result.exit_code == 0, result.output
    report = (out / "skipped.tsv").read_text()
    assert "object-mask" in report and report.count("\n") == 4  # a row per photo
    # Not "0 pairs" anywhere: the rate line ("47.0 pairs/s") is no pair count.
    assert not re.search(r"(?<![\d.,])0 pairs\b", result.output) and "pairs in 1 shard" in result.output


def test_an_annotation_that_is_not_an_object_is_a_one_line_error(tmp_path):
    """Issue 22.21: a non-object entry in 'annotations' (a number, a string) gave a traceback."""
    src = write_scene_photos(tmp_path / "src", 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 0, "file_name": "img000.png", "height": 96, "width": 112}],
                               "annotations": [5]}))
    result = CliRunner().invoke(blurgen, ["synthesize", "--src", str(src), "--objects", str(bad), "--out",
                                          str(tmp_path / "out")])
    assert result.exit_code == 2 and "a malformed image or annotation entry (AttributeError" in result.output
    assert len(result.output.strip().splitlines()) == 1
