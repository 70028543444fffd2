"""``poly<k>`` / ``guided<k>``: run the network at 1/k resolution (see memopt.lite.splitting)."""
from __future__ import annotations

from dataclasses import replace

from memopt.errors import MemoptError
from memopt.lite.splitting import SplitConfig


def parse(part: str) -> SplitConfig | None:
    if not part.startswith(("poly", "guided")):
        return None
    try:
        return SplitConfig.parse(part)
    except MemoptError as e:
        raise ValueError(str(e).split(": ", 1)[-1]) from None


def apply(cfg: SplitConfig, build, ctx):
    return replace(build, split=cfg)
