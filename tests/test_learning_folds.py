"""bench/learning.py --folds K: which photos each fold holds out, and what the folds say together."""
import json

import pytest



@pytest.fixture(scope="module")
def bench(learning_bench):
    return learning_bench


@pytest.mark.parametrize("folds", [2, 4, 5, 17])
def test_every_photo_is_held_out_once_and_never_trained_on_in_its_fold(bench, folds):
    photos = bench.FOLD_PHOTOS
    assert len(set(photos)) == len(photos) == 17
    held = []
    for k in range(folds):
        train, held_out = bench.fold_split(photos, folds, k)
        assert held_out and not set(train) & set(held_out)
        assert set(train) | set(held_out) == set(photos)
        held += held_out
    assert sorted(held) == sorted(photos)
    for bad in ((1, 0), (18, 0), (4, 4), (4, -1)):
        with pytest.raises(ValueError):
            bench.fold_split(photos, *bad)


def test_folds_of_four_hold_out_colour_and_grey_photos(bench):
    for k in range(4):
        _, held_out = bench.fold_split(bench.FOLD_PHOTOS, 4, k)
        assert set(held_out) & set(bench.COLOUR_PHOTOS) and set(held_out) & set(bench.GREY_PHOTOS)


def test_summary_is_the_spread_and_the_worst_of_every_fold(bench):
    folds = [{"gain": 1.5, "bands": {"< 25 dB": 0.2, ">= 35 dB": 3.0}, "sharp_psnr_min": 47.0, "sharp_photo_min": 50.0},
             {"gain": 0.5, "bands": {"< 25 dB": -0.3, "30-35 dB": 1.0}, "sharp_psnr_min": 44.0,
              "sharp_photo_min": 52.0}]
    s = bench.summarize_folds(folds)
    assert (s["folds"], s["mean_gain"], s["spread"], s["min_gain"], s["max_gain"]) == (2, 1.0, 0.5, 0.5, 1.5)
    assert s["worst_band"] == {"< 25 dB": -0.3, ">= 35 dB": 3.0, "30-35 dB": 1.0}
    assert (s["sharp_psnr_min"], s["sharp_photo_min"]) == (44.0, 50.0)


def test_run_folds_trains_and_scores_each_fold(bench, tmp_path, monkeypatch, capsys):
    """The fold loop, with training and data stubbed: each asked-for fold trains on its own
    photos, is scored on its held-out ones, and lands in the table and folds.json."""
    seen = []

    def build(root, kernel_size, seed, train_crops, held_out_crops, train_photos, held_photos, tag):
        seen.append((tuple(train_photos), tuple(held_photos), tag))
        return tuple(train_photos), tag

    def train(name, out, train_shards, held_out, args, changes):
        c = len(seen)   # fold gains 1.5 and 2.5; bands 0.5 / 1.5 and 2.5 / 3.5
        row = lambda i, p, g, sharp: {"name": f"p{i}", "input_psnr": p, "psnr": p + g, "ssim": 0.9,  # noqa: E731
                                      "input_ssim": 0.9, "sharp_psnr": sharp}
        rows = [row(0, 20.0, c - 0.5, 50.0), row(1, 40.0, c + 1.5, 46.0),
                row(2, float("inf"), float("inf"), float("inf"))]   # a flat crop: blurred == sharp
        return {"rows": rows, "seconds": 1.0, "steps": args.steps, "generator": None}

    monkeypatch.setattr(bench, "build_fold_data", build)
    monkeypatch.setattr(bench, "train", train)
    monkeypatch.setattr(bench, "sharp_photo_scores", lambda generator, names: {n: 48.0 for n in names})
    assert bench.main(["--folds", "4", "--only-folds", "1,3", "--runs", "gan", "--out", str(tmp_path),
                       "--steps", "10"]) == 0
    assert [tag for _, _, tag in seen] == ["4-1", "4-3"]
    assert all(set(train).isdisjoint(held) for train, held, _ in seen)
    out = capsys.readouterr().out
    assert "fold 1 " in out and "fold 3 " in out and "mean +2.00, spread (std) 0.50" in out
    saved = json.loads((tmp_path / "folds.json").read_text())
    assert [f["fold"] for f in saved["folds"]["gan"]] == [1, 3]
    assert [(f["pairs"], f["flat"], f["sharp_psnr_min"]) for f in saved["folds"]["gan"]] == [(2, 1, 46.0)] * 2
    assert "(1 flat pairs left out of the gain)" in out
    assert saved["summary"]["gan"]["worst_band"] == {"< 25 dB": 0.5, ">= 35 dB": 2.5}
    # --table-from: the same table again from the saved per-pair rows (e.g. folds run one at a time).
    assert bench.main(["--table-from", str(tmp_path / "folds.json")]) == 0
    again = capsys.readouterr().out
    assert "mean +2.00, spread (std) 0.50" in again and again.count("(1 flat pairs left out of the gain)") == 2
    with pytest.raises(SystemExit):
        bench.main(["--folds", "4", "--only-folds", "4", "--out", str(tmp_path)])
