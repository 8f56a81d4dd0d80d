"""Hand-written XLA:CPU kernels, registered as XLA FFI custom calls (source: conv3x3.cc).

XLA:CPU lacks a fast kernel gradient for 3x3 convolutions: it runs them at ~35 GFLOP/s per core,
after transposing both operands, and they were the largest part of a U-Net train step on CPU.
conv3x3.cc computes that gradient at 150-210 GFLOP/s per core (AVX-512); forward convs between
multiples of 16 channels by Winograd F(4x4, 3x3), 1.1-2.4x faster than XLA's direct ones; and
convs from an image's 1 or 3 channels to 16 (where XLA manages 5-90 GFLOP/s) at 100-170.

The source is compiled on first use with the machine's C++ compiler ($CXX, else c++) against
JAX's FFI headers, for the machine's own instruction set, into a cache keyed by source, jaxlib
version, compiler and CPU (so a shared home directory on a mixed cluster is safe):
$BINJAX_CACHE_DIR, else ~/.cache/binjax. Without a compiler, on a CPU other than x86 with AVX2
or AVX-512, or with BINJAX_CPU_KERNELS=0, `available()` is False and callers keep XLA's own
path: same results, slower. Off, too, when JAX's default backend is not the CPU, and inside
`disabled()`: what traces a function for another process (binjax.portable), where these custom
calls are not registered.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from binjax import sharding

CONV3X3_WGRAD = "binjax_conv3x3_wgrad"
CONV3X3_TO16 = "binjax_conv3x3_to16"
CONV3X3_WINOGRAD = "binjax_conv3x3_winograd"
CONV3X3_WINOGRAD_WGRAD = "binjax_conv3x3_winograd_wgrad"
CONV3X3_WINOGRAD_AFFINE_RELU = "binjax_conv3x3_winograd_affine_relu"
_SOURCE = Path(__file__).with_name("conv3x3.cc")
_SYMBOLS = {CONV3X3_WGRAD: "BinjaxConv3x3Wgrad", CONV3X3_TO16: "BinjaxConv3x3To16",
            CONV3X3_WINOGRAD: "BinjaxConv3x3Winograd", CONV3X3_WINOGRAD_WGRAD: "BinjaxConv3x3WinogradWgrad",
            CONV3X3_WINOGRAD_AFFINE_RELU: "BinjaxConv3x3WinogradAffineRelu"}
DISABLE_ENV = "BINJAX_CPU_KERNELS"

log = logging.getLogger(__name__)

# Set by disabled(); a context variable, so one thread tracing for export leaves others' fast.
_DISABLED = contextvars.ContextVar("binjax_cpu_kernels_disabled", default=False)


@contextlib.contextmanager
def disabled():
    """Within this block `available()` is False: functions traced here hold only XLA's own
    operations (no custom call to these kernels), e.g. for a jax.export artifact that another
    process, which never loaded binjax, deserializes. Jitted functions traced before keep their
    kernels: trace a fresh function inside the block."""
    token = _DISABLED.set(True)
    try:
        yield
    finally:
        _DISABLED.reset(token)


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_fingerprint() -> str:
    """What -march=native compiles for: the CPU model and its feature flags."""
    lines = [l for l in _cpuinfo().splitlines() if l.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(lines))) or platform.processor() or platform.machine()


def cpu_is_supported() -> bool:
    """An x86 CPU with AVX-512, or AVX2 and FMA: what the kernels' register blocking is written
    for (conv3x3.cc). Other CPUs keep XLA's convolutions, the kernels being unmeasured there."""
    match = re.search(r"^flags\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return "avx512f" in flags or {"avx2", "fma"} <= flags


def _cache_dir() -> Path:
    root = os.environ.get("BINJAX_CACHE_DIR") or Path.home() / ".cache" / "binjax"
    return Path(root) / "cpu_kernels"


def _compile(compiler: str, library: Path) -> None:
    base = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-w", "-I", jax.ffi.include_dir(), str(_SOURCE)]
    library.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename: processes compiling at once never load a half file.
    with tempfile.NamedTemporaryFile(dir=library.parent, suffix=".so", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        errors = ""
        for flags in (["-march=native"], []):  # -march=native is unknown to some compilers
            result = subprocess.run([*base, *flags, "-o", str(tmp_path)], capture_output=True, text=True)
            if result.returncode == 0:
                os.replace(tmp_path, library)
                return
            errors = result.stderr
        raise RuntimeError(f"{compiler} failed on {_SOURCE}:\n{errors[-2000:]}")
    finally:
        tmp_path.unlink(missing_ok=True)


def allowed_on(backend: str) -> bool:
    """Whether the kernels may be used when JAX's default backend is `backend` ('cpu', 'gpu',
    'tpu', ...): the CPU only, and not with BINJAX_CPU_KERNELS=0. On a GPU or TPU host the model
    then traces XLA's own convolutions, whatever the host's CPU or compiler."""
    return backend == "cpu" and os.environ.get(DISABLE_ENV, "1") != "0"


def available() -> bool:
    """Compiles (once per machine) and registers the kernels; False if they cannot be used here,
    or inside `disabled()`."""
    return not _DISABLED.get() and _available_here()


@functools.cache
def _available_here() -> bool:
    if not allowed_on(jax.default_backend()):
        return False
    if not cpu_is_supported():
        log.info("binjax CPU kernels: written for x86 AVX2 or AVX-512, not this CPU; using XLA's convolutions")
        return False
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        log.warning("binjax CPU kernels: no C++ compiler ($CXX or c++) found; using XLA's slower "
                    "convolutions")
        return False
    try:
        key = hashlib.sha256(b"\0".join([
            _SOURCE.read_bytes(), jaxlib.__version__.encode(), compiler.encode(), _cpu_fingerprint().encode(),
        ])).hexdigest()[:16]
        library = _cache_dir() / f"conv3x3-{key}.so"
        if not library.exists():
            log.info("binjax CPU kernels: compiling %s -> %s", _SOURCE.name, library)
            _compile(compiler, library)
        loaded = ctypes.cdll.LoadLibrary(str(library))
        handlers = {target: getattr(loaded, symbol) for target, symbol in _SYMBOLS.items()}
    except (OSError, RuntimeError, AttributeError) as e:
        log.warning("binjax CPU kernels unavailable, using XLA's slower convolutions: %s", e)
        return False
    for target, handler in handlers.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(handler), platform="cpu")
    return True


def _wgrad_call(target: str, x: jax.Array, g: jax.Array) -> jax.Array:
    result = jax.ShapeDtypeStruct((3, 3, x.shape[-1], g.shape[-1]), jnp.float32)
    return jax.ffi.ffi_call(target, result)(x, g)


def _batch_axes(mesh, batch_size: int) -> tuple[str, ...]:
    """The mesh axes to split the images over: binjax's batch axes, when they split them evenly.

    The operands' own shardings are not read (decode_shardings=False below): XLA may hand over
    uneven ones (a micro-batch smaller than the mesh) that have no PartitionSpec. Whatever they
    are, XLA reshards the operands to what the partition asks for.
    """
    axes = sharding.batch_axes(mesh)
    if not axes or batch_size % math.prod(mesh.shape[a] for a in axes):
        return ()  # every device computes the whole gradient: correct, not split
    return axes


def _batch_split_wgrad(target: str):
    """The kernel gradient `target` under a mesh. XLA would gather a custom call's operands onto
    every device; instead each device sums the gradients of its own images, then an all-reduce
    over the batch axes adds the devices' sums (what XLA does for its own convolution)."""

    @custom_partitioning
    def split(x: jax.Array, g: jax.Array) -> jax.Array:
        return _wgrad_call(target, x, g)

    def partition(mesh, arg_shapes, result_shape):
        axes = _batch_axes(mesh, arg_shapes[0].shape[0])

        def lower(x, g):
            local = _wgrad_call(target, x, g)
            return jax.lax.psum(local, axes) if axes else local

        batch = NamedSharding(mesh, P(axes or None))
        return mesh, lower, NamedSharding(mesh, P()), (batch, batch)

    split.def_partition(
        partition, infer_sharding_from_operands=lambda mesh, *_: NamedSharding(mesh, P()),
        decode_shardings=False, sharding_rule="n h w c, n h w o -> i j c o",
        need_replication_factors=("h", "w", "c", "o"))
    return split


_wgrad_batch_split = _batch_split_wgrad(CONV3X3_WGRAD)
_winograd_wgrad_batch_split = _batch_split_wgrad(CONV3X3_WINOGRAD_WGRAD)


def _forward_call(target: str, x: jax.Array, kernel: jax.Array, *per_channel: jax.Array) -> jax.Array:
    result = jax.ShapeDtypeStruct((*x.shape[:3], kernel.shape[-1]), jnp.float32)
    return jax.ffi.ffi_call(target, result)(x, kernel, *per_channel)


def _batch_split_forward(target: str, per_channel: int = 0):
    """The forward conv `target` (x, kernel and `per_channel` [O] operands) under a mesh: each
    device convolves its own images with the (whole) kernel, no communication."""

    @custom_partitioning
    def split(x: jax.Array, kernel: jax.Array, *vectors: jax.Array) -> jax.Array:
        return _forward_call(target, x, kernel, *vectors)

    def partition(mesh, arg_shapes, result_shape):
        batch = NamedSharding(mesh, P(_batch_axes(mesh, arg_shapes[0].shape[0]) or None))
        whole = NamedSharding(mesh, P())
        return mesh, functools.partial(_forward_call, target), batch, (batch, whole, *[whole] * per_channel)

    split.def_partition(
        partition, infer_sharding_from_operands=lambda *args: partition(*args)[2], decode_shardings=False,
        sharding_rule="n h w c, i j c o" + ", o" * per_channel + " -> n h w o",
        need_replication_factors=("h", "w", "c", "i", "j", "o"))
    return split


_to16_batch_split = _batch_split_forward(CONV3X3_TO16)
_winograd_batch_split = _batch_split_forward(CONV3X3_WINOGRAD)
_winograd_affine_relu_batch_split = _batch_split_forward(CONV3X3_WINOGRAD_AFFINE_RELU, per_channel=2)


def _check_available() -> None:
    if not available():
        raise RuntimeError("binjax.cpu_kernels is unavailable here (not a CPU backend, an unsupported "
                           f"CPU, no compiler, a failed build or {DISABLE_ENV}=0; see the log): use "
                           "XLA's convolution instead")


def _check_winograd_channels(name: str, channels_in: int, channels_out: int) -> None:
    if channels_in % 16 or channels_out % 16:
        raise ValueError(f"{name} needs multiples of 16 channels, got {channels_in} -> {channels_out}")


def conv3x3_to16(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 3x3 'SAME' stride-1 conv of x [N,H,W,C] to 16 channels (kernel [3,3,C,16]), float32.

    Needs available() and runs on the CPU only; float32 inside, whatever the operands' dtype.
    """
    _check_available()
    return _to16_batch_split(x.astype(jnp.float32), kernel.astype(jnp.float32))


def conv3x3_winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 3x3 'SAME' stride-1 conv of x [N,H,W,C] with kernel [3,3,C,O] by Winograd F(4x4, 3x3).

    C and O multiples of 16. The same convolution with 4x fewer multiplications (see
    conv3x3.cc), to float32 error up to ~1e-5 of the largest output (XLA's direct sum: <1e-6).
    Needs available() and runs on the CPU only; float32 inside, whatever the operands' dtype.
    """
    _check_available()
    _check_winograd_channels("conv3x3_winograd", x.shape[-1], kernel.shape[-1])
    return _winograd_batch_split(x.astype(jnp.float32), kernel.astype(jnp.float32))


def conv3x3_weight_grad(x: jax.Array, g: jax.Array) -> jax.Array:
    """The [3,3,C,O] kernel gradient of a 3x3 'SAME' stride-1 conv (see conv3x3.cc).

    x [N,H,W,C] is the conv's input and g [N,H,W,O] its output gradient; O % 16 == 0. Needs
    available(), and runs on the CPU only; float32 inside, whatever the operands' dtype.
    """
    _check_available()
    return _wgrad_batch_split(x.astype(jnp.float32), g.astype(jnp.float32))


def conv3x3_winograd_affine_relu(x: jax.Array, kernel: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """max(conv3x3_winograd(x, kernel) * scale + shift, 0), scale and shift [O]: an eval-mode
    BatchNorm and ReLU folded into the conv's store, one pass over the output fewer."""
    _check_available()
    _check_winograd_channels("conv3x3_winograd_affine_relu", x.shape[-1], kernel.shape[-1])
    f32 = [a.astype(jnp.float32) for a in (x, kernel, scale, shift)]
    return _winograd_affine_relu_batch_split(*f32)


def conv3x3_winograd_weight_grad(x: jax.Array, g: jax.Array) -> jax.Array:
    """conv3x3_weight_grad by Winograd F(4x4, 3x3) (see conv3x3.cc), for C and O multiples of 16;
    float32 error ~4e-6 of the largest gradient entry (the direct kernel: <1e-6)."""
    _check_available()
    _check_winograd_channels("conv3x3_winograd_weight_grad", x.shape[-1], g.shape[-1])
    return _winograd_wgrad_batch_split(x.astype(jnp.float32), g.astype(jnp.float32))


_WGRAD_CALL = re.compile(
    r"= f32\[3,3,(\d+),(\d+)\]\S* custom-call\([^)]*\), custom_call_target=\"(?:" + CONV3X3_WGRAD + "|"
    + CONV3X3_WINOGRAD_WGRAD + r")\", operand_layout_constraints=\{f32\[(\d+),(\d+),(\d+),\d+\]")
_FORWARD_CALL = re.compile(
    r"= f32\[(\d+),(\d+),(\d+),(\d+)\]\S* custom-call\([^)]*\), custom_call_target=\"(?:"
    + "|".join([CONV3X3_TO16, CONV3X3_WINOGRAD, CONV3X3_WINOGRAD_AFFINE_RELU]) + r")\", operand_layout_constraints=\{f32\[\d+,\d+,\d+,(\d+)\]")


def flops_in(hlo_text: str) -> float:
    """FLOPs of this module's custom calls in a compiled HLO module's text (per partition).

    XLA's cost analysis counts a custom call as 0 FLOPs; benchmarks add this back. A Winograd
    conv counts as the direct conv it computes (the model's FLOPs, as MFU counts them), not the
    4x fewer multiplications it does.
    """
    total = 0
    for c, o, n, h, w in _WGRAD_CALL.findall(hlo_text):
        total += 2 * 9 * int(n) * int(h) * int(w) * int(c) * int(o)
    for n, h, w, o, c in _FORWARD_CALL.findall(hlo_text):
        total += 2 * 9 * int(n) * int(h) * int(w) * int(c) * int(o)
    return float(total)
