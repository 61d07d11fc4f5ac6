#!/usr/bin/env python3
"""Build imgctl's release artefacts and check them as a user and PyPI would (docs/release.md).

    python scripts/release_check.py                      # dist/ of this checkout
    python scripts/release_check.py --source CLONE --outdir OUT --venv VENV

Run it with the dev extras installed (build, twine, cyclonedx-bom). In OUT (default:
SOURCE/dist) it leaves imgctl-VERSION.tar.gz, imgctl-VERSION-py3-none-any.whl and
imgctl-VERSION.cdx.json, the CycloneDX SBOM of the runtime dependencies. Steps, each fatal:

1. ``python -m build --sdist --wheel``: both from the checkout, so both record the commit
   (a wheel built from the sdist has the version but not the commit);
2. ``twine check --strict`` on both;
3. the sdist holds every tracked file of src/, proto/ and the build files, and the wheel every
   tracked file of src/imgctl/ (migrations, web assets, API stubs...) and nothing stale;
4. the wheel is installed with its dependencies into a new virtualenv (pip may reach PyPI),
   ``pip check`` passes, ``imgctl --version`` prints the wheel's version and ``imgctl --help``
   works from there;
5. ``cyclonedx-py environment`` writes the SBOM of that virtualenv (imgctl the root component,
   with its version), which must validate against the CycloneDX 1.6 schema and list every
   package installed there, every runtime requirement of imgctl with a version satisfying it.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
# Written at build time, never tracked: setuptools-scm's version file and setup.py's defaults.
GENERATED = {"imgctl/_version.py"}
OPTIONAL_GENERATED = {"imgctl/_build_defaults.json"}
SDIST_TRACKED = ("src/", "proto/", "pyproject.toml", "setup.py", "README.md")


class CheckFailed(Exception):
    """A release check that did not pass; the message says what and where."""


def say(message: str) -> None:
    """Print one progress line on stderr."""
    print(f"release check: {message}", file=sys.stderr, flush=True)


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    """Run a command; its output on failure becomes the CheckFailed message."""
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CheckFailed(
            f"{' '.join(str(a) for a in argv)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return result.stdout


def tracked(source: Path) -> list[str]:
    """The files git tracks in SOURCE (a release is cut from a git checkout)."""
    if not (source / ".git").exists():
        raise CheckFailed(f"{source} is not a git checkout: releases are cut from a tagged clone")
    return run("git", "-C", source, "ls-files", "-z").strip("\0").split("\0")


def build(source: Path, outdir: Path) -> tuple[Path, Path]:
    """Build the sdist and the wheel of SOURCE into OUTDIR; return their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    before = set(outdir.iterdir())
    # setuptools reuses build/lib: a file deleted from src/ would linger in the wheel.
    shutil.rmtree(source / "build", ignore_errors=True)
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", outdir, source)
    new = set(outdir.iterdir()) - before
    wheels = [p for p in new if p.name.endswith(".whl")]
    sdists = [p for p in new if p.name.endswith(".tar.gz")]
    if len(wheels) != 1 or len(sdists) != 1:
        raise CheckFailed(f"expected one new wheel and one new sdist in {outdir}, got {new}")
    return sdists[0], wheels[0]


def wheel_problems(wheel: Path, source: Path) -> list[str]:
    """What the wheel lacks of src/imgctl's tracked files, or holds that is not tracked."""
    expected = {
        path.removeprefix("src/")
        for path in tracked(source)
        if path.startswith("src/imgctl/") and not path.endswith(".pyc")
    } | GENERATED
    with zipfile.ZipFile(wheel) as archive:
        held = {name for name in archive.namelist() if name.startswith("imgctl/")}
    problems = [f"{wheel.name} lacks {name}" for name in sorted(expected - held)]
    problems += [
        f"{wheel.name} holds {name}, which git does not track (a stale build/?)"
        for name in sorted(held - expected - OPTIONAL_GENERATED)
    ]
    return problems


def sdist_problems(sdist: Path, source: Path) -> list[str]:
    """What the sdist lacks of the tracked files a build from it needs."""
    _, version = parse_sdist_filename(sdist.name)
    prefix = f"imgctl-{version}/"
    with tarfile.open(sdist) as archive:
        held = {name.removeprefix(prefix) for name in archive.getnames()}
    expected = {p for p in tracked(source) if p.startswith(SDIST_TRACKED)}
    expected |= {"PKG-INFO", "src/imgctl/_version.py"}
    return [f"{sdist.name} lacks {name}" for name in sorted(expected - held)]


def install(wheel: Path, venv: Path) -> Path:
    """A new virtualenv with the wheel and its dependencies only (no pip); its python."""
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            raise CheckFailed(f"{venv} exists and is no virtualenv: name a new directory")
        shutil.rmtree(venv)
    # --without-pip: the SBOM is of what imgctl needs, not of the installer.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel)
    run(sys.executable, "-m", "pip", "--python", python, "check")
    return python


