"""What a study records about its network (cached in scratch/network.json): the graph's non-local
operations, the probe's receptive field and alignment, and how it splits at global reductions."""
from __future__ import annotations

import json
from pathlib import Path

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text


def network_report(src, evs, scratch: Path) -> dict:
    """What the graph and the probe say about the baseline (cached in scratch/network.json): its
    non-local operations, receptive field and alignment, params and MACs."""
    cache = scratch / "network.json"
    files = [f for f in (src.model, src.builder and src.builder.rpartition(":")[0], src.weights) if f]
    stamps = [Path(f).stat().st_mtime_ns for f in files if Path(f).exists()]  # a replaced file is probed again
    key = json.dumps({**src.to_dict(), "mtimes": stamps, "report": 3}, sort_keys=True)  # 3: resizes that follow the frame
    if cache.is_file():
        got = json.loads(cache.read_text())
        if got.get("key") == key:
            return got
    from memopt.lite.runner import keras_runner, load_runner
    from memopt.network.graph import non_local_ops, resizes, scaling_resizes
    from memopt.network.probe import probe

    if src.model and Path(src.model).suffix.lower() == ".tflite":  # a file alone: probed, its graph not read
        model, r, ops, kind = None, load_runner(src.model, layout=src.io), [], ".tflite"
    else:
        model = src.load((256, 256)) if src.builder else src.load()
        scaling = scaling_resizes(src) if resizes(model) else ()
        r, ops, kind = keras_runner(model, src.io, evs, src.name), non_local_ops(model, scaling), "network"
    own = r.fixed_hw
    pr = probe(r.fn, src.io, len(evs), evs, own[0] if own else 256) if not own or own[0] == own[1] else None
    rep = {"key": key, "non_local_ops": [vars(o) for o in ops], "scaling_resizes": list(scaling) if model else [],
           "radius": pr.radius if pr else None, "alignment": pr.alignment if pr else None,
           "non_local": (pr.non_local if pr else False) or any(o.kind == "global" for o in ops),
           "probe": pr.describe() if pr else f"not probed (a non-square fixed-size {kind})"}
    if rep["non_local"] and model is not None:
        rep.update(_context_report(model, src, evs, scaling))
    atomic_write_text(cache, json.dumps(rep, indent=1))
    return rep


def _context_report(model, src, evs, scaling=()) -> dict:
    """How a non-local network splits at its global reductions (memopt.network.context): the values,
    the window model's receptive field and alignment; or why it cannot."""
    from memopt.network.context import analyse

    try:
        split, pr = analyse(model, src.io, evs, 256, src.name, scaling)
    except MemoptError as e:
        return {"context_error": str(e)}
    return {"context": [v.to_dict() for v in split.values], "context_passes": split.passes,
            "local_radius": pr.radius, "local_alignment": pr.alignment}
