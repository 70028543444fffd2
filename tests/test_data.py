import numpy as np
import pytest

from conftest import smooth_rgb
from memopt.frames.contract import pack
from memopt.frames.data import check_dataset, flip_packed, merge_datasets, scan_dataset
from memopt.errors import MemoptError
from memopt.frames.synth import synthesize
from memopt.frames.yuv import YUV420, rgb_to_yuv420, write_image, write_yuv


def make_scene(root, name, evs=(-20, 0, 4), size=(16, 12), gt=True, ext="yuv"):
    d = root / name
    d.mkdir(parents=True)
    w, h = size
    for k, ev in enumerate(evs):
        rgb = np.clip(smooth_rgb(h, w, k).astype(int) // (3 - min(k, 2)), 0, 255).astype(np.uint8)
        if ext == "yuv":
            write_yuv(d / f"ev{ev}.yuv", rgb_to_yuv420(rgb))
        else:
            write_image(d / f"ev{ev}.{ext}", rgb)
    if gt:
        write_yuv(d / "gt.yuv", rgb_to_yuv420(smooth_rgb(h, w, 9)))
    return d


def make_ranked_scene(d, frames=5):
    """A SICE-like scene: numbered frames of rising brightness, no EVs in the names, a label."""
    d.mkdir(parents=True)
    for k in range(frames):
        write_image(d / f"{k + 1}.png", np.full((8, 8, 3), 20 + 40 * k, np.uint8))
    write_image(d / "label.png", np.full((8, 8, 3), 128, np.uint8))


def test_scan_orders_by_ev_name_and_selects_nearest(tmp_path):
    make_scene(tmp_path, "a", evs=(4, -20, 0, 10))
    (s,) = scan_dataset(tmp_path)
    assert [f.ev_tenths for f in s.frames] == [-20, 0, 4, 10]
    assert not s.frames[0].approximate
    assert [f.path.name for f in s.select((-20, 0, 4))] == ["ev-20.yuv", "ev0.yuv", "ev4.yuv"]
    assert [f.ev_tenths for f in s.select((-30, 1, 8))] == [-20, 0, 10]


def test_unnamed_exposures_are_ranked_by_luma(tmp_path):
    d = tmp_path / "sice" / "1"
    d.mkdir(parents=True)
    for name, level in (("1.png", 200), ("2.png", 20), ("3.png", 90), ("4.png", 140), ("5.png", 60)):
        write_image(d / name, np.full((8, 8, 3), level, np.uint8))
    write_image(d / "label.png", np.full((8, 8, 3), 120, np.uint8))
    (s,) = scan_dataset(tmp_path / "sice")
    assert s.gt.name == "label.png"
    assert [f.path.name for f in s.frames] == ["2.png", "5.png", "3.png", "4.png", "1.png"]
    assert [f.ev_tenths for f in s.frames] == [-20, -10, 0, 10, 20] and s.frames[0].approximate
    # EV -2, 0, +1 by rank -> middle-2, middle, middle+1
    assert [f.path.name for f in s.select((-20, 0, 10))] == ["2.png", "3.png", "4.png"]


def test_check_names_each_bad_scene(tmp_path):
    make_scene(tmp_path, "good")
    make_scene(tmp_path, "nogt", gt=False)
    make_scene(tmp_path, "missing", evs=(-20, 0))
    d = make_scene(tmp_path, "cut")
    (d / "ev0.yuv").write_bytes((d / "ev0.yuv").read_bytes()[:-10])
    d = make_scene(tmp_path, "sizes")
    write_yuv(d / "gt.yuv", rgb_to_yuv420(smooth_rgb(10, 16)))
    problems = dict(check_dataset(tmp_path, (-20, 0, 4)))
    assert "good" not in problems
    assert "ground truth" in problems["nogt"]
    assert "missing exposure(s) EV [4]" in problems["missing"]
    assert "ev0.yuv is 278 bytes, expected 288" in problems["cut"]
    assert "sizes differ" in problems["sizes"]


def test_merge_refuses_duplicates_unless_renamed(tmp_path):
    make_scene(tmp_path / "part1", "a")
    make_scene(tmp_path / "part1", "b")
    make_scene(tmp_path / "part2", "a")
    with pytest.raises(MemoptError, match="duplicate scene name 'a'.*--rename"):
        merge_datasets([tmp_path / "part1", tmp_path / "part2"], tmp_path / "all")
    assert not (tmp_path / "all").exists()
    n = merge_datasets([tmp_path / "part1", tmp_path / "part2"], tmp_path / "all", "{part}-{scene}")
    assert n == 3
    assert [s.name for s in scan_dataset(tmp_path / "all")] == ["part1-a", "part1-b", "part2-a"]
    assert check_dataset(tmp_path / "all", (-20, 0, 4)) == []
    with pytest.raises(MemoptError, match="not empty"):
        merge_datasets([tmp_path / "part1"], tmp_path / "all")


def test_synth_is_deterministic_and_valid(tmp_path):
    synthesize(tmp_path / "a", 3, seed=5, size=48)
    synthesize(tmp_path / "b", 3, seed=5, size=48)
    synthesize(tmp_path / "c", 3, seed=6, size=48)
    a, b, c = (tmp_path / n / "s0001" / "ev0.yuv" for n in "abc")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert check_dataset(tmp_path / "a", (-20, 0, 4)) == []
    (s,) = [s for s in scan_dataset(tmp_path / "a") if s.name == "s0000"]
    lum = [np.frombuffer(f.path.read_bytes(), np.uint8)[:48 * 48].mean() for f in s.frames]
    assert lum[0] < lum[1] < lum[2]  # brighter with EV


def test_flip_in_packed_domain_matches_flipping_the_frame():
    rng = np.random.default_rng(0)
    f = YUV420(rng.integers(0, 256, (8, 12), np.uint8), rng.integers(0, 256, (4, 6), np.uint8),
               rng.integers(0, 256, (4, 6), np.uint8))
    x = pack([f, f])
    for axis in (0, 1):
        g = YUV420(*(np.ascontiguousarray(np.flip(p, axis)) for p in (f.y, f.u, f.v)))
        assert np.array_equal(flip_packed(x, axis), pack([g, g]))


def test_ev_shifts_add_pairs_with_the_same_ground_truth(tmp_path):
    from memopt.frames.data import load_pairs

    make_ranked_scene(tmp_path / "ranked" / "1")
    pairs = load_pairs([tmp_path / "ranked"], (-10, 0, 10), None, ev_shifts=(0, -10, 10, 30))
    assert len(pairs) == 3  # +30 would need ranks past the brightest frame: the same frames, skipped
    means = [p[0][..., [0, 6, 12]].mean(axis=(0, 1)) for p in pairs]
    assert means[1][1] < means[0][1] < means[2][1]
    assert all(np.array_equal(p[1], pairs[0][1]) for p in pairs)


def test_check_flags_exposures_beyond_a_ranked_scene(tmp_path):
    make_ranked_scene(tmp_path / "ranked" / "1")
    assert check_dataset(tmp_path / "ranked", (-20, 0, 10)) == []
    ((scene, msg),) = check_dataset(tmp_path / "ranked", (-40, 0, 10))
    assert scene == "1" and "EV -40 -> nearest frame is EV -20" in msg
    ((scene, msg),) = check_dataset(tmp_path / "ranked", (-20, 0, 4))
    assert "not enough distinct exposures" in msg
