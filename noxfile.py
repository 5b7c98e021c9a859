"""Test, lint and build sessions: one fresh environment per distribution.

Each ``tests-<dist>`` session installs only that distribution and the local distributions
it declares (recursively) as wheels, so an undeclared cross-package import fails there.
torch + torchvision (about 5 GB) are installed once into ``.cache/torch-site`` and shared by
every session through a ``.pth`` file instead of being installed per environment.
Wheels of local distributions are cached by a hash of their sources (``.cache/wheels``), so
the compiled det-ops-cuda is built once per source change.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent.resolve()
CACHE = ROOT / ".cache"
TORCH_SITE = Path(os.environ.get("DETCORE_TORCH_SITE", CACHE / "torch-site"))
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
# Distribution folders in dependency order; a folder that does not exist yet is skipped.
DIST_DIRS = (
    "detcore",
    "packages/det-common",
    "packages/det-single-stage",
    "packages/det-anchor-free",
    "packages/det-two-stage",
    "packages/det-cascade",
    "packages/det-transformer",
    "packages/det-keypoint",
    "ops-cuda",
    "plugins/det-plugin-template",
)

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def local_dists() -> dict[str, Path]:
    """Distribution name -> folder, for every local distribution present."""
    found = {}
    for rel in DIST_DIRS:
        folder = ROOT / rel
        if (folder / "pyproject.toml").is_file():
            found[_norm(_pyproject(folder)["project"]["name"])] = folder
    return found


def local_closure(name: str) -> list[str]:
    """``name`` plus the local distributions it declares, dependencies first."""
    dists = local_dists()
    order: list[str] = []

    def visit(dist: str) -> None:
        if dist in order:
            return
        for req in _pyproject(dists[dist])["project"].get("dependencies", []):
            dep = _norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])
            if dep in dists:
                visit(dep)
        order.append(dist)

    visit(name)
    return order


def ensure_torch(session: nox.Session) -> None:
    """Install torch once into the shared folder and make this environment see it."""
    marker = TORCH_SITE / ".detcore-complete"
    if not marker.is_file() or marker.read_text() != " ".join(TORCH_PINS):
        shutil.rmtree(TORCH_SITE, ignore_errors=True)
        session.run("python", "-m", "pip", "install", "-q", "--target", str(TORCH_SITE), *TORCH_PINS)
        marker.write_text(" ".join(TORCH_PINS))
    purelib = session.run("python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                          silent=True).strip().splitlines()[-1]
    Path(purelib, "detcore-shared-torch.pth").write_text(str(TORCH_SITE) + "\n")


def _source_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(
            part in {"build", "dist", "__pycache__", ".pytest_cache"} or part.endswith(".egg-info")
            for part in rel.parts
        ) and path.suffix not in {".so", ".pyc"}:
            digest.update(str(rel).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_requirements(session: nox.Session, dists: list[str]) -> None:
    """Build-system requirements of the local distributions, except torch (already shared)."""
    reqs = {"setuptools>=68", "wheel"}
    for dist in dists:
        for req in _pyproject(local_dists()[dist]).get("build-system", {}).get("requires", []):
            if not req.startswith("torch"):
                reqs.add(req)
    session.install(*sorted(reqs))


ISOLATED_BUILDS = {"det-ops-cuda"}


def wheel_for(session: nox.Session, dist: str) -> Path:
    """A wheel of a local distribution, rebuilt only when its sources change."""
    folder = local_dists()[dist]
    out = CACHE / "wheels" / f"{dist}-{_source_hash(folder)}"
    wheels = list(out.glob("*.whl")) if out.is_dir() else []
    if not wheels:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        # det-ops-cuda is built the way a user installs it (pip's default build isolation), so CI checks
        # that its setup.py finds the environment's torch there; the pure-Python ones skip the isolation.
        isolation = [] if dist in ISOLATED_BUILDS else ["--no-build-isolation"]
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), str(folder))
        shutil.rmtree(folder / "build", ignore_errors=True)
        wheels = list(out.glob("*.whl"))
    return wheels[0]


# Optional extras installed wherever the distribution is tested, so the tests of optional features run in CI.
TEST_EXTRAS = {"detcore": ("onnx", "albu", "lvis", "instaboost", "cityscapes")}


def install_local(session: nox.Session, names: list[str]) -> None:
    ensure_torch(session)
    order: list[str] = []
    for name in names:
        for dist in local_closure(name):
            if dist not in order:
                order.append(dist)
    build_requirements(session, order)
    wheels = [f"{wheel_for(session, d)}[{','.join(TEST_EXTRAS[d])}]" if d in TEST_EXTRAS else str(wheel_for(session, d))
              for d in order]
    session.install("pytest>=7", *wheels)


def _tests_session(dist: str, folder: Path):
    def run(session: nox.Session) -> None:
        install_local(session, [dist])
        session.chdir(folder)
        session.run("python", "-m", "pytest", "tests", "-q", *session.posargs)

    run.__doc__ = f"Tests of {dist} in an environment with only it and its declared dependencies."
    return run


TEST_SESSIONS = []
for _dist, _folder in local_dists().items():
    _name = f"tests-{_dist}"
    nox.session(name=_name)(_tests_session(_dist, _folder))
    TEST_SESSIONS.append(_name)


@nox.session(name="tests-cross")
def tests_cross(session: nox.Session) -> None:
    """Cross-package tests (tests/) with every distribution installed."""
    install_local(session, list(local_dists()))
    session.run("python", "-m", "pytest", "tests", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def build(session: nox.Session) -> None:
    """Wheel and sdist of every distribution into dist/ (det-ops-cuda: sdist, its wheel is built by its tests)."""
    session.install("build")
    build_requirements(session, list(local_dists()))
    ensure_torch(session)
    out = ROOT / "dist"
    for dist, folder in local_dists().items():
        kinds = ["--sdist"] if dist == "det-ops-cuda" else ["--sdist", "--wheel"]
        session.run("python", "-m", "build", "--no-isolation", *kinds, "--outdir", str(out), str(folder))
        shutil.rmtree(folder / "build", ignore_errors=True)


nox.options.sessions = [*TEST_SESSIONS, "tests-cross", "lint", "build"]
