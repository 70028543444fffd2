"""The comparison: results.csv (fixed columns), quality.csv, results.md against the budget, plots.

The memory a variant is judged on (``memory_mb``, with ``memory_basis``):
  pipeline    tiled / split variants on the host: the whole process that runs the tile loop (the
              frames, one window, the runtime), because the phone runs that loop too
  model-only  whole-frame variants, in-graph tile loops (``+ingraph``: the file takes the whole frame),
              and every phone row: benchmark_model's overall peak for the .tflite alone, the figure
              the team's 700 MB goal is written against
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from memopt.fsutil import atomic_write_bytes, atomic_write_text
from memopt.study.results import QUALITY_COLUMNS, RESULT_COLUMNS, finish_row, load_results, num, sort_key


def _csv(rows, columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def markdown(rows, budget_mb: float, name: str, note: str = "") -> str:
    def f(x, nd=0):
        v = num(x)
        if v is None:
            return "" if x in (None, "") else str(x)
        return "identical" if math.isinf(v) else f"{v:.{nd}f}"

    lines = [f"# {name}: variants against the {budget_mb:g} MB budget", "",
             "Sorted: fits first, then PSNR. memory = pipeline peak for tiled/split variants on the host "
             "(the whole tile loop), model-only peak otherwise (benchmark_model's figure). ms / model run: "
             "benchmark average; ms / frame: the whole pipeline on the host (model initialisation, frame I/O "
             "included), model time x runs per frame on a phone. PSNR/SSIM: RGB, vs ground truth on the quality "
             "data; PSNR vs fp32: against the fp32 model's own output. exact: whether a tiled / split variant's output "
             "equals the whole frame's (the halo covers the probed receptive field and the network has no global "
             "operations).", "",
             "| variant | device | fits | memory (MB) | basis | model-only peak (MB) | predicted (MB) | "
             "pipeline peak (MB) | ms / model run | ms / frame | file (MB) | gzip (MB) | params | MMAC/MP | PSNR (dB) | SSIM | "
             "PSNR vs fp32 (dB) | exact | status |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(rows, key=sort_key):
        if r.get("status") != "ok":
            lines.append(f"| {r['variant']} | {r['device']} |" + " |" * 16 + f" failed: {r.get('reason', '')} |")
            continue
        lines.append(
            f"| {r['variant']} | {r['device']} | {r['fits']} | {f(r['memory_mb'])} | {r['memory_basis']} | "
            f"{f(r.get('model_peak_mb'))} | {f(r.get('predicted_peak_mb'))} | {f(r.get('pipeline_peak_mb'))} | "
            f"{f(r.get('model_inference_ms'))} | {f(r.get('frame_ms'))} | {f(r.get('file_mb'), 2)} | {f(r.get('gzip_mb'), 2)} | {r.get('params', '')} | "
            f"{f(r.get('macs_per_mp'))} | {f(r.get('psnr_gt'), 2)} | {f(r.get('ssim_gt'), 3)} | "
            f"{f(r.get('psnr_vs_baseline'), 1)} | {r.get('exact') or ''} | "
            f"{'ok: ' + r['note'] if r.get('note') else 'ok'} |")
    ok = [r for r in rows if r.get("status") == "ok"]
    if ok and not any(r["fits"] == "yes" for r in ok):
        lines += ["", f"**Nothing fits {budget_mb:g} MB.** The smallest is "
                  f"{min(ok, key=lambda r: float(r['memory_mb']))['variant']}; add tiled variants "
                  "(e.g. int8+tile256h16) or raise the budget."]
    from memopt.study.pick import choose, rank_for

    for dev in sorted({r["device"] for r in ok}):
        b, _ = choose(ok, budget_mb, dev, full_frame=True, by=rank_for(note))  # the pick's own rule
        if b is not None:
            lines += ["", f"Best full-frame variant within {budget_mb:g} MB on {dev} (no tile loop in the app): "
                      f"**{b['variant']}**, {f(b['memory_mb'])} MB, {f(b.get('psnr_gt'), 2)} dB."]
    if rows and ok:
        src = ok[0].get("quality_data", "")
        lines += ["", f"Quality data: {src} ({ok[0].get('scenes', '')} scenes); all sources in quality.csv."]
    if note:
        lines += ["", f"**In-sample:** {note}"]
    return "\n".join(lines) + "\n"


def pareto(points):
    """Indices of the points (memory, psnr) no other point beats on both (lower memory, higher PSNR)."""
    idx = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in idx:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _label(ax, points, fontsize: float = 7) -> None:
    """Label each point beside it, moving a label up or down (then to the left) until it overlaps
    no label placed before it: variants that differ only in a setting sit close together."""
    if ax.get_yscale() != "log" and points:
        ax.autoscale_view()
    dpi = ax.figure.dpi
    placed: list[tuple[float, float, float, float]] = []
    tries = [(3, 3), (3, -11), (3, 12), (3, -20), (3, 21), (3, -29), (3, 30), (3, -38), (3, 39)]
    for text, x, y in sorted(points, key=lambda p: (p[1], -p[2])):
        px, py = ax.transData.transform((x, y))
        w, h = len(text) * fontsize * 0.58 * dpi / 72, fontsize * 1.4 * dpi / 72
        cands = tries + [(-3 - w * 72 / dpi, dy) for _, dy in tries]
        for dx, dy in cands:
            bx, by = px + dx * dpi / 72, py + dy * dpi / 72
            box = (bx, by, bx + w, by + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), fontsize=fontsize, xytext=(dx, dy), textcoords="offset points",
                    arrowprops=None if (dx, dy) == (3, 3) else dict(arrowstyle="-", lw=0.4, color="0.5"))


def _scatter(df, y: str, budget_mb: float, ax, front: bool, labels: tuple[str, str, str]):
    """Each device's ok rows at (memory_mb, y), labelled, the budget line, log memory axis."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 5))[1]
    ok = df[df.status == "ok"].dropna(subset=["memory_mb", y])
    ax.set_xscale("log")
    labels_at = []
    for dev, g in ok.groupby("device"):
        ax.scatter(g.memory_mb, g[y], label=dev, zorder=3)
        labels_at += [(r.variant, float(r.memory_mb), float(r[y])) for _, r in g.iterrows()]
        pts = list(zip(g.memory_mb, g[y]))
        line = [pts[i] for i in pareto(pts)] if front else []
        if len(line) > 1:
            ax.plot(*zip(*line), "--", lw=1, label=f"{dev} Pareto front")
    ax.axvline(budget_mb, color="red", lw=1, label=f"budget {budget_mb:g} MB")
    _label(ax, labels_at)
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda x, _: f"{x:g}")  # 200, not 2x10^2
    ax.xaxis.set_major_formatter(plain)
    # minor ticks: label 2, 3 and 5 of each decade only, or 700, 800, 900 run together
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if f"{x:g}"[0] in "235" else ""))
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(labels[2])
    ax.legend(fontsize=7)
    return ax


