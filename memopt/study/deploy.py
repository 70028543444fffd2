"""The picked variant at the phone's own frame size: ``memopt deploy RESULTS --size 3000x4000``.

A .tflite runs at the one size it was converted at (benchmark_model and the phone need fixed
shapes). The study measured its variants at ``[deploy] size``; a phone whose sensor gives another
size (4000x3000 is the most common 12 MP one) needs the same variant converted for that size: the
same fine-tuned weights (from the study's cache), the same window model for tiles and in-graph
loops, checked against its source like every conversion. The file lands in ``deploy/`` named after
the variant and the size, with how it must be run in its metadata (memopt.lite.embed.run_settings),
so ``memopt enhance --model deploy/<file> frames...`` needs no flags.
"""
from __future__ import annotations

import json
from pathlib import Path

from memopt.errors import MemoptError


def deploy_size(results, size: tuple[int, int], variant: str | None = None) -> Path:
    """Convert ``variant`` (default: the pick in deploy/model_card.json) for ``size`` (H, W) frames."""
    from memopt.network.source import NetworkSource
    from memopt.study.results import slug
    from memopt.study.variant_worker import make_tflite, plan_variant

    out = Path(results)
    plan_file = out / "scratch" / "plan.json"
    if not plan_file.is_file():
        raise MemoptError(f"{out}: no study there (scratch/plan.json); run `memopt run RECIPE --out {out}` first")
    plan = {**json.loads(plan_file.read_text()), "out": str(out)}  # the folder it is in now, wherever it was run
    if variant is None:
        card = out / "deploy" / "model_card.json"
        if not card.is_file():
            raise MemoptError(f"{out}: nothing picked yet; run `memopt pick {out}` or name the variant (--variant)")
        variant = json.loads(card.read_text())["variant"]
    h, w = size
    src = NetworkSource.from_dict(plan["model"])
    if h % src.io.step or w % src.io.step:
        raise MemoptError(f"{w}x{h}: the network's layout needs multiples of {src.io.step} px")
    v, exact, ctx = plan_variant(plan, variant, (h, w), verbose=1)
    target = out / "deploy" / f"{slug(v.file_name)}-{w}x{h}.tflite"
    scratch = out / "scratch" / "deploy" / target.name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.unlink(missing_ok=True)  # converted again: an earlier study in this folder may have left one
    make_tflite(plan, v, h, w, scratch, ctx)
    write_deployed(scratch, target, {**run_settings(v), "exact": exact})
    return target


def run_settings(v) -> dict:
    """How a variant's file must be run (the ``run`` metadata a deployed file carries, which ``memopt
    enhance`` takes as its defaults): its split, halo, context, runtime setting, and whether it is a
    window model (else it takes the whole frame, or a split's piece)."""
    inside = v.ingraph  # its tile loop and context passes are in the file: nothing to run around it
    return {"variant": v.name, "split": v.split.name if v.split else "", "window": bool(v.tile) and not inside,
            "context": v.context.name if v.context and not inside else "", "runtime": v.runtime.name,
            "halo": v.tile.halo if v.tile and not inside else None}


def write_deployed(src: Path, target: Path, run: dict) -> None:
    """``src`` written to ``target`` (atomically) with ``run`` in its metadata; a file without memopt's
    metadata (one memopt did not convert) is copied as it is."""
    from memopt.fsutil import atomic_write_bytes
    from memopt.lite import embed

    target.parent.mkdir(exist_ok=True)
    data = embed.merge(src, {"run": run}) if embed.read(src) is not None else Path(src).read_bytes()
    atomic_write_bytes(target, data)


def measured(results, variant: str) -> bool:
    """Whether the study has a row for ``variant`` (a deployed file of another variant is checked against
    its source, but its memory and quality were never measured)."""
    from memopt.study.results import slug
    from memopt.variants import parse_variant

    return any((Path(results) / "rows").glob(f"{slug(parse_variant(variant).name)}@*.json"))
