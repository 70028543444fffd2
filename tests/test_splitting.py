import numpy as np
import pytest

from memopt.errors import MemoptError
from memopt.lite.splitting import SplitConfig, downscale, enhance_split, guided_upsample, polyphase_merge, polyphase_split
from memopt.frames.yuv import YUV420


def frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return YUV420(rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h // 2, w // 2), np.uint8),
                  rng.integers(0, 256, (h // 2, w // 2), np.uint8))


@pytest.mark.parametrize("k", [2, 3])
def test_polyphase_round_trip(k):
    f = frame(12 * k, 8 * k)
    pieces = polyphase_split(f, k)
    assert len(pieces) == k * k and (pieces[0].height, pieces[0].width) == (12, 8)
    g = polyphase_merge(pieces, k)
    assert np.array_equal(f.y, g.y) and np.array_equal(f.u, g.u) and np.array_equal(f.v, g.v)


def test_split_sizes_and_names_validate():
    with pytest.raises(MemoptError, match="multiples of 4"):
        polyphase_split(frame(6, 8), 2)
    assert SplitConfig.parse("guided4") == SplitConfig("guided", 4)
    with pytest.raises(MemoptError, match="poly<k> or guided<k>"):
        SplitConfig.parse("poly")
    with pytest.raises(MemoptError, match="factor"):
        SplitConfig.parse("poly1")


def test_identity_network_is_exact_for_polyphase_and_close_for_guided():
    """A network that returns its reference frame: polyphase gives the frame back exactly;
    guided upsampling of a downscaled copy, guided by the frame itself, recovers it closely."""
    yy, xx = np.mgrid[0:64, 0:96]
    y = (128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.uint8)
    c = np.full((32, 48), 128, np.uint8)
    f = YUV420(y, c, c.copy())
    ident = lambda fs: YUV420(np.ascontiguousarray(fs[1].y), np.ascontiguousarray(fs[1].u),  # noqa: E731
                              np.ascontiguousarray(fs[1].v))
    assert np.array_equal(enhance_split(ident, [f, f, f], SplitConfig("poly", 2), 1).y, y)
    g = enhance_split(ident, [f, f, f], SplitConfig("guided", 2, radius=2, eps=1e-4), 1)
    naive = np.kron(downscale(f, 2).y.astype(float), np.ones((2, 2)))
    assert np.abs(g.y.astype(float) - y).mean() < 0.5 * np.abs(naive - y).mean()


def test_guided_upsample_reproduces_a_linear_relation():
    rng = np.random.default_rng(0)
    g_full = rng.random((64, 64), dtype=np.float32)
    import cv2

    g_low = cv2.resize(g_full, (32, 32), interpolation=cv2.INTER_AREA)
    out = guided_upsample(0.5 * g_low + 0.2, g_low, g_full, radius=3, eps=1e-6)
    np.testing.assert_allclose(out, 0.5 * g_full + 0.2, atol=2e-3)
