"""Process setup shared by the launchers: huge pages, CPU device count, jax.distributed, logging.

Imported before JAX by every launcher, because XLA reads its flags once, at import (and glibc its
tunables once, at process start).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from absl import flags

_HOST_DEVICES_FLAG = "--host_devices"


def _requested_host_devices(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith(_HOST_DEVICES_FLAG + "="):
            return arg.split("=", 1)[1]
        if arg == _HOST_DEVICES_FLAG and i + 1 < len(argv):
            return argv[i + 1]
    return os.environ.get("BINJAX_HOST_DEVICES", "auto")


def configure_host_devices(argv: list[str] | None = None) -> None:
    """Splits the CPU into several XLA host devices (one per core by default).

    XLA's CPU backward convolutions use one core each, so a batch sharded over one host device per
    core keeps every core busy. Affects only the CPU platform; GPUs and TPUs are untouched.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return  # the user (or a test) chose already
    if "jax" in sys.modules:
        return  # too late to change; keep whatever JAX already has
    value = _requested_host_devices(sys.argv if argv is None else argv)
    count = (os.cpu_count() or 1) if value == "auto" else int(value)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()


_HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def _launched_as_a_launcher() -> bool:
    """True when __main__ is one of binjax's launchers (python -m launch.x, launch/x.py, binjax-x)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name.startswith("launch.")
    script = Path(getattr(main, "__file__", "") or "")
    return script.name.startswith("binjax-") or script.resolve().parent == Path(__file__).resolve().parent


def huge_pages_requested() -> bool:
    """Whether this process's malloc was started with glibc.malloc.hugetlb (see below)."""
    return _HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "")


def huge_pages_supported() -> bool:
    """Linux with glibc >= 2.35 (the hugetlb tunable) and transparent huge pages not 'never'."""
    libc, version = platform.libc_ver()
    if sys.platform != "linux" or libc != "glibc" or tuple(int(v) for v in version.split(".")[:2]) < (2, 35):
        return False
    try:
        return "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def use_transparent_huge_pages() -> None:
    """Re-executes the launcher with glibc's malloc asking for transparent huge pages (Linux).

    XLA:CPU allocates each execution's temporary buffers afresh (~0.45 GiB per device for the
    U-Net train step at batch 8 x 256^2), and with 4 KiB pages the kernel zero-fills them through
    ~228,000 page faults per step: a third of a CPU-second. With glibc.malloc.hugetlb=1 (glibc >=
    2.35, THP in 'madvise' or 'always' mode) they take ~1,400: that step went from 0.85 to 0.74 s
    on 2 cores (PyTorch gains alike: README, Speed). glibc reads its tunables only when a process
    starts, hence the re-exec, before anything heavy is imported. BINJAX_HUGE_PAGES=0 opts out.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if os.environ.get("BINJAX_HUGE_PAGES", "1") == "0" or "glibc.malloc.hugetlb" in tunables:
        return  # opted out, or already set (or deliberately set otherwise)
    if "jax" in sys.modules or not _launched_as_a_launcher() or not huge_pages_supported():
        return  # too late, not a launcher (tests, notebooks), or nothing to gain here
    os.environ["GLIBC_TUNABLES"] = f"{tunables}:{_HUGE_PAGES_TUNABLE}" if tunables else _HUGE_PAGES_TUNABLE
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


use_transparent_huge_pages()
configure_host_devices()

flags.DEFINE_string(
    "host_devices",
    "auto",
    "CPU only: split the CPU into this many XLA devices ('auto' = one per core). Read before JAX starts.",
)
flags.DEFINE_bool("distributed", False, "Initialise jax.distributed (multi-host). Reads SLURM/TPU/cluster env when the flags below are unset.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for --distributed.")
flags.DEFINE_integer("num_processes", None, "Number of processes, for --distributed.")
flags.DEFINE_integer("process_id", None, "This process's index, for --distributed.")


def initialize_runtime() -> None:
    """Starts jax.distributed when asked and quiets non-chief processes' logs (libraries' INFO
    logs are quieted for every launcher by launch.cli.run_app)."""
    import jax
    from absl import logging

    from launch import cli

    cli.install_quiet_logging()  # also here for callers that do not go through run_app

    f = flags.FLAGS
    if f.distributed:
        # Nothing else to set up: on CPU, jax's default cross-process collectives are gloo's
        # (jax_cpu_collectives_implementation); GPUs and TPUs bring their own. The coordinator
        # (process 0) listens on every interface unless JAX_COORDINATOR_BIND_ADDRESS says where.
        jax.distributed.initialize(
            coordinator_address=f.coordinator_address,
            num_processes=f.num_processes,
            process_id=f.process_id,
        )
        from binjax import host_failures

        host_failures.watch_peers()   # a failed peer stops this process too, with its one line
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)
    # One line worth reading on a cluster; on one machine it shows at --verbosity=1.
    logging.log(
        logging.INFO if jax.process_count() > 1 else logging.DEBUG,
        "JAX %s: process %d of %d, %d local / %d global devices (%s); malloc huge pages: %s",
        jax.__version__, jax.process_index(), jax.process_count(),
        jax.local_device_count(), jax.device_count(), jax.devices()[0].platform,
        "on" if huge_pages_requested() else "off",
    )


from launch.cli import run_app  # noqa: E402,F401  (launchers call common.run_app)
