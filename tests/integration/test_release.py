"""Releases (docs/release.md): the version from the git tag, the release check, the SBOM, the
image's Dockerfile, and the doc's signing commands run against a real registry.

The release check (scripts/release_check.py) runs once per module on a shallow clone of HEAD
tagged v9.8.7, as CI's clean clone would be: uncommitted changes are not in it. It builds, installs
the wheel into a new virtualenv (pip may reach the package index) and writes the SBOM: about a
minute, hence ``slow``. What it produced is then checked here independently of the script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import typer
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imgctl.cli._app import app

from ..conftest import IMGCTL, PushedImage
from ..support.registry import Registry

# The release check alone takes about a minute on the 2-core machine, more when it is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "release_check.py"
DOC = ROOT / "docs" / "release.md"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VERSION = "9.8.7"


def git(*args: str | Path) -> str:
    return subprocess.run(
        ["git", *map(str, args)], check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Release:
    clone: Path
    dist: Path
    venv: Path
    commit: str

    def file(self, suffix: str) -> Path:
        return self.dist / f"imgctl-{VERSION}{suffix}"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    base = tmp_path_factory.mktemp("release")
    clone = base / "clone"
    # Shallow, as CI's clone may be; the tag on HEAD is what a release manager adds.
    git("clone", "--quiet", "--depth", "1", f"file://{ROOT}", clone)
    git("-C", clone, "tag", f"v{VERSION}")
    result = subprocess.run(
        [sys.executable, SCRIPT, "--source", clone, "--venv", base / "venv"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "release check: passed" in result.stderr
    return Release(clone, clone / "dist", base / "venv", git("-C", clone, "rev-parse", "HEAD"))


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_check", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version_file(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        code = archive.read("imgctl/_version.py").decode()
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # what `import imgctl._version` runs, without installing the wheel
    return namespace


# --- the version ------------------------------------------------------------------------------


def test_the_artefacts_and_the_installed_imgctl_carry_the_tag_s_version(release: Release) -> None:
    assert sorted(p.name for p in release.dist.iterdir()) == [
        f"imgctl-{VERSION}-py3-none-any.whl",
        f"imgctl-{VERSION}.cdx.json",
        f"imgctl-{VERSION}.tar.gz",
    ]
    imgctl = release.venv / "bin" / "imgctl"
    assert subprocess.run([imgctl, "--version"], capture_output=True, text=True).stdout == (
        f"imgctl {VERSION}\n"
    )
    probe = "import imgctl, json; print(json.dumps([imgctl.__commit__, imgctl.__build_date__]))"
    python = release.venv / "bin" / "python"
    commit, built = json.loads(subprocess.check_output([python, "-c", probe], text=True))
    assert commit == release.commit
    assert datetime.strptime(built, "%Y-%m-%dT%H:%M:%SZ").year >= 2024
    # No pip or setuptools of its own: the SBOM is of what imgctl needs.
    assert not list((release.venv / "lib").glob("python*/site-packages/pip"))


def test_the_editable_install_reads_the_version_file_setuptools_scm_wrote() -> None:
    # In a fresh interpreter: another pip install -e of this tree may have rewritten the file.
    probe = (
        "import imgctl, imgctl._version as v; "
        "print(imgctl.__version__ == v.__version__, v.__file__, imgctl.__version__)"
    )
    same, path, version = subprocess.check_output([sys.executable, "-c", probe], text=True).split()
    assert same == "True"
    assert Path(path) == ROOT / "src" / "imgctl" / "_version.py"
    pep440_dev = r"\d+\.\d+\.\d+(\.dev\d+)?(\+g[0-9a-f]+(\.d\d{8})?)?"
    assert re.fullmatch(pep440_dev, version)
    result = subprocess.run([IMGCTL, "--version"], capture_output=True, text=True)
    assert re.fullmatch(f"imgctl {pep440_dev}\n", result.stdout)


def test_a_shallow_clone_without_tags_has_a_dev_version(tmp_path: Path) -> None:
    # CI's clone may be shallow and have no tags: setuptools-scm still gives a PEP 440 version.
    clone = tmp_path / "clone"
    git("clone", "--quiet", "--depth", "1", "--no-tags", f"file://{ROOT}", clone)
    result = subprocess.run(
        [sys.executable, "-m", "setuptools_scm"], cwd=clone, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    commit = git("-C", clone, "rev-parse", "HEAD")
    assert re.fullmatch(rf"0\.0\.1\.dev\d+\+g{commit[:9]}[0-9a-f]*\n", result.stdout)


def test_a_source_tree_never_built_says_its_version_is_unknown(tmp_path: Path) -> None:
    # PYTHONPATH=src without an install: no _version.py, and no slow fallback either.
    (tmp_path / "imgctl").mkdir()
    shutil.copy(ROOT / "src" / "imgctl" / "__init__.py", tmp_path / "imgctl")
    probe = (
        "import sys; sys.path.insert(0, '.'); import imgctl; "
        "print(imgctl.__file__, imgctl.__version__, imgctl.__commit__, imgctl.__build_date__, "
        "'importlib.metadata' in sys.modules)"
    )
    output = subprocess.check_output([sys.executable, "-I", "-c", probe], cwd=tmp_path, text=True)
    assert output == f"{tmp_path / 'imgctl' / '__init__.py'} 0.0.0+unknown None None False\n"


# --- what the wheel and the sdist hold ------------------------------------------------------------


def test_the_wheel_holds_every_tracked_file_the_cli_and_server_need(release: Release) -> None:
    with zipfile.ZipFile(release.file("-py3-none-any.whl")) as archive:
        held = set(archive.namelist())
    tracked = git("-C", release.clone, "ls-files", "src/imgctl").splitlines()
    assert len(tracked) > 100
    missing = sorted(p.removeprefix("src/") for p in tracked if p.removeprefix("src/") not in held)
    assert missing == []
    # By name, the package data that a forgotten package-data line would lose.
    for name in (
        "imgctl/py.typed",
        "imgctl/_version.py",
        "imgctl/store/migrations/env.py",
        "imgctl/store/migrations/versions/0001_audit_events.py",
        "imgctl/web/static/web.css",
        "imgctl/web/static/web.js",
        "imgctl/web/templates/base.html",
        "imgctl/v1/imgctl_pb2.py",
        "imgctl/v1/imgctl_pb2.pyi",
    ):
        assert name in held
    with zipfile.ZipFile(release.file("-py3-none-any.whl")) as archive:
        metadata = archive.read(f"imgctl-{VERSION}.dist-info/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in metadata


def test_the_check_names_what_a_wheel_lacks_or_should_not_hold(
    release: Release, tmp_path: Path
) -> None:
    doctored = tmp_path / release.file("-py3-none-any.whl").name
    with (
        zipfile.ZipFile(release.file("-py3-none-any.whl")) as source,
        zipfile.ZipFile(doctored, "w") as target,
    ):
        for item in source.infolist():
            if item.filename != "imgctl/web/static/web.css":
                target.writestr(item, source.read(item))
        target.writestr("imgctl/old_module.py", "")
    assert _script().wheel_problems(doctored, release.clone) == [
        f"{doctored.name} lacks imgctl/web/static/web.css",
        f"{doctored.name} holds imgctl/old_module.py, which git does not track (a stale build/?)",
    ]
    assert _script().wheel_problems(release.file("-py3-none-any.whl"), release.clone) == []


def test_the_sdist_holds_the_build_inputs_and_the_api_s_source(release: Release) -> None:
    with tarfile.open(release.file(".tar.gz")) as archive:
        names = set(archive.getnames())
    prefix = f"imgctl-{VERSION}/"
    for name in (
        "PKG-INFO",
        "pyproject.toml",
        "setup.py",
        "README.md",
        "proto/imgctl/v1/imgctl.proto",
    ):
        assert prefix + name in names


# --- the SBOM -------------------------------------------------------------------------------------


def test_the_sbom_is_valid_cyclonedx_listing_every_runtime_dependency(release: Release) -> None:
    text = release.file(".cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX"
    root = bom["metadata"]["component"]
    assert (root["name"], root["version"], root["purl"]) == (
        "imgctl",
        VERSION,
        f"pkg:pypi/imgctl@{VERSION}",
    )
    listed = {canonicalize_name(c["name"]): c["version"] for c in bom["components"]}
    project = tomllib.loads((release.clone / "pyproject.toml").read_text())["project"]
    extras_of = {
        "psycopg": {"binary": "psycopg-binary"},
        "pyjwt": {"crypto": "cryptography"},
        "uvicorn": {"standard": "uvloop"},
    }
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in listed, f"{name} missing from the SBOM"
        assert requirement.specifier.contains(listed[name], prereleases=True), (line, listed[name])
        for extra in requirement.extras:
            assert extras_of[name][extra] in listed, (line, extra)
    # Transitive ones too (sigstore's tuf, fastapi's starlette), each with a pypi purl.
    assert {"tuf", "starlette", "pydantic"} <= set(listed)
    assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])
    direct = next(d for d in bom["dependencies"] if d["ref"] == root["bom-ref"])["dependsOn"]
    assert any(ref.startswith("sigstore==") for ref in direct)


# --- the image ------------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_copies_files_that_exist_and_are_in_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [rest for keyword, rest in _instructions(DOCKERFILE) if keyword == "COPY"]
    assert copies
    for rest in copies:
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source
    arguments = {
        rest.split("=")[0] for keyword, rest in _instructions(DOCKERFILE) if keyword == "ARG"
    }
    assert {"IMGCTL_VERSION", "IMGCTL_COMMIT"} <= arguments


@pytest.mark.parametrize(
    ("build_args", "version", "commit"),
    [
        ({}, "0.0.0", None),
        ({"IMGCTL_VERSION": VERSION, "IMGCTL_COMMIT": "ab" * 20}, VERSION, "ab" * 20),
    ],
    ids=["no build args", "version and commit"],
)
def test_the_image_s_build_step_takes_the_version_from_its_build_args(
    tmp_path: Path, build_args: dict[str, str], version: str, commit: str | None
) -> None:
    # The build stage's `RUN ... pip wheel` run as docker would, in a copy of its build context
    # (COPYs of the build stage, no .git): only imgctl's wheel (--no-deps), into tmp_path.
    stages = "\n".join(f"{k} {r}" for k, r in _instructions(DOCKERFILE)).split("\nFROM ")
    build = [line.partition(" ") for line in stages[0].splitlines()]
    context = tmp_path / "context"
    context.mkdir()
    for keyword, _, rest in build:
        if keyword == "COPY":
            *sources, destination = shlex.split(rest)
            for source in sources:
                target = (
                    context / destination / Path(source).name
                    if destination.endswith("/")
                    else context / destination
                )
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "_version.py"),
                    )
                else:
                    shutil.copy(ROOT / source, target)
    (command,) = [rest for keyword, _, rest in build if keyword == "RUN" and "pip wheel" in rest]
    wheels = tmp_path / "wheels"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_SCM")}
    env.update(build_args, PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    result = subprocess.run(
        [
            "sh",
            "-c",
            command.replace("pip wheel", "pip wheel --no-deps").replace("/wheels", str(wheels)),
        ],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("imgctl-*.whl")
    assert wheel.name == f"imgctl-{version}-py3-none-any.whl"
    built = _version_file(wheel)
    assert (built["__version__"], built["__commit__"]) == (version, commit)


# --- docs/release.md ------------------------------------------------------------------------------


def _blocks(marked_only: bool) -> list[str]:
    text = DOC.read_text()
    pattern = r"(<!-- test: release-signing -->\n)?```sh\n(.*?)```"
    return [
        body
        for marker, body in re.findall(pattern, text, flags=re.DOTALL)
        if marker or not marked_only
    ]


def _commands(block: str) -> list[list[str]]:
    """Each simple command of a shell block, $(...) substitutions included, as argv."""
    text = block.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            found.append(shlex.split(inner))
        line = re.sub(r"\$\(([^()]*)\)", "SUBST", line)
        for part in re.split(r"&&|;|\|", line):
            argv = shlex.split(part, comments=True)
            while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
                argv = argv[1:]
            if argv:
                found.append(argv)
    return found


def test_every_command_in_the_release_doc_matches_its_help() -> None:
    root = typer.main.get_command(app)
    seen: set[str] = set()
    dockerfile_args = {
        rest.split("=")[0] for keyword, rest in _instructions(DOCKERFILE) if keyword == "ARG"
    }
    script_help = subprocess.run(
        [sys.executable, SCRIPT, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for block in _blocks(marked_only=False):
        for argv in _commands(block):
            if argv[0] == "imgctl":
                command: Any = root
                words = argv[1:]
                while words and words[0] in getattr(command, "commands", {}):
                    command = command.commands[words.pop(0)]
                assert not hasattr(command, "commands"), argv
                names = {n for p in command.params for n in (*p.opts, *p.secondary_opts)}
                names |= {"-h", "--help"}
                options = {w.split("=")[0] for w in words if w.startswith("-")}
                assert options <= names, (argv, options - names)
                seen.add(command.name)
            elif argv[:2] == ["python", "scripts/release_check.py"]:
                assert all(w.split("=")[0] in script_help for w in argv[2:] if w.startswith("-"))
                seen.add("release_check")
            elif argv[:2] == ["docker", "build"]:
                assert (ROOT / argv[argv.index("-f") + 1]).is_file()
                for i, word in enumerate(argv):
                    if word == "--build-arg":
                        assert argv[i + 1].split("=")[0] in dockerfile_args, argv[i + 1]
                seen.add("docker build")
    # Options named in the prose: the release check's.
    for option in ("--source", "--outdir", "--venv"):
        assert option in script_help
    assert {"generate-key-pair", "digest", "sign", "attest", "verify", "attestations"} <= seen
    assert {"release_check", "docker build"} <= seen


def test_the_doc_s_signing_commands_sign_and_attest_an_image_with_its_sbom(
    release: Release,
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    # A stand-in for imgctl's image (docker is not relied on), pushed where the doc pushes it.
    repository = repo("platform-imgctl")
    image = push_image(registry, repository=repository, tag=VERSION)
    (tmp_path / "dist").mkdir()
    shutil.copy(release.file(".cdx.json"), tmp_path / "dist")
    script = "\n".join(_blocks(marked_only=True)).replace(
        "REPO=registry.example.com/platform/imgctl", f"REPO={registry.host}/{repository}"
    )
    assert f"REPO={registry.host}/{repository}" in script
    env = {**os.environ, "COSIGN_PASSWORD": "release password", "VERSION": VERSION}
    env["PATH"] = f"{Path(IMGCTL).parent}:{env['PATH']}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 verified" in result.stdout, result.stdout
    # Read back: the attestation's predicate is the SBOM, verified with release.pub.
    listed = subprocess.run(
        [
            IMGCTL,
            "attestations",
            f"{registry.host}/{repository}@{image.digest}",
            "--key",
            str(tmp_path / "release.pub"),
            "--predicate-type",
            "cyclonedx",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    (attestation,) = json.loads(listed.stdout)["attestations"]
    assert attestation["verified"] is True
    assert attestation["predicateType"] == "https://cyclonedx.org/bom"
    statement = attestation["statement"]
    assert statement["predicate"] == json.loads(release.file(".cdx.json").read_text())
    assert statement["subject"][0]["digest"]["sha256"] == image.digest.removeprefix("sha256:")
    verified = subprocess.run(
        [
            IMGCTL,
            "verify",
            f"{registry.host}/{repository}@{image.digest}",
            "--key",
            str(tmp_path / "release.pub"),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["verified"] is True
    assert [c["verified"] for c in report["signatures"]] == [True]
    # The payload carries the doc's -a version=... (read straight from the registry).
    base = f"http://{registry.host}/v2/{repository}"
    tag = image.digest.replace(":", "-") + ".sig"
    manifest = httpx.get(
        f"{base}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    ).json()
    payload = httpx.get(f"{base}/blobs/{manifest['layers'][0]['digest']}").json()
    assert payload["optional"] == {"version": VERSION}
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
