"""Running a .tflite, with the runtime's own memory settings: numpy and LiteRT only, never TensorFlow.

XNNPACK runs through LiteRT 2.x's ``CompiledModel`` (the maintained API, and the only Python API
that sets XNNPACK's flags and weight cache); with XNNPACK off the ``Interpreter``'s built-in
kernels run it, as ``benchmark_model --use_xnnpack=false`` does (``CpuKernelMode.BUILTIN`` of the
CompiledModel is another kernel set: 603 vs 213 MB for the float U-Net at 1024 px).

The settings (``RuntimeConfig``), verified against the LiteRT and XNNPACK sources
(tflite/delegates/xnnpack/xnnpack_delegate.h, tflite/tools/delegates/xnnpack_delegate_provider.cc,
XNNPACK include/xnnpack.h and src/runtime.c) and measured here:

- transient indirection buffer (``tib``): XNNPACK's convolutions keep an indirection buffer of
  kh*kw pointers per output pixel for the runtime's lifetime; XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER
  (0x20) moves the buffers of convolutions, depthwise convolutions and bilinear resizes into the
  one workspace every operator shares, rebuilt at each run. The delegate flag has the same value.
  ``CpuOptions.xnnpack_flags`` *replaces* the delegate's default flags (QS8|QU8 = 0x3, without
  which int8 operators fall back to the built-in kernels), so the flags set are 0x23.
  benchmark_model has no delegate-flags option; its ``--xnnpack_runtime_flags=32`` ORs the same
  XNNPACK bit into the runtime the delegate creates.
- weight cache (``wcache``): packed weights are written once to a file and memory-mapped on later
  loads (``CpuOptions.xnnpack_weight_cache_path``: a file path, whatever its docstring says, as
  the C API's ``LiteRtSetCpuOptionsXnnPackWeightCachePath``; benchmark_model
  ``--xnnpack_weight_cache_file_path``). Clean file-backed pages: shared, and reclaimable under
  pressure. XNNPACK checks its own build, not the model, so memopt names the cache after the
  model's contents and the CPU architecture (``default_cache_file``), under the user's cache folder.
- ``noxnn``: XNNPACK off, the built-in kernels (for comparison; no setting of its own).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memopt.errors import MemoptError

XNN_FLAG_QS8 = 0x1
XNN_FLAG_QU8 = 0x2
XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER = 0x20
DEFAULT_XNNPACK_FLAGS = XNN_FLAG_QS8 | XNN_FLAG_QU8  # TfLiteXNNPackDelegateOptionsDefault()
_OPTIONS = ("tib", "wcache")


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime runs a model: XNNPACK on or off, and its memory settings."""

    xnnpack: bool = True
    transient_indirection: bool = False   # tib
    weight_cache: bool = False            # wcache

    def __post_init__(self):
        if not self.xnnpack and (self.transient_indirection or self.weight_cache):
            raise ValueError("tib and wcache are XNNPACK settings; they do not combine with noxnn")

    @property
    def name(self) -> str:
        """The variant part ('' for the default: XNNPACK with its default flags)."""
        if not self.xnnpack:
            return "noxnn"
        return "-".join(o for o, on in zip(_OPTIONS, (self.transient_indirection, self.weight_cache)) if on)

    @classmethod
    def parse(cls, part: str) -> "RuntimeConfig | None":
        """``tib``, ``wcache``, ``tib-wcache`` or ``noxnn``; None when ``part`` is not a runtime part."""
        opts = part.split("-")
        if opts[0] not in (*_OPTIONS, "noxnn"):
            return None
        if part == "noxnn":
            return cls(xnnpack=False)
        if "noxnn" in opts:
            raise ValueError("noxnn (XNNPACK off) combines with no other runtime setting")
        unknown = [o for o in opts if o not in _OPTIONS]
        if unknown:
            raise ValueError(f"unknown runtime option {unknown[0]!r}; known: tib, wcache (joined by '-'), or noxnn alone")
        if len(set(opts)) != len(opts):
            raise ValueError(f"runtime option repeated in {part!r}")
        return cls(transient_indirection="tib" in opts, weight_cache="wcache" in opts)

    @classmethod
    def from_name(cls, name: str | None) -> "RuntimeConfig":
        """The config of a CLI ``--runtime`` value ('' or None: the default)."""
        name = (name or "").strip().lower()
        if name in ("", "default"):
            return cls()
        try:
            cfg = cls.parse(name)
        except ValueError as e:
            raise MemoptError(f"--runtime {name}: {e}") from None
        if cfg is None:
            raise MemoptError(f"--runtime {name}: unknown setting; known: tib, wcache, tib-wcache, noxnn")
        return cfg

    @property
    def xnnpack_flags(self) -> int | None:
        """CpuOptions.xnnpack_flags (None: the runtime's default)."""
        if not self.transient_indirection:
            return None
        return DEFAULT_XNNPACK_FLAGS | XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER

    def benchmark_model_args(self, cache_file: str | None = None) -> list[str]:
        """The equivalent benchmark_model options."""
        if not self.xnnpack:
            return ["--use_xnnpack=false"]
        args = ["--use_xnnpack=true"]
        if self.transient_indirection:
            args.append(f"--xnnpack_runtime_flags={XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER}")
        if self.weight_cache:
            if not cache_file:
                raise ValueError("a weight cache needs a cache file path")
            args.append(f"--xnnpack_weight_cache_file_path={cache_file}")
        return args

    def app_settings(self) -> str:
        """What the phone app must set to get what was measured (for the model card)."""
        if not self.xnnpack:
            return ("XNNPACK off: Java/Kotlin `InterpreterApi.Options().setUseXNNPACK(false)`; C++ "
                    "`InterpreterBuilder` with `BuiltinOpResolverWithoutDefaultDelegates`.")
        if not (self.transient_indirection or self.weight_cache):
            return ("XNNPACK with its default flags: the default of every LiteRT API (CompiledModel, "
                    "Java/Kotlin Interpreter).")
        parts, cpp, kotlin, classic = [], [], [], []
        if self.transient_indirection:
            parts.append(f"XNNPACK flags 0x{self.xnnpack_flags:x} (QS8 | QU8 | TRANSIENT_INDIRECTION_BUFFER; "
                         "setting the flags replaces the default 0x3, so keep QS8 and QU8)")
            cpp.append(f"`SetXNNPackFlags(0x{self.xnnpack_flags:x})`")
            kotlin.append(f"`xnnPackFlags = 0x{self.xnnpack_flags:x}`")
            classic.append("`flags |= TFLITE_XNNPACK_DELEGATE_FLAG_TRANSIENT_INDIRECTION_BUFFER`")
        if self.weight_cache:
            parts.append("an XNNPACK weight cache file in the app's private storage (one per model and "
                         "CPU architecture)")
            cpp.append("`SetXNNPackWeightCachePath(path)`")
            kotlin.append("`xnnPackWeightCachePath = path`")
            classic.append("`weight_cache_file_path = path`")
        return ("Set " + " and ".join(parts) + ". LiteRT 2.x CompiledModel: C++ `litert::CpuOptions` "
                + " and ".join(cpp) + ", Kotlin `CompiledModel.CpuOptions(...)` with " + " and ".join(kotlin)
                + "; the classic C++ Interpreter: `TfLiteXNNPackDelegateOptions` (from "
                "`TfLiteXNNPackDelegateOptionsDefault()`) with " + " and ".join(classic)
                + ", then `TfLiteXNNPackDelegateCreate`. The Java/Kotlin `Interpreter` (InterpreterApi.Options) "
                "cannot set this: it only turns XNNPACK on or off.")


