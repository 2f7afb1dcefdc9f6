"""The full path's step loop over one long row in CUDA C (``rounds.cu``), compiled at run time with NVRTC.

Same algorithm, key order and float32 operations as the Triton kernel ``_greedy_rounds_kernel`` (so the same
picks), written where Triton cannot reach: the round's picks among the offered tokens run in one warp with
``redux.sync`` and ballots, and the block's best keys are found by warp reductions, not block-wide ones. On the H200
its step loop is 1.25-1.74x faster than the Triton kernel's (BENCHMARKS.md, "The step loop in CUDA C").

No build step and no CUDA toolkit are needed: the source is compiled on first use, per launch shape and device, by
the NVRTC library that PyTorch's CUDA wheels ship, and launched through the driver API on PyTorch's current stream
(so it is captured in CUDA graphs like any other kernel). Where NVRTC or the driver is missing, the GPU is older
than sm_80, or the compilation fails, :func:`unavailable_reason` says why and the caller runs the Triton kernel.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import threading
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Any, Optional

import torch

from .devices import device_index, device_properties

#: ``redux.sync`` (the warp's 32-bit max in one instruction) needs compute capability 8.0.
MIN_CAPABILITY = (8, 0)
KERNEL_NAME = "divprune_rounds"
#: An exchange slot not yet written (the smallest int64; no packed key equals it).
SENTINEL = -(2**63)

_SOURCE: Optional[str] = None
_lock = threading.Lock()
_kernels: dict[tuple[Any, ...], "_Kernel"] = {}
_failed: dict[int, str] = {}  # device index -> why compiling or loading failed there


class CudaKernelError(RuntimeError):
    """NVRTC could not compile ``rounds.cu``, or the driver could not load it (the message has the log)."""


@dataclass(frozen=True)
class RoundsLaunch:
    """A launch shape of ``rounds.cu``: ``programs`` blocks of ``threads`` threads, each thread holding
    ``per_thread`` tokens' running minima; each block offers ``top`` tokens per round; the round's candidates
    (at most ``programs * top``) have a ``candidates`` x ``candidates`` float32 tile of distances in shared memory;
    the fold loads ``rows`` picked rows at a time."""

    threads: int
    per_thread: int
    top: int
    candidates: int
    rows: int
    programs: int

    @property
    def block(self) -> int:
        """Tokens per block."""
        return self.threads * self.per_thread

    @property
    def shared_bytes(self) -> int:
        """Dynamic shared memory per block (the candidates' distance tile)."""
        return 4 * self.candidates * self.candidates


def rounds_launch(num_tokens: int, count: int, sm_count: int, max_shared_bytes: int) -> Optional[RoundsLaunch]:
    """The launch shape for a row of ``num_tokens`` tokens and ``count`` picks, or None where the blocks would not
    all be resident at once (more blocks than ``sm_count`` SMs) or the tile would not fit ``max_shared_bytes``.

    Measured on the H200 (notes/selection-perf.md): about 9 blocks of 256 threads up to N = 8,192 and 18 blocks of
    512 threads above; 3 offered tokens per block when few are kept, 6 when most are (more picks per round)."""
    if num_tokens < 1 or count < 1:
        return None
    threads, target = (256, 9) if num_tokens <= 8192 else (512, 18)
    per_thread = min(max(math.ceil(num_tokens / (threads * target)), 1), 16)
    programs = math.ceil(num_tokens / (threads * per_thread))
    if programs > sm_count:
        return None
    top = 6 if 2 * count >= num_tokens or num_tokens > 8192 else 3
    candidates = 32 * math.ceil(programs * top / 32)
    while top > 1 and 4 * candidates * candidates > max_shared_bytes:
        top -= 1
        candidates = 32 * math.ceil(programs * top / 32)
    if 4 * candidates * candidates > max_shared_bytes:
        return None
    rows = min(16, max(2, 64 // per_thread))
    return RoundsLaunch(threads, per_thread, top, candidates, rows, programs)


def launch_for(device: torch.device, num_tokens: int, count: int) -> Optional[RoundsLaunch]:
    """:func:`rounds_launch` for a CUDA ``device``'s SM count and shared memory per block."""
    properties = device_properties(device)
    shared = getattr(properties, "shared_memory_per_block_optin", 48 * 1024)
    return rounds_launch(num_tokens, count, properties.multi_processor_count, shared)


@functools.lru_cache(maxsize=None)
def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(NVRTC, the CUDA driver), loaded once as PyTorch's CUDA build has them (OSError where missing; not cached
    then)."""
    if sys.platform == "win32":
        raise OSError("the CUDA C kernel is loaded through libcuda and libnvrtc, on Linux only")
    major = str(torch.version.cuda).split(".")[0]
    nvrtc: Optional[ctypes.CDLL] = None
    for name in (f"libnvrtc.so.{major}", "libnvrtc.so"):
        try:
            nvrtc = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if nvrtc is None:
        raise OSError(f"no NVRTC library (libnvrtc.so.{major}) is loadable")
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    return nvrtc, ctypes.CDLL("libcuda.so.1")


def unavailable_reason(device: torch.device) -> Optional[str]:
    """Why the CUDA C kernel cannot run on ``device`` (None when it can): not a CUDA device, a ROCm build, a GPU
    older than sm_80, or an earlier compilation or load that failed there. Whether NVRTC compiles is known only
    after the first compilation (see :func:`greedy_rounds_cuda`)."""
    if device.type != "cuda":
        return f"{device.type} is not a CUDA device"
    if torch.version.hip is not None or torch.version.cuda is None:
        return "PyTorch is not a CUDA build"
    properties = device_properties(device)
    if (properties.major, properties.minor) < MIN_CAPABILITY:
        return f"compute capability {properties.major}.{properties.minor} is below 8.0"
    return _failed.get(device_index(device))


def _source() -> str:
    global _SOURCE
    if _SOURCE is None:
        _SOURCE = resources.files(__package__).joinpath("rounds.cu").read_text(encoding="utf-8")
    return _SOURCE


def _check(result: int, what: str, lib: ctypes.CDLL, nvrtc: bool = False) -> None:
    if result == 0:
        return
    message = ctypes.c_char_p()
    if nvrtc:
        text = lib.nvrtcGetErrorString(result)
    else:
        lib.cuGetErrorString(result, ctypes.byref(message))
        text = message.value
    raise CudaKernelError(f"{what} failed ({result}: {text.decode() if text else 'unknown error'})")


def _compile(options: list[str]) -> bytes:
    """rounds.cu compiled by NVRTC with ``options``: the cubin."""
    nvrtc, _ = _libraries()
    program = ctypes.c_void_p()
    source = _source().encode()
    created = nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, b"rounds.cu", 0, None, None)
    _check(created, "nvrtcCreateProgram", nvrtc, True)
    try:
        encoded = [option.encode() for option in options]
        result = nvrtc.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        if result != 0:
            size = ctypes.c_size_t()
            nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(program, log)
            raise CudaKernelError(f"NVRTC could not compile rounds.cu ({' '.join(options)}):\n{log.value.decode()}")
        size = ctypes.c_size_t()
        _check(nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize", nvrtc, True)
        cubin = ctypes.create_string_buffer(size.value)
        _check(nvrtc.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN", nvrtc, True)
        return cubin.raw
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


class _Kernel:
    """One compiled launch shape, loaded on one device."""

    def __init__(self, launch: RoundsLaunch, from_gram: bool, device: torch.device) -> None:
        properties = device_properties(device)
        options = [
            f"--gpu-architecture=sm_{properties.major}{properties.minor}",
            f"-DTHREADS={launch.threads}",
            f"-DPER_THREAD={launch.per_thread}",
            f"-DTOP={launch.top}",
            f"-DMAXC={launch.candidates}",
            f"-DROWS={launch.rows}",
            f"-DFROM_GRAM={int(from_gram)}",
        ]
        cubin = _compile(options)
        _, self._driver = _libraries()
        self._module = ctypes.c_void_p()
        self._function = ctypes.c_void_p()
        with torch.cuda.device(device):  # the device's primary context is current for the driver calls
            _check(self._driver.cuModuleLoadData(ctypes.byref(self._module), cubin), "cuModuleLoadData", self._driver)
            _check(
                self._driver.cuModuleGetFunction(ctypes.byref(self._function), self._module, KERNEL_NAME.encode()),
                "cuModuleGetFunction",
                self._driver,
            )
            attribute_max_dynamic_shared = 8  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            _check(
                self._driver.cuFuncSetAttribute(self._function, attribute_max_dynamic_shared, launch.shared_bytes),
                "cuFuncSetAttribute",
                self._driver,
            )
        self.launch = launch

    def __call__(self, tensors: list[torch.Tensor], ints: list[int], stream: torch.cuda.Stream) -> None:
        values: list[Any] = [ctypes.c_void_p(tensor.data_ptr()) for tensor in tensors]
        values += [ctypes.c_int(value) for value in ints]
        params = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
        launch = self.launch
        _check(
            self._driver.cuLaunchKernel(
                self._function,
                launch.programs, 1, 1,
                launch.threads, 1, 1,
                launch.shared_bytes,
                ctypes.c_void_p(stream.cuda_stream),
                params,
                None,
            ),
            "cuLaunchKernel",
            self._driver,
        )  # fmt: skip


def _kernel(launch: RoundsLaunch, from_gram: bool, device: torch.device) -> _Kernel:
    index = device_index(device)
    key = (index, launch, from_gram)
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            try:
                kernel = _Kernel(launch, from_gram, torch.device("cuda", index))
            except (OSError, CudaKernelError) as error:
                _failed[index] = f"the CUDA C kernel could not be built: {error}"
                raise CudaKernelError(_failed[index]) from error
            _kernels[key] = kernel
    return kernel


def greedy_rounds_cuda(
    src: torch.Tensor,
    inv_norms: Optional[torch.Tensor],
    first_scores: torch.Tensor,
    count: int,
    launch: Optional[RoundsLaunch] = None,
) -> torch.Tensor:
    """The step loop of one long row (B = 1) in CUDA C: the same picks as
    :func:`~._triton.greedy_triton_cooperative` and :func:`~.greedy.greedy_from_distances`.

    src: (1, N, N) float32 CUDA distances, or the Gram matrix with ``inv_norms`` (1, N) (cosine); first_scores:
    (1, N) float32, -inf for tokens never to pick (at least ``count`` finite). ``launch`` defaults to
    :func:`rounds_launch`'s. Launches only (no host sync). Returns (1, count) int64 picks in selection order.

    Raises:
        CudaKernelError: NVRTC or the driver failed (the device is then marked, see :func:`unavailable_reason`).
        ValueError: an input is not float32 on the device, or no launch shape fits the row on this device.
    """
    device = src.device
    reason = unavailable_reason(device)
    if reason is not None:
        raise CudaKernelError(reason)
    named = {"src": src, "first_scores": first_scores, **({} if inv_norms is None else {"inv_norms": inv_norms})}
    for name, tensor in named.items():
        if tensor.dtype != torch.float32 or tensor.device != device:
            raise ValueError(f"{name} must be float32 on {device}; got {tensor.dtype} on {tensor.device}")
    num_tokens = first_scores.shape[-1]
    launch = launch or launch_for(device, num_tokens, count)
    if launch is None or launch.programs > device_properties(device).multi_processor_count:
        raise ValueError(f"no launch shape of the CUDA C step loop fits {num_tokens} tokens on this device")
    if launch.programs * launch.block < num_tokens or launch.candidates < launch.programs * launch.top:
        raise ValueError(f"{launch} does not cover {num_tokens} tokens")
    from_gram = inv_norms is not None
    kernel = _kernel(launch, from_gram, device)
    src = src.contiguous()
    first = first_scores.contiguous()
    picks = torch.empty(1, count, dtype=torch.int64, device=device)
    keys = torch.full((count, launch.programs * (launch.top + 1)), SENTINEL, dtype=torch.int64, device=device)
    inv = inv_norms.contiguous() if from_gram else first
    with torch.cuda.device(device):
        kernel([src, inv, first, picks, keys], [num_tokens, count, launch.programs], torch.cuda.current_stream(device))
    return picks


def warn_fallback(error: Exception) -> None:
    """Say once per failure that the Triton kernel runs instead (the reason stays in :func:`unavailable_reason`)."""
    warnings.warn(f"{error}; the Triton step loop runs instead", RuntimeWarning, stacklevel=3)
