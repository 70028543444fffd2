import json

import numpy as np
import pytest

from conftest import smooth_rgb
from memopt.errors import MemoptError
from memopt.study.evaluate import psnr
from memopt.frames.yuv import (YUV420, read_frame, read_image, read_yuv, rgb_to_yuv420, write_image,
                        write_yuv, yuv420_to_rgb)


def random_frame(w=8, h=6, seed=0):
    rng = np.random.default_rng(seed)
    return YUV420(rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h // 2, w // 2), np.uint8),
                  rng.integers(0, 256, (h // 2, w // 2), np.uint8))


@pytest.mark.parametrize("fmt", ["nv21", "nv12"])
def test_bytes_round_trip(fmt):
    f = random_frame()
    data = f.to_bytes(fmt)
    assert len(data) == 8 * 6 * 3 // 2
    g = YUV420.from_bytes(data, 8, 6, fmt)
    assert all(np.array_equal(a, b) for a, b in ((f.y, g.y), (f.u, g.u), (f.v, g.v)))


def test_nv21_is_vu_and_nv12_is_uv():
    f = random_frame()
    nv21, nv12 = f.to_bytes("nv21"), f.to_bytes("nv12")
    assert nv21[48] == f.v[0, 0] and nv21[49] == f.u[0, 0]
    assert nv12[48] == f.u[0, 0] and nv12[49] == f.v[0, 0]
    # Reading NV12 bytes as NV21 swaps the chroma planes.
    swapped = YUV420.from_bytes(nv12, 8, 6, "nv21")
    assert np.array_equal(swapped.u, f.v) and np.array_equal(swapped.v, f.u)


@pytest.mark.parametrize("fmt", ["nv21", "nv12"])
def test_file_round_trip_with_sidecar(tmp_path, fmt):
    f = random_frame(16, 10)
    p = tmp_path / "frame.yuv"
    write_yuv(p, f, fmt)
    assert json.loads((tmp_path / "frame.yuv.json").read_text()) == {"width": 16, "height": 10, "format": fmt}
    g = read_yuv(p)
    assert np.array_equal(f.y, g.y) and np.array_equal(f.u, g.u) and np.array_equal(f.v, g.v)


def test_geometry_from_file_name_and_folder_sidecar(tmp_path):
    f = random_frame(16, 10)
    p = tmp_path / "shot_16x10.nv12.yuv"
    p.write_bytes(f.to_bytes("nv12"))
    assert np.array_equal(read_yuv(p).u, f.u)
    scene = tmp_path / "ds" / "s1"
    scene.mkdir(parents=True)
    (tmp_path / "ds" / "yuv.json").write_text('{"width": 16, "height": 10, "format": "nv21"}')
    (scene / "ev0.yuv").write_bytes(f.to_bytes("nv21"))
    assert np.array_equal(read_yuv(scene / "ev0.yuv").v, f.v)


def test_bt601_full_range_values():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[...] = (255, 255, 255)
    white = rgb_to_yuv420(rgb)
    assert white.y[0, 0] == 255 and white.u[0, 0] == 128 and white.v[0, 0] == 128
    rgb[...] = (255, 0, 0)
    red = rgb_to_yuv420(rgb)
    assert red.y[0, 0] == 76 and red.u[0, 0] == 85 and red.v[0, 0] == 255


def test_rgb_yuv_rgb_is_close_on_smooth_images():
    rgb = smooth_rgb(64, 96)
    assert psnr(yuv420_to_rgb(rgb_to_yuv420(rgb)), rgb) > 38


def test_odd_size_rejected(tmp_path):
    with pytest.raises(MemoptError, match="even"):
        YUV420.from_bytes(bytes(7 * 6 * 3 // 2), 7, 6, "nv21", source="x.yuv")
    with pytest.raises(MemoptError, match="even"):
        rgb_to_yuv420(np.zeros((5, 4, 3), np.uint8))


def test_truncated_and_oversized_files_named(tmp_path):
    p = tmp_path / "cut.yuv"
    p.write_bytes(bytes(100))
    with pytest.raises(MemoptError, match=r"cut\.yuv: truncated: 100 bytes, expected 144"):
        read_yuv(p, 12, 8)
    p.write_bytes(bytes(200))
    with pytest.raises(MemoptError, match="too large"):
        read_yuv(p, 12, 8)


def test_unknown_geometry_and_format(tmp_path):
    p = tmp_path / "frame.yuv"
    p.write_bytes(bytes(144))
    with pytest.raises(MemoptError, match="size unknown"):
        read_yuv(p)
    with pytest.raises(MemoptError, match="unknown YUV format"):
        read_yuv(p, 12, 8, "yv12")


def test_unreadable_image(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"not a png")
    with pytest.raises(MemoptError, match="broken.png: not a readable image"):
        read_image(p)
    with pytest.raises(MemoptError, match="no such image"):
        read_image(tmp_path / "missing.jpg")


def test_image_files_round_trip_and_odd_images_lose_an_edge(tmp_path):
    rgb = smooth_rgb(31, 45)
    write_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    f = read_frame(tmp_path / "a.png")
    assert (f.width, f.height) == (44, 30)


def test_reduced_size_reading(tmp_path):
    write_image(tmp_path / "big.jpg", smooth_rgb(300, 400))
    assert read_image(tmp_path / "big.jpg", long_side=100).shape == (75, 100, 3)


def test_atomic_writes_leave_no_temp_files_and_readable_modes(tmp_path):
    import os
    import stat

    from memopt.fsutil import atomic_write_text

    atomic_write_text(tmp_path / "a.csv", "x\n")
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    assert stat.S_IMODE(os.stat(tmp_path / "a.csv").st_mode) & 0o044  # group/other may read


def test_strip_conversion_equals_whole_frame_arithmetic():
    """rgb_to_yuv420 converts a few rows at a time (no full-frame float copy); the result is the
    whole-frame formula's, exactly, also when the height is not a multiple of the strip."""
    from conftest import smooth_rgb
    from memopt.frames.yuv import _RGB2YUV, rgb_to_yuv420

    rgb = smooth_rgb(22, 30, seed=3)
    yuv = rgb.astype(np.float32) @ _RGB2YUV.T
    yuv[..., 1:] += 128.0
    c = yuv[..., 1:].reshape(11, 2, 15, 2, 2).mean(axis=(1, 3))
    to8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    for rows in (4, 6, 7, 128):
        f = rgb_to_yuv420(rgb, rows=rows)
        assert np.array_equal(f.y, to8(yuv[..., 0])) and np.array_equal(f.u, to8(c[..., 0]))
        assert np.array_equal(f.v, to8(c[..., 1]))