def plot_memory_vs_psnr(df, budget_mb: float, ax=None, title: str = ""):
    """Memory (log) vs PSNR per device, the Pareto front, and the budget line."""
    return _scatter(df, "psnr_gt", budget_mb, ax, True,
                    ("memory (MB, log): pipeline peak when tiled/split, model-only otherwise",
                     "RGB PSNR vs ground truth (dB)", title or "memory vs quality"))


def plot_latency_vs_memory(df, budget_mb: float, ax=None, title: str = ""):
    """Time per frame vs memory per device, with the budget line."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 5))[1]
    ax.set_yscale("log")  # one slow variant (reference kernels) would flatten the rest; set first: labels
    return _scatter(df, "frame_ms", budget_mb, ax, False,  # are placed in display space
                    ("memory (MB, log)", "time per frame (ms, log)", title or "latency vs memory"))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def write_report(rows, out, budget_mb: float, name: str, note: str = "") -> list[dict]:
    """results.csv, quality.csv, results.md and two PNG plots in ``out`` (each written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = Path(out)
    done = [finish_row(r, budget_mb) for r in rows]
    atomic_write_text(out / "results.csv", _csv(done, RESULT_COLUMNS))
    qrows = [{"variant": r["variant"], **q} for r in done if r.get("status") == "ok" and r["device"] == done[0]["device"]
             for q in r.get("quality", [])]
    atomic_write_text(out / "quality.csv", _csv(qrows, QUALITY_COLUMNS))
    atomic_write_text(out / "results.md", markdown(done, budget_mb, name, note))
    df = load_results(out)
    if (df.status == "ok").any():
        for fname, fn in (("memory_vs_psnr.png", plot_memory_vs_psnr), ("latency_vs_memory.png", plot_latency_vs_memory)):
            fig, ax = plt.subplots(figsize=(8, 5))
            fn(df, budget_mb, ax, f"{name}: {fname[:-4].replace('_', ' ')}")
            atomic_write_bytes(out / fname, _png(fig))
            plt.close(fig)
    return done
