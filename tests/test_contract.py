import numpy as np
import pytest

from memopt.frames.contract import check_shapes, pack, unpack
from memopt.errors import MemoptError
from memopt.frames.yuv import YUV420


def frame(seed, w=8, h=6):
    rng = np.random.default_rng(seed)
    return YUV420(rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h // 2, w // 2), np.uint8),
                  rng.integers(0, 256, (h // 2, w // 2), np.uint8))


def test_pack_layout_matches_space_to_depth():
    from memopt.tfenv import tf

    frames = [frame(0), frame(1), frame(2)]
    x = pack(frames)
    assert x.shape == (3, 4, 18) and x.dtype == np.float32
    for i, f in enumerate(frames):
        s2d = tf.nn.space_to_depth(f.y[None, :, :, None].astype(np.float32), 2).numpy()[0] / 255
        np.testing.assert_allclose(x[..., 6 * i: 6 * i + 4], s2d, rtol=0, atol=1e-7)
        np.testing.assert_allclose(x[..., 6 * i + 4], f.u / 255, atol=1e-7)
        np.testing.assert_allclose(x[..., 6 * i + 5], f.v / 255, atol=1e-7)
    assert x[0, 0, 1] == frames[0].y[0, 1] / np.float32(255)  # y01: row 0, column 1


def test_pack_unpack_round_trip_float_and_uint8():
    f = frame(3, 16, 10)
    for dtype in (np.float32, np.uint8):
        g = unpack(pack([f], dtype)[None])
        assert np.array_equal(f.y, g.y) and np.array_equal(f.u, g.u) and np.array_equal(f.v, g.v)


def test_unpack_clips_out_of_range_values():
    t = np.full((2, 3, 6), 1.7, np.float32)
    t[..., 4] = -0.3
    g = unpack(t)
    assert g.y.max() == 255 and g.u.max() == 0


def test_bad_shapes_raise():
    with pytest.raises(MemoptError, match="same size"):
        pack([frame(0), frame(1, 10, 6)])
    with pytest.raises(MemoptError, match=r"\[H/2, W/2, 6\]"):
        unpack(np.zeros((3, 4, 5), np.float32))
    with pytest.raises(MemoptError, match="off the I/O contract"):
        check_shapes((None, None, None, 7), (None, None, None, 6))
    with pytest.raises(MemoptError, match="takes 3 frames"):
        check_shapes((1, 4, 4, 18), (1, 4, 4, 6), frames=2)
    assert check_shapes((None, None, None, 18), (None, None, None, 6)) == 3
