"""Build script for the det-ops-cuda extension (``det_ops_cuda._C``).

CPU kernels are always compiled. CUDA kernels are compiled when a CUDA toolkit is found
(``CUDA_HOME`` / ``nvcc``) and torch was built with CUDA, or when ``DET_OPS_CUDA_FORCE_CUDA=1``;
``DET_OPS_CUDA_NO_CUDA=1`` disables them. The kernels are compiled against the torch installed in
the environment the package is installed into, also under pip's build isolation (see make_torch_importable).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")
# Used when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset (torch cannot guess one then).
DEFAULT_ARCH_LIST = "8.0+PTX"


def fail(message: str) -> None:
    """Stop the build with a short, readable message instead of a compiler traceback."""
    sys.stderr.write(f"\n[det-ops-cuda] build error: {message}\n\n")
    raise SystemExit(1)


def note(message: str) -> None:
    sys.stderr.write(f"[det-ops-cuda] {message}\n")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def target_sys_path() -> list[str]:
    """sys.path of the interpreter running this build, as it is outside pip's build isolation.

    pip isolates a build by pointing PYTHONPATH at a temporary environment, but it runs the build with
    the interpreter of the environment being installed into. Started with -I, that interpreter ignores
    PYTHONPATH and shows its own site-packages, including paths added by .pth files.
    """
    import json
    import subprocess

    try:
        out = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def make_torch_importable() -> None:
    """Make the torch the compiled kernels will run with importable.

    Under build isolation the build environment has no torch. Installing a second copy there would
    download gigabytes and could differ in version (and C++ ABI) from the installed one, so the
    target environment's own paths are appended to sys.path instead (after the build environment's,
    so its setuptools still wins).
    """
    if importlib.util.find_spec("torch") is not None:
        return
    sys.path.extend(path for path in target_sys_path() if path and path not in sys.path)
    if importlib.util.find_spec("torch") is None:
        fail(
            f"torch is not installed for {sys.executable}. Install torch into the environment first "
            "(e.g. `pip install torch`), then `pip install ./ops-cuda`. When building a wheel with "
            "`python -m build`, use `--no-isolation` in an environment that has torch."
        )


make_torch_importable()
import torch  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402


def find_cxx() -> str:
    cxx = os.environ.get("CXX", "c++").split()[0]
    found = shutil.which(cxx) or shutil.which("g++") or shutil.which("clang++")
    if not found:
        fail("no C++ compiler found (looked for $CXX, c++, g++, clang++). Install one, e.g. `apt-get install g++`.")
    return found


def find_cudart_dir(cuda_home: str) -> str | None:
    """Return the directory holding libcudart.so (toolkits differ: lib64, lib or targets/*/lib)."""
    candidates = [os.path.join(cuda_home, "lib64"), os.path.join(cuda_home, "lib")]
    candidates += sorted(glob.glob(os.path.join(cuda_home, "targets", "*", "lib")))
    for path in candidates:
        if os.path.exists(os.path.join(path, "libcudart.so")):
            return path
    return None


def toolkit_candidates() -> list[str]:
    """CUDA toolkit roots to try, most explicit first: $CUDA_HOME/$CUDA_PATH, torch's guess, /usr/local/cuda*."""
    found = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), cpp_extension.CUDA_HOME, "/usr/local/cuda"]
    found += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    unique: list[str] = []
    for path in found:
        if path and path not in unique:
            unique.append(path)
    return unique


def find_toolkit() -> tuple[str | None, str | None, str | None]:
    """(cuda_home, libcudart directory, problem): the first candidate with bin/nvcc and libcudart.so.

    torch guesses CUDA_HOME from the `nvcc` on PATH, which is wrong when that nvcc is a wrapper script
    (e.g. /usr/local/bin/nvcc -> /usr/local); an explicit CUDA_HOME is tried first.
    """
    problems = []
    for home in toolkit_candidates():
        if not os.path.exists(os.path.join(home, "bin", "nvcc")):
            problems.append(f"{home} has no bin/nvcc")
            continue
        cudart_dir = find_cudart_dir(home)
        if cudart_dir is None:
            problems.append(f"{home} has no libcudart.so under lib64/, lib/ or targets/*/lib/")
            continue
        return home, cudart_dir, None
    detail = "; ".join(problems) if problems else "no candidate directory"
    return None, None, f"no usable CUDA toolkit found ({detail}); set CUDA_HOME to the toolkit, e.g. /usr/local/cuda"


def want_cuda() -> tuple[bool, str | None]:
    """Decide whether to compile CUDA kernels; returns (enabled, libcudart directory)."""
    forced = env_flag("DET_OPS_CUDA_FORCE_CUDA")
    if env_flag("DET_OPS_CUDA_NO_CUDA"):
        note("DET_OPS_CUDA_NO_CUDA=1: building CPU kernels only.")
        return False, None
    problem = None
    cuda_home = cudart_dir = None
    if torch.version.cuda is None:
        problem = f"torch {torch.__version__} was built without CUDA"
    else:
        cuda_home, cudart_dir, problem = find_toolkit()
    if problem:
        if forced:
            fail(f"DET_OPS_CUDA_FORCE_CUDA=1 but {problem}.")
        note(f"{problem}: building CPU kernels only.")
        return False, None
    # torch.utils.cpp_extension reads its module-level CUDA_HOME when locating nvcc, headers and libraries.
    cpp_extension.CUDA_HOME = cuda_home
    os.environ["CUDA_HOME"] = cuda_home
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
        note(f"no GPU visible and TORCH_CUDA_ARCH_LIST unset: compiling for {DEFAULT_ARCH_LIST}.")
    note(f"CUDA kernels enabled (CUDA_HOME={cuda_home}, TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', 'auto')}).")
    return True, cudart_dir


def make_extension():
    find_cxx()
    with_cuda, cudart_dir = want_cuda()
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp"))) + sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    # -g0 drops the debug info Python's CFLAGS ask for (faster compile, smaller .so); torch adds -std=c++20.
    cxx_flags = ["-O3", "-g0", "-fopenmp"]
    extra = {"cxx": cxx_flags}
    define_macros = []
    library_dirs = []
    if with_cuda:
        sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        define_macros.append(("WITH_CUDA", None))
        extra["nvcc"] = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
        library_dirs.append(cudart_dir)
        ext_cls = cpp_extension.CUDAExtension
    else:
        ext_cls = cpp_extension.CppExtension
    return ext_cls(
        name="det_ops_cuda._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, CSRC)],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        library_dirs=library_dirs,
    )


if not os.environ.get("MAX_JOBS"):
    os.environ["MAX_JOBS"] = "2"

setup(
    ext_modules=[make_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)},
)
