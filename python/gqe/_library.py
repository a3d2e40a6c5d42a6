"""Finds and loads the ops library, which registers torch.ops.gqe.*.

An install holds one of two kinds (docs/python.md, Install):
  native    libgqe_torch_ops.so, compiled with -march=native for the machine that built it (`pip install .`);
  portable  libgqe_torch_ops_<isa>.so for each of avx512, avx2, scalar (a wheel built with
            GQE_TORCH_OPS_ISAS): the same kernel sources compiled once per instruction set.
Exactly one library is loaded per process: all of them register the same TORCH_LIBRARY(gqe) namespace, which
the dispatcher takes once, and the variants are the same C++ code at different vector widths.

Which variant: the best one the CPU runs, as torch itself judges it (torch.backends.cpu.get_cpu_capability(),
see CPU_CAPABILITY_ISAS), or the one GQE_TORCH_OPS_ISA names.
"""
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

LIBRARY_NAME = "libgqe_torch_ops.so"
# The instruction sets a portable build may carry, best first; each one's library is libgqe_torch_ops_<isa>.so
# (the flags: python/cmake/gqe_torch_ops_isas.cmake).
ISAS = ("avx512", "avx2", "scalar")
# What each torch CPU capability lets us run. torch's own choice, not /proc/cpuinfo: it is made with the
# cpuinfo library, which also checks that the OS saves the wider registers (XCR0) and works on any OS and
# architecture (elsewhere than x86 it reports DEFAULT, VSX, SVE...: scalar); it honours ATEN_CPU_CAPABILITY,
# so a user who limits torch's kernels limits gqe's with them; and it asks more than our flags need (AVX512
# means AVX-512 F+BW+DQ+VL with FMA, our avx512 library needs F, AVX2 and FMA; AVX2 means AVX2+FMA), so it
# never picks a library the CPU cannot run. Its one cost: a torch built without AVX-512 kernels reports AVX2
# on an AVX-512 CPU, and gqe then runs its avx2 library.
CPU_CAPABILITY_ISAS = {"AVX512": ("avx512", "avx2", "scalar"), "AVX2": ("avx2", "scalar")}
ISA_ENV = "GQE_TORCH_OPS_ISA"
LIBRARY_ENV = "GQE_TORCH_OPS_LIBRARY"

# What load() loaded: the library's path and its instruction set ("native" for libgqe_torch_ops.so or a
# library GQE_TORCH_OPS_LIBRARY names that is not a variant).
loaded_path: Optional[Path] = None
loaded_isa: Optional[str] = None


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def variant_name(isa: str) -> str:
    return f"libgqe_torch_ops_{isa}.so"


def cpu_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def runnable_isas(capability: str) -> Tuple[str, ...]:
    """The instruction sets, best first, of the libraries a CPU with this torch capability runs."""
    return CPU_CAPABILITY_ISAS.get(capability, ("scalar",))


def isa_of(path: Path) -> str:
    for isa in ISAS:
        if path.name == variant_name(isa):
            return isa
    return "native"


def choose(folder: Path, forced: Optional[str], capability: str) -> Tuple[Path, str]:
    """The library to load from `folder` and its instruction set. forced: GQE_TORCH_OPS_ISA's value (None or
    empty: none); capability: torch's CPU capability. Raises ImportError, naming what is there, when none fits."""
    built = [isa for isa in ISAS if (folder / variant_name(isa)).is_file()]
    native = folder / LIBRARY_NAME
    runnable = runnable_isas(capability)
    if forced:
        if forced not in ISAS:
            raise ImportError(f"gqe: {ISA_ENV}={forced!r} is not an instruction set gqe builds for; "
                              f"expected one of {', '.join(ISAS)}")
        if not built:
            raise ImportError(_missing(folder, native, f"{ISA_ENV}={forced} needs a portable install (one library "
                                                       "per instruction set)"))
        if forced not in built:
            raise ImportError(f"gqe: {ISA_ENV}={forced}, but this install has no {variant_name(forced)} in {folder} "
                              f"(it has {', '.join(built)})")
        if forced not in runnable:
            raise ImportError(f"gqe: {ISA_ENV}={forced}, but this CPU cannot run it (torch reports CPU capability "
                              f"{capability}, which runs {', '.join(runnable)})")
        return folder / variant_name(forced), forced
    if native.is_file():
        return native, "native"
    for isa in runnable:
        if isa in built:
            return folder / variant_name(isa), isa
    if built:
        raise ImportError(f"gqe: none of the ops libraries in {folder} ({', '.join(built)}) runs on this CPU "
                          f"(torch reports CPU capability {capability}, which runs {', '.join(runnable)}); "
                          "build one that does, e.g. with scalar among GQE_TORCH_OPS_ISAS")
    raise ImportError(_missing(folder, native, "no ops library is installed"))


def _missing(folder: Path, native: Path, what: str) -> str:
    return (f"gqe: {what}: {folder} holds neither {native.name} nor any of "
            f"{', '.join(variant_name(i) for i in ISAS)}; install the package with `pip install .` from the "
            f"repository root (docs/python.md), or point {LIBRARY_ENV} at a built library")


def library_path() -> Tuple[Path, str]:
    # GQE_TORCH_OPS_LIBRARY: a library built in a CMake tree (ninja -C build-py gqe_torch_ops), for working on
    # the C++ side without reinstalling; it wins over GQE_TORCH_OPS_ISA. Otherwise one installed beside this file.
    override = os.environ.get(LIBRARY_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ImportError(f"gqe: {LIBRARY_ENV}={override}: no such file")
        return path, isa_of(path)
    return choose(package_dir(), os.environ.get(ISA_ENV), cpu_capability())


def load() -> None:
    global loaded_path, loaded_isa
    if loaded_path is not None:  # once per process: a second TORCH_LIBRARY(gqe) would be refused
        return
    path, isa = library_path()
    torch.ops.load_library(str(path))
    loaded_path, loaded_isa = path, isa


def installed_isas(folder: Optional[Path] = None) -> Sequence[str]:
    """The instruction sets of the portable libraries installed beside this file (empty for a native install)."""
    folder = folder or package_dir()
    return [isa for isa in ISAS if (folder / variant_name(isa)).is_file()]


load()
