"""A quiet terminal: the native libraries' start-up noise (TensorFlow's oneDNN and CUDA banners,
absl's pre-init warnings, the TFLite converter's and LiteRT's INFO lines) goes to /dev/null unless
``--verbose``, while memopt's own lines still reach the terminal.

The noise is written by C++ straight to file descriptor 2, before (or regardless of)
TF_CPP_MIN_LOG_LEVEL, so only moving fd 2 silences it; Python's ``sys.stderr`` is pointed at a
duplicate of the real stderr so that memopt's errors and progress bars stay visible.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys


@contextlib.contextmanager
def quiet_native(verbose: bool = False, restore: bool = True):
    """Within the block, native writes to fd 2 are dropped; Python's stderr is unchanged.

    ``restore=False`` (the ``memopt`` command itself) keeps fd 2 quiet until the process exits,
    where LiteRT's destructors print INFO lines too."""
    # Under pytest's capture (or any replaced sys.stderr) fd 2 is not the terminal: leave it be.
    if verbose or sys.stderr is not sys.__stderr__ or os.environ.get("MEMOPT_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, io.UnsupportedOperation):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    real = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=real.encoding, errors="backslashreplace")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if restore:
            stream, sys.stderr = sys.stderr, real
            stream.close()
            os.dup2(saved, 2)
        os.close(saved)