def check_installed(venv: Path, version: str, commit: str) -> None:
    """Run imgctl --version and --help from the new virtualenv; check its commit."""
    imgctl = venv / "bin" / "imgctl"
    printed = run(imgctl, "--version").strip()
    if printed != f"imgctl {version}":
        raise CheckFailed(f"imgctl --version printed {printed!r}, expected 'imgctl {version}'")
    if "Usage: imgctl" not in run(imgctl, "--help"):
        raise CheckFailed("imgctl --help printed no usage")
    probe = "import imgctl, json; print(json.dumps([imgctl.__commit__, imgctl.__build_date__]))"
    built_commit, build_date = json.loads(run(venv / "bin" / "python", "-c", probe))
    if built_commit != commit:
        raise CheckFailed(f"imgctl.__commit__ is {built_commit!r}, the checkout is at {commit}")
    if not build_date:
        raise CheckFailed("imgctl.__build_date__ is empty")


def runtime_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist that apply without extras on this Python."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def write_sbom(source: Path, python: Path, version: str, target: Path) -> None:
    """The CycloneDX JSON SBOM of the virtualenv, imgctl VERSION its root component."""
    run(
        sys.executable,
        "-m",
        "cyclonedx_py",
        "environment",
        "--pyproject",
        source / "pyproject.toml",
        "--mc-type",
        "application",
        "--output-reproducible",
        "--output-format",
        "JSON",
        "--output-file",
        target,
        python,
    )
    # pyproject.toml's version is dynamic (setuptools-scm): the root would have none.
    bom = json.loads(target.read_text())
    bom["metadata"]["component"]["version"] = version
    bom["metadata"]["component"]["purl"] = f"pkg:pypi/imgctl@{version}"
    target.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")


def sbom_problems(sbom: Path, python: Path, requirements: list[Requirement]) -> list[str]:
    """Schema errors, and installed packages or runtime requirements the SBOM misses."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = sbom.read_text()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        return [f"{sbom.name} is not valid CycloneDX 1.6: {error}"]
    listed = {
        canonicalize_name(c["name"]): c.get("version")
        for c in json.loads(text).get("components", [])
        if c.get("purl", "").startswith("pkg:pypi/")
    }
    problems = []
    for requirement in requirements:
        found = listed.get(canonicalize_name(requirement.name))
        if not found:
            problems.append(f"{sbom.name} lacks runtime dependency {requirement}")
        elif not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{sbom.name} lists {requirement.name} {found}, not {requirement}")
    probe = "import importlib.metadata as m; print('\\n'.join(d.name for d in m.distributions()))"
    for name in run(python, "-I", "-c", probe).split():
        if canonicalize_name(name) not in listed and canonicalize_name(name) != "imgctl":
            problems.append(f"{sbom.name} lacks {name}, installed with imgctl")
    return problems


def check(source: Path, outdir: Path, venv: Path | None) -> Path:
    """Every step above; return the SBOM's path."""
    commit = run("git", "-C", source, "rev-parse", "HEAD").strip()
    say(f"building the sdist and the wheel of {source} (commit {commit[:12]})")
    sdist, wheel = build(source, outdir)
    _, version, _, _ = parse_wheel_filename(wheel.name)
    say(f"imgctl {version}: twine check --strict")
    run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    say("comparing the sdist and the wheel with the tracked files")
    problems = sdist_problems(sdist, source) + wheel_problems(wheel, source)
    if problems:
        raise CheckFailed("\n".join(problems))
    with tempfile.TemporaryDirectory(prefix="imgctl-release-") as scratch:
        env_dir = venv or Path(scratch) / "venv"
        say(f"installing {wheel.name} into a new virtualenv ({env_dir})")
        python = install(wheel, env_dir)
        check_installed(env_dir, str(version), commit)
        sbom = outdir / f"imgctl-{version}.cdx.json"
        say(f"writing and checking the SBOM {sbom.name}")
        write_sbom(source, python, str(version), sbom)
        problems = sbom_problems(sbom, python, runtime_requirements(wheel))
        if problems:
            raise CheckFailed("\n".join(problems))
    say(f"passed: {sdist.name}, {wheel.name}, {sbom.name} in {outdir}")
    return sbom


def main() -> int:
    """Parse the arguments, run the checks; 0 when every one passed, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="git checkout (default: ..)")
    parser.add_argument("--outdir", type=Path, help="artefacts directory (SOURCE/dist)")
    parser.add_argument("--venv", type=Path, help="keep the test virtualenv here")
    args = parser.parse_args()
    source = args.source.resolve()
    try:
        check(source, (args.outdir or source / "dist").resolve(), args.venv)
    except CheckFailed as failure:
        say(f"FAILED: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