DEFAULT = RuntimeConfig()


def default_cache_file(model) -> Path:
    """Where a model's XNNPACK weight cache lives: ``$XDG_CACHE_HOME/memopt/xnnpack`` (default
    ``~/.cache``), named after the model's bytes and this CPU, so a rebuilt model never maps a stale
    cache and nothing is written beside a model that ships."""
    import hashlib
    import os
    import platform

    digest = hashlib.sha1(Path(model).read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memopt" / "xnnpack"
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{Path(model).stem}-{digest}-{platform.machine()}.xnnpack_cache"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: type
    scale: float = 0.0
    zero_point: int = 0


def graph_io(path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The graph's inputs and outputs in the model's order, with their quantization, read from the
    flatbuffer (the CompiledModel API reports neither the order nor the scales)."""
    return _graph(path)[:2]


def _graph(path) -> tuple[list[TensorInfo], list[TensorInfo], tuple | None]:
    """(inputs, outputs, the first signature's tensor index by input name and by output name, or None),
    from one read of the flatbuffer."""
    from memopt.lite.predict import load_flatbuffer

    schema, model, sg, _ = load_flatbuffer(path)
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def info(i: int) -> TensorInfo:
        t = sg.Tensors(i)
        q = t.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
        zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
        dtype = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8, "int16": np.int16,
                 "int32": np.int32, "float16": np.float16}.get(types.get(t.Type(), ""), np.float32)
        return TensorInfo(t.Name().decode(errors="replace"), i, tuple(int(d) for d in t.ShapeAsNumpy()),
                          dtype, scale, zero)

    sig = None
    if model.SignatureDefsLength():
        sd = model.SignatureDefs(0)
        sig = ({sd.Inputs(i).Name().decode(): sd.Inputs(i).TensorIndex() for i in range(sd.InputsLength())},
               {sd.Outputs(i).Name().decode(): sd.Outputs(i).TensorIndex() for i in range(sd.OutputsLength())})
    return [info(int(x)) for x in sg.InputsAsNumpy()], [info(int(x)) for x in sg.OutputsAsNumpy()], sig


class LoadedModel:
    """One .tflite ready to run: ``run([inputs]) -> [outputs]`` in the graph's order, raw dtypes."""

    def __init__(self, path, threads: int | None = None, runtime: RuntimeConfig = DEFAULT,
                 weight_cache_file: str | None = None):
        self.path, self.runtime = Path(path), runtime
        self.inputs, self.outputs, signed = _graph(self.path)
        threads = threads or 2
        if runtime.weight_cache and not weight_cache_file:
            weight_cache_file = str(default_cache_file(self.path))
        self.weight_cache_file = weight_cache_file if runtime.weight_cache else None
        self._checked_cache = not runtime.weight_cache
        # LiteRT's TensorBuffer has no int16 (int16x8 models' I/O): those run through the
        # Interpreter, which has XNNPACK's default flags only (they run on the reference kernels anyway).
        int16 = any(t.dtype == np.int16 for t in self.inputs + self.outputs)
        if int16 and runtime.name not in ("", "noxnn"):
            raise MemoptError(f"{path}: int16 I/O (int16x8) runs through LiteRT's Interpreter, which cannot set "
                              f"the {runtime.name} setting; use it without a runtime part")
        try:
            if runtime.xnnpack and not int16 and (signed or runtime.name):
                self._open_compiled(threads, signed)
            else:  # int16 I/O, XNNPACK off, or no signature (CompiledModel needs one) with no setting
                self._open_interpreter(threads, runtime.xnnpack)
        except ImportError:
            raise MemoptError("no .tflite runtime: pip install ai-edge-litert") from None
        except (ValueError, RuntimeError, KeyError) as e:
            raise MemoptError(f"{path}: not a loadable .tflite model ({str(e).splitlines()[0][:200]}); "
                              "`memopt -v ...` shows the runtime's own log") from None

    def _open_compiled(self, threads: int, signature) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.options import Options

        cpu = CpuOptions(num_threads=threads, xnnpack_flags=self.runtime.xnnpack_flags,
                         xnnpack_weight_cache_path=self.weight_cache_file or "")
        self._cm = CompiledModel.from_file(str(self.path), options=Options(cpu_options=cpu))
        if self._cm.get_num_signatures() < 1:
            raise ValueError(f"the model has no signature; LiteRT's CompiledModel needs one for the "
                             f"{self.runtime.name} setting")
        # Buffers come in the signature's order; map them to the graph's order by tensor index, read from
        # the flatbuffer: CompiledModel's get_output_tensor_details allocates the whole arena at once
        # (measured: +200 MB for a 1024 px U-Net), which benchmark_model's process would not hold while
        # the inputs are being written.
        sig = self._cm.get_signature_by_index(0)
        try:
            pos_in = {int(signature[0][n]): k for k, n in enumerate(sig["inputs"])}
            pos_out = {int(signature[1][n]): k for k, n in enumerate(sig["outputs"])}
        except (KeyError, TypeError):
            raise ValueError("its first signature's tensors are not in the flatbuffer's signature") from None
        if set(pos_in) != {t.index for t in self.inputs} or set(pos_out) != {t.index for t in self.outputs}:
            raise ValueError("its first signature's tensors are not the graph's inputs and outputs")
        self._in_order = [pos_in[t.index] for t in self.inputs]
        self._out_order = [pos_out[t.index] for t in self.outputs]
        self._in_bufs = self._cm.create_input_buffers(0)
        self._out_bufs = self._cm.create_output_buffers(0)
        self._interp = None

    def _open_interpreter(self, threads: int, xnnpack: bool) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # Without XNNPACK: the built-in kernels only, as benchmark_model --use_xnnpack=false.
        kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._interp = Interpreter(model_path=str(self.path), num_threads=threads,
                                   experimental_op_resolver_type=kind)
        self._interp.allocate_tensors()

    @property
    def api(self) -> str:
        return "Interpreter" if self._interp is not None else "CompiledModel"

    def set_inputs(self, arrays) -> None:
        if len(arrays) != len(self.inputs):
            raise MemoptError(f"{self.path}: takes {len(self.inputs)} inputs, got {len(arrays)}")
        for i, x in enumerate(arrays):
            self.set_input(i, x)

    def set_input(self, i: int, x) -> None:
        """The graph's i-th input (copied into the runtime's buffer: ``x`` may be dropped after)."""
        t = self.inputs[i]
        x = np.ascontiguousarray(x, dtype=t.dtype)
        if self._interp is not None:
            self._interp.set_tensor(t.index, x.reshape(t.shape))
        else:
            self._in_bufs[self._in_order[i]].write(x)

    def invoke(self) -> None:
        if self._interp is not None:
            self._interp.invoke()
        else:
            self._cm.run_by_index(0, self._in_bufs, self._out_bufs)
        if not self._checked_cache:  # XNNPACK logs a cache it cannot write and runs on without one
            self._checked_cache = True
            f = Path(self.weight_cache_file)
            if not f.is_file() or f.stat().st_size == 0:
                raise MemoptError(f"{self.path}: XNNPACK wrote no weight cache to {f} (not writable? full?); "
                                  "`memopt -v ...` shows the runtime's log")

    def get_outputs(self) -> list[np.ndarray]:
        if self._interp is not None:
            return [self._interp.get_tensor(t.index) for t in self.outputs]
        return [self._out_bufs[k].read(int(np.prod(t.shape)), t.dtype).reshape(t.shape)
                for t, k in zip(self.outputs, self._out_order)]

    def run(self, arrays) -> list[np.ndarray]:
        self.set_inputs(arrays)
        self.invoke()
        return self.get_outputs()


def quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Float values to a tensor's type (integer I/O of a fully quantized model)."""
    if np.issubdtype(t.dtype, np.integer) and t.scale:
        info = np.iinfo(t.dtype)
        return np.clip(np.rint(x / t.scale + t.zero_point), info.min, info.max).astype(t.dtype)
    return x.astype(t.dtype, copy=False)


def dequantize(y: np.ndarray, t: TensorInfo) -> np.ndarray:
    if np.issubdtype(t.dtype, np.integer) and t.scale:
        return (y.astype(np.float32) - t.zero_point) * np.float32(t.scale)
    return y.astype(np.float32, copy=False)

