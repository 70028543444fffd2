"""A .tflite's flatbuffer as editable objects (the schema's object API), and back to bytes: what memopt's
metadata (memopt.lite.embed) and graph surgery (memopt.lite.splice, memopt.lite.mixed) edit."""
from __future__ import annotations

import numpy as np


def unpack(flatbuffer: bytes):
    """The object-API Model of a flatbuffer, data stored after the flatbuffer (offset / size) inlined."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    for b in m.buffers or []:
        if (b.offset or 0) > 1 and b.size:
            b.data = np.frombuffer(flatbuffer, np.uint8, int(b.size), int(b.offset))
            b.offset = b.size = 0
    return m


def pack(m, size_hint: int = 1 << 20) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(size_hint)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def tensor_name(sg, i: int) -> str:
    n = sg.tensors[i].name
    return n.decode() if isinstance(n, bytes) else n
