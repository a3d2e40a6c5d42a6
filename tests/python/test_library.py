# Which ops library gqe loads (python/gqe/_library.py): the choice among a portable install's variants, the
# GQE_TORCH_OPS_ISA override, the refusals, and that one library, and only one, is in the process.
# The choice itself is tested on folders of empty stand-in files (any install); the checks of real variants
# run only against a portable install (GQE_TORCH_OPS_ISAS, docs/python.md) and are skipped for a native one.
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gqe  # noqa: F401  (loads the library)
from gqe import _library


def _folder(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


ALL = [_library.variant_name(isa) for isa in _library.ISAS]


@pytest.mark.parametrize("capability,expected", [("AVX512", "avx512"), ("AVX2", "avx2"), ("DEFAULT", "scalar"),
                                                  ("SVE256", "scalar"), ("VSX", "scalar")])
def test_the_best_variant_the_cpu_runs(tmp_path, capability, expected):
    folder = _folder(tmp_path, *ALL)
    assert _library.choose(folder, None, capability) == (folder / _library.variant_name(expected), expected)


def test_a_variant_not_built_is_passed_over(tmp_path):
    folder = _folder(tmp_path, _library.variant_name("avx2"), _library.variant_name("scalar"))
    assert _library.choose(folder, None, "AVX512")[1] == "avx2"
    assert _library.choose(folder, "", "AVX512")[1] == "avx2"  # an empty GQE_TORCH_OPS_ISA forces nothing


def test_forced_variant(tmp_path):
    folder = _folder(tmp_path, *ALL)
    for isa in ("avx2", "scalar"):
        assert _library.choose(folder, isa, "AVX512") == (folder / _library.variant_name(isa), isa)


def test_unknown_isa_refused(tmp_path):
    folder = _folder(tmp_path, *ALL)
    with pytest.raises(ImportError, match=r"GQE_TORCH_OPS_ISA='sse9' is not an instruction set gqe builds for; "
                                          r"expected one of avx512, avx2, scalar"):
        _library.choose(folder, "sse9", "AVX512")
    with pytest.raises(ImportError, match="is not an instruction set"):
        _library.choose(folder, "AVX2", "AVX512")  # names are lower case, as in GQE_TORCH_OPS_ISAS


def test_forced_variant_the_cpu_cannot_run_refused(tmp_path):
    folder = _folder(tmp_path, *ALL)
    with pytest.raises(ImportError, match=r"GQE_TORCH_OPS_ISA=avx512, but this CPU cannot run it \(torch reports "
                                          r"CPU capability AVX2, which runs avx2, scalar\)"):
        _library.choose(folder, "avx512", "AVX2")


def test_forced_variant_not_built_refused(tmp_path):
    folder = _folder(tmp_path, _library.variant_name("avx2"))
    with pytest.raises(ImportError, match=r"GQE_TORCH_OPS_ISA=scalar, but this install has no "
                                          r"libgqe_torch_ops_scalar.so in .* \(it has avx2\)"):
        _library.choose(folder, "scalar", "AVX512")


def test_no_runnable_variant_refused(tmp_path):
    folder = _folder(tmp_path, _library.variant_name("avx512"))
    with pytest.raises(ImportError, match=r"none of the ops libraries in .* \(avx512\) runs on this CPU \(torch "
                                          r"reports CPU capability DEFAULT, which runs scalar\)"):
        _library.choose(folder, None, "DEFAULT")


def test_native_install(tmp_path):
    folder = _folder(tmp_path, _library.LIBRARY_NAME)
    assert _library.choose(folder, None, "DEFAULT") == (folder / _library.LIBRARY_NAME, "native")
    with pytest.raises(ImportError, match="GQE_TORCH_OPS_ISA=avx2 needs a portable install"):
        _library.choose(folder, "avx2", "AVX512")


def test_nothing_installed(tmp_path):
    with pytest.raises(ImportError, match=r"no ops library is installed: .* holds neither libgqe_torch_ops.so nor"):
        _library.choose(tmp_path, None, "AVX512")


def _mapped_ops_libraries():
    with open("/proc/self/maps") as maps:
        return {Path(line.split()[-1]).resolve() for line in maps
                if re.search(r"/libgqe_torch_ops[^/]*\.so$", line.strip())}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps (Linux)")
def test_exactly_the_loaded_library_is_mapped():
    assert _library.loaded_path is not None
    assert _mapped_ops_libraries() == {_library.loaded_path.resolve()}
    assert _library.loaded_isa == _library.isa_of(_library.loaded_path)
    forced = os.environ.get(_library.ISA_ENV)
    if forced and not os.environ.get(_library.LIBRARY_ENV):
        assert _library.loaded_isa == forced


def _import_gqe(isa, script, **extra_env):
    """Runs `script` after `import gqe` in a fresh interpreter with GQE_TORCH_OPS_ISA=isa (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in (_library.LIBRARY_ENV, _library.ISA_ENV)}
    if isa is not None:
        env[_library.ISA_ENV] = isa
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", "import gqe\n" + script], env=env, capture_output=True,
                          text=True, timeout=300)


def test_unknown_isa_refused_at_import():
    result = _import_gqe("sse9", "")
    assert result.returncode != 0
    assert "ImportError: gqe: GQE_TORCH_OPS_ISA='sse9' is not an instruction set gqe builds for" in result.stderr


portable = pytest.mark.skipif(not _library.installed_isas(),
                              reason="a native install (libgqe_torch_ops.so): no variants to choose from")


@portable
@pytest.mark.parametrize("isa", _library.ISAS)
def test_forced_variant_is_the_one_loaded_and_runs(isa):
    if isa not in _library.installed_isas():
        pytest.skip(f"no {_library.variant_name(isa)} in this install")
    if isa not in _library.runnable_isas(_library.cpu_capability()):
        pytest.skip(f"this CPU (torch: {_library.cpu_capability()}) cannot run {isa}")
    # In its own process: this one has its library already, and a second would be refused.
    script = f"""
import re, torch
from gqe import _library
maps = [l.split()[-1] for l in open("/proc/self/maps") if re.search(r"/libgqe_torch_ops[^/]*\\.so$", l.strip())]
assert sorted(set(maps)) == [str(_library.loaded_path.resolve())], maps
assert _library.loaded_isa == {isa!r}, _library.loaded_isa
torch.manual_seed(0)
q, k, v = torch.randn(2, 37, 8, 16), torch.randn(2, 37, 4, 16), torch.randn(2, 37, 4, 16)
out, _ = torch.ops.gqe.flash_attention_forward(q, k, v, 0)
ref = torch.ops.gqe.flash_attention_reference(q.double(), k.double(), v.double(), 0)
torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-4)
print("ok", _library.loaded_path.name)
"""
    result = _import_gqe(isa, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", _library.variant_name(isa)]


@portable
@pytest.mark.parametrize("aten_capability,expected", [("avx2", "avx2"), ("default", "scalar")])
def test_automatic_choice_follows_torch_capability(aten_capability, expected):
    # ATEN_CPU_CAPABILITY lowers torch's capability, and gqe's choice follows it.
    if expected not in _library.installed_isas():
        pytest.skip(f"no {_library.variant_name(expected)} in this install")
    if expected not in _library.runnable_isas(_library.cpu_capability()):
        pytest.skip(f"this CPU (torch: {_library.cpu_capability()}) cannot run {expected}")
    result = _import_gqe(None, "from gqe import _library; print(_library.loaded_isa)",
                         ATEN_CPU_CAPABILITY=aten_capability)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected]


@portable
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_each_variant_uses_its_own_vector_registers_only():
    # No -march=native (or another variant's flags) leaked into a copy: the scalar library has no AVX
    # register, the avx2 one no AVX-512 register, and each vector one uses its own width.
    for isa in _library.installed_isas():
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(_library.package_dir() / _library.variant_name(isa))],
                              check=True, capture_output=True, text=True).stdout
        has_ymm, has_zmm = "%ymm" in text, "%zmm" in text
        if isa == "scalar":
            assert not has_ymm and not has_zmm
        elif isa == "avx2":
            assert has_ymm and not has_zmm
        else:
            assert has_zmm


@portable
def test_variants_export_no_kernel_symbols():
    # Each variant's gqe_nn copy stays inside its library (hidden visibility, --exclude-libs): the same C++
    # names with different vector widths must never bind across libraries.
    if shutil.which("nm") is None:
        pytest.skip("needs nm (binutils)")
    for isa in _library.installed_isas():
        text = subprocess.run(["nm", "-D", "--defined-only", "-C", str(_library.package_dir() / _library.variant_name(isa))],
                              check=True, capture_output=True, text=True).stdout
        exported = [line for line in text.splitlines() if "gqe::" in line]
        assert exported == [], (isa, exported[:5])
