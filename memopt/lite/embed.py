"""The tensor layout travels inside the .tflite: a ``memopt_io`` metadata entry (JSON: the layout and
the frames' EVs), so every later step (benchmark inputs, the tile runner, the pipeline worker,
``memopt enhance``, the phone app) knows how to feed the file without being told again.

memopt names a converted model's signature tensors ``in<i>`` / ``out<i>`` in the layout's order;
``io_order`` maps layout entries to the graph's tensors through those names (the graph's own
order is the converter's choice).
"""
from __future__ import annotations

import json
from pathlib import Path

from memopt.errors import MemoptError
from memopt.network.layout import IOLayout, layout_dict, parse_layout

KEY = "memopt_io"


def embed(flatbuffer: bytes, layout: IOLayout, evs, network: dict | None = None, context=(),
          extra: dict | None = None) -> bytes:
    """The .tflite bytes with the layout and EVs as metadata (replacing an earlier entry); ``network``:
    what the probe found (radius, alignment, non_local), which the tile runner and the app need;
    ``context``: a window model's global values (memopt.network.values.GlobalValue), the extra
    inputs ``in<n>...`` after the layout's and extra outputs after its outputs; ``extra``: further
    entries (``bytes``: what a raw uint8 / int8 I/O tensor's values mean, see ``byte_io``;
    ``ingraph``: the windows of a tile loop inside the graph)."""
    meta = {"io": layout_dict(layout), "ev_tenths": list(evs)}
    if network:
        meta["network"] = {k: network.get(k) for k in ("radius", "alignment", "non_local", "local_radius",
                                                       "local_alignment")}
    if context:
        meta["context"] = [v.to_dict() for v in context]
    meta.update(extra or {})
    return _write_meta(flatbuffer, meta)


def merge(path, extra: dict) -> bytes:
    """The bytes of the .tflite at ``path`` with ``extra`` entries added to its metadata (e.g. ``run``:
    how a deployed file must be run, which ``memopt enhance`` reads)."""
    meta = _meta(path)
    if meta is None:
        raise MemoptError(f"{path}: no {KEY} metadata to add to; convert it with memopt")
    return _write_meta(Path(path).read_bytes(), {**meta, **extra})


def run_settings(path) -> dict:
    """How a deployed file must be run (variant, split, halo, context, runtime), or {}."""
    return entry(path, "run")


def _write_meta(flatbuffer: bytes, meta: dict) -> bytes:
    from ai_edge_litert import schema_py_generated as schema

    from memopt.lite.flatbuf import pack, unpack

    m = unpack(flatbuffer)
    buf = schema.BufferT()
    buf.data = list(json.dumps(meta).encode())
    m.buffers = list(m.buffers or [])
    ours = [md for md in (m.metadata or []) if (md.name or b"") in (KEY, KEY.encode())]
    if ours:  # an earlier entry (merge): its buffer is rewritten, not left behind
        m.buffers[ours[0].buffer] = buf
        m.metadata = [md for md in m.metadata if md not in ours[1:]]
    else:
        md = schema.MetadataT()
        md.name = KEY
        md.buffer = len(m.buffers)
        m.buffers.append(buf)
        m.metadata = list(m.metadata or []) + [md]
    return pack(m, len(flatbuffer) + 4096)


def read(path) -> tuple[IOLayout, tuple[int, ...]] | None:
    """(layout, EVs) memopt embedded in a .tflite, or None."""
    d = _meta(path)
    if d is None:
        return None
    try:
        return parse_layout(d["io"], f"{path} ({KEY})"), tuple(int(e) for e in d["ev_tenths"])
    except (KeyError, TypeError, ValueError) as e:
        raise MemoptError(f"{path}: unreadable {KEY} metadata ({e})") from None


def network(path) -> dict:
    """What the probe found about the network in a .tflite (radius, alignment, non_local), or {}."""
    return entry(path, "network")


def context(path) -> tuple:
    """The global values a window model takes (memopt.network.values.GlobalValue), or ()."""
    from memopt.network.values import GlobalValue

    try:
        return tuple(GlobalValue.from_dict(d) for d in (_meta(path) or {}).get("context") or ())
    except (KeyError, TypeError, ValueError) as e:
        raise MemoptError(f"{path}: unreadable {KEY} context metadata ({e})") from None


def byte_io(path) -> dict:
    """What a raw (unquantized) uint8 input / int8 output of the file means, or {}: ``scale``, ``in_zero``,
    ``out_zero``, the value being (byte - zero) * scale, as a quantized tensor's. Kept in the metadata
    and not as the tensors' quantization: the kernels that read a quantized tensor (MIRROR_PAD, SLICE)
    require the same scale on their outputs, which a loop model's raw bytes do not have."""
    return entry(path, "bytes")


def ingraph(path) -> dict:
    """The tile loop inside the file (tile, halo, windows), or {}."""
    return entry(path, "ingraph")


def entry(path, key: str) -> dict:
    """One entry of the file's metadata (``network``, ``bytes``, ``ingraph``, ``run``), or {}."""
    return (_meta(path) or {}).get(key) or {}


def _meta(path) -> dict | None:
    from memopt.lite.predict import load_flatbuffer

    _, model, _, _ = load_flatbuffer(path)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if (md.Name() or b"").decode(errors="replace") == KEY:
            b = model.Buffers(md.Buffer())
            # inline, or (AI Edge Quantizer's files) stored after the flatbuffer at an offset
            raw = b.DataAsNumpy() if b.DataLength() else Path(path).read_bytes()[b.Offset():b.Offset() + b.Size()]
            try:
                return json.loads(bytes(raw).decode())
            except ValueError as e:
                raise MemoptError(f"{path}: unreadable {KEY} metadata ({e})") from None
    return None


def io_order(path, n_in: int, n_out: int) -> tuple[list[int], list[int]]:
    """For each layout input / output, its position among the graph's inputs / outputs."""
    from memopt.lite.predict import load_flatbuffer

    _, model, sg, _ = load_flatbuffer(path)
    graph_in = [int(x) for x in sg.InputsAsNumpy()]
    graph_out = [int(x) for x in sg.OutputsAsNumpy()]
    ident = (list(range(n_in)), list(range(n_out)))
    if not model.SignatureDefsLength():
        return ident
    sd = model.SignatureDefs(0)
    names_in = {sd.Inputs(i).Name().decode(): sd.Inputs(i).TensorIndex() for i in range(sd.InputsLength())}
    names_out = {sd.Outputs(i).Name().decode(): sd.Outputs(i).TensorIndex() for i in range(sd.OutputsLength())}
    try:
        return ([graph_in.index(names_in[f"in{i}"]) for i in range(n_in)],
                [graph_out.index(names_out[f"out{i}"]) for i in range(n_out)])
    except (KeyError, ValueError):
        return ident


def check_file(path: Path) -> None:
    """A cheap check before starting a process: the file is a readable .tflite."""
    from memopt.lite.predict import load_flatbuffer

    load_flatbuffer(path)
