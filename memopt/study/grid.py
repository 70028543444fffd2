"""Convert one model at several sizes and quantization modes and benchmark each on the host.

The table this writes (``rows.csv``, ``table.md``) is the "before" picture every optimisation is
judged against: measured peak, predicted peak and the prediction's error for each row. Rows
already in ``rows.csv`` are kept, so an interrupted grid resumes where it stopped. The .tflite
files stay in ``models/`` (their size does not grow with the resolution) and are reused.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from memopt.convert import ConvertConfig, convert_cached, parse_size
from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text
from memopt.lite.bench import ROW_COLUMNS, BenchConfig, bench_host, rows_to_csv

GRID_COLUMNS = ("size", "quant") + ROW_COLUMNS


def run_grid(model, sizes: Sequence[str], quants: Sequence[str], out, cfg: BenchConfig,
             rep_data: Sequence[str] = (), ev_tenths=None, samples: int = 4):
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "rows.csv"
    rows = []
    if table.exists():
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
    done = {(r["size"], r["quant"], r["xnnpack"]) for r in rows}
    todo = [(s, q) for s in sizes for q in quants if (s, q, str(cfg.xnnpack)) not in done]
    for size, quant in tqdm(todo, desc="grid", unit="model"):
        h, w = parse_size(size)
        try:
            ccfg = ConvertConfig(h, w, quant, samples=samples)
        except ValueError as e:
            raise MemoptError(str(e)) from None
        path = convert_cached(model, ccfg, out / "models", rep_data, ev_tenths)
        row = {"size": size, "quant": quant, **bench_host(path, cfg)}
        rows.append(row)
        atomic_write_text(table, rows_to_csv(rows, GRID_COLUMNS))  # after every row: resumable
    atomic_write_text(out / "table.md", format_grid(rows))
    return rows


def format_grid(rows) -> str:
    def f(v, spec):  # CSV round trips make every value a string
        try:
            return format(float(v), spec)
        except (TypeError, ValueError):
            return "n/a"

    lines = ["| size (HxW) | quant | XNNPACK | file (MB) | measured peak (MB) | predicted peak (MB) | "
             "error | overall delta (MB) | inference (us) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['quant']} | {r['xnnpack']} | {f(r['file_mb'], '.2f')} | "
                     f"{f(r['peak_mb'], '.0f')} | {f(r['predicted_peak_mb'], '.0f')} | "
                     f"{f(r['prediction_error_pct'], '+.1f')} % | {f(r['mem_overall_delta_mb'], '.0f')} | "
                     f"{f(r['inference_avg_us'], '.0f')} |")
    return "\n".join(lines) + "\n"

