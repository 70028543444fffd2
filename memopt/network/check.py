"""Checks that a model memopt derived from the source network still is that network.

A rebuilt copy that runs but carries fresh weights gives rows that look healthy and measure the
wrong network: the worst failure a measuring tool can have. So every copy is compared with its
source before use: weight by weight (exactly), and output against output on a random input of a
size both accept (within float rounding). A failed check is one line with the figure.
"""
from __future__ import annotations

import numpy as np

from memopt.errors import MemoptError, first_line

# Same weights and the same graph give the same floats up to the order of accumulation.
TOLERANCE = 1e-5


def weights_digest(model) -> str:
    """A fingerprint of a model's weights (every tensor's shape and bytes, in order)."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        a = np.ascontiguousarray(w)
        h.update(str(a.shape).encode() + a.dtype.str.encode() + a.tobytes())
    return h.hexdigest()[:16]


def weights_differ(source, derived) -> str | None:
    """Why ``derived``'s weights are not ``source``'s (layer by layer, exactly), or None."""
    a, b = source.get_weights(), derived.get_weights()
    if len(a) != len(b):
        return f"{len(b)} weight tensors where the source has {len(a)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            return f"weight tensor {i} is {tuple(y.shape)} where the source's is {tuple(x.shape)}"
        if not np.array_equal(x, y):
            return f"weight tensor {i} differs from the source's (max |diff| {float(np.max(np.abs(x - y))):.3g})"
    return None


def random_inputs(shapes, seed: int = 0) -> list[np.ndarray]:
    """Inputs for a check: a smooth dark frame with texture (a low-light burst's values, mostly in
    the lower quarter of the range), so that gains, clips and sigmoids do not saturate the output
    and make two different models agree."""
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        base = rng.uniform(0.02, 0.25, (s[0], 1, 1, s[-1])) if len(s) == 4 else 0.1
        out.append((base + rng.uniform(0.0, 0.1, s)).astype(np.float32))
    return out


def outputs_diff(source, derived, shapes, seed: int = 0) -> float:
    """Max |diff| (relative to the source output's range) of the two models' outputs on the same
    random inputs of ``shapes``; one line if either refuses them or the source's output is constant
    (a check that cannot tell two models apart is no check)."""
    xs = random_inputs(shapes, seed)
    feed = xs[0] if len(xs) == 1 else xs

    def run(m):
        try:
            out = m(feed, training=False)
        except Exception as e:  # noqa: BLE001  TensorFlow's shape errors are long
            raise MemoptError(f"the check of a derived model could not run it on inputs {[list(s) for s in shapes]} "
                              f"({type(e).__name__}: {first_line(e)[:120]})") from None
        return [np.asarray(o, np.float64) for o in (out if isinstance(out, (list, tuple)) else [out])]

    a, b = run(source), run(derived)
    if all(float(np.std(x)) < 1e-7 for x in a):
        raise MemoptError("the check of a derived model is inconclusive: the network's output is constant on a "
                          "random dark frame")
    return relative_diff(a, b)


def relative_diff(want, got) -> float:
    """Max |diff| of paired outputs, each relative to the reference output's range (inf when their
    number or shapes differ)."""
    want, got = [np.asarray(w, np.float64) for w in want], [np.asarray(g, np.float64) for g in got]
    if len(want) != len(got) or any(w.shape != g.shape for w, g in zip(want, got)):
        return float("inf")
    return max((float(np.max(np.abs(w - g))) / max(float(np.max(np.abs(w))), 1e-6) for w, g in zip(want, got)),
               default=0.0)


def layout_shapes(model, layout, n_frames: int | None, hw: tuple[int, int] = (64, 64)) -> list[tuple[int, ...]]:
    """Input shapes for a random check of ``model`` through its tensor layout: its own static size,
    else a ``hw`` frame (each tensor at its layout resolution)."""
    own = [tuple(t.shape) for t in model.inputs]
    nf = n_frames or layout.frames_from_shapes(own) or 1
    hw = layout.frame_hw(own) or hw
    return [tuple(d or s for d, s in zip(t, full)) for t, full in zip(own, layout.input_shapes(hw[0], hw[1], nf))]


def check_copy(source, derived, shapes, what: str) -> None:
    """Raise one line unless ``derived`` has ``source``'s weights and, on inputs of ``shapes``
    (which both accept), its outputs."""
    why = weights_differ(source, derived)
    if why is None:
        d = outputs_diff(source, derived, shapes)
        if d > TOLERANCE:
            why = f"its output differs from the source's by {d:.3g} of the output's range on a random input"
    if why:
        raise MemoptError(f"{what}: {why}; memopt will not measure a copy that is not the network")
