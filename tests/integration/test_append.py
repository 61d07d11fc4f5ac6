"""``imgctl append`` against a real docker-registry, read back by skopeo (an independent client).

The digest imgctl prints must be the one skopeo computes from the manifest it pulls; the config
and the layers skopeo copies out must be what the tarballs held.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from ..conftest import IMGCTL, PushedImage
from ..support.layout import BuiltImage
from ..support.registry import Registry
from ..support.skopeo import digest_of, inspect_raw, skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def tarball(path: Path, files: dict[str, bytes]) -> bytes:
    """Write a plain tar of ``files`` to ``path``; return its bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(raw.getvalue())
    return raw.getvalue()


def append(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "append", *args], capture_output=True, text=True, timeout=120, check=False
    )


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_of(ref: str) -> dict[str, object]:
    config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", ref).stdout)
    assert isinstance(config, dict)
    return config


def pulled_files(ref: str, directory: Path) -> dict[str, bytes]:
    """Every file of every layer, as skopeo copies the image out (all blobs must be there)."""
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"dir:{directory}")
    manifest = json.loads((directory / "manifest.json").read_bytes())
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        blob = (directory / layer["digest"].split(":", 1)[1]).read_bytes()
        assert sha256(blob) == layer["digest"]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            for member in tar:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return files


def test_an_image_from_scratch(
    registry: Registry, repo: Callable[[str], str], tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo('append')}"
    layer = tarball(tmp_path / "layer.tar", {"hello.txt": b"hello\n"})
    result = append("-f", str(tmp_path / "layer.tar"), "-t", f"{name}:v1")
    assert result.returncode == 0, result.stderr
    # crane's output: the repository and the digest of what was pushed.
    printed = result.stdout.strip()
    assert printed == f"{name}@{digest_of(f'{name}:v1')}"

    manifest = json.loads(inspect_raw(f"{name}:v1"))
    assert manifest["mediaType"] == OCI_MANIFEST
    assert [entry["mediaType"] for entry in manifest["layers"]] == [OCI_LAYER_GZIP]
    config = config_of(f"docker://{name}:v1")
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(layer)]}
    assert config["history"] == [{"created_by": "imgctl append", "comment": "layer.tar"}]
    assert pulled_files(f"{name}:v1", tmp_path / "out") == {"hello.txt": b"hello\n"}

    # The same tarball gives the same image: nothing in it is a timestamp.
    again = append("-f", str(tmp_path / "layer.tar"), "-t", f"{name}:again")
    assert again.stdout.strip() == printed


def test_base_keeps_its_layers_and_config(
    registry: Registry, repo: Callable[[str], str], tmp_path: Path
) -> None:
    base = f"{registry.host}/{repo('base')}:v1"
    tarball(tmp_path / "base.tar", {"bin/app": b"#!/bin/sh\necho app\n"})
    assert append("-f", str(tmp_path / "base.tar"), "-t", base).returncode == 0
    base_manifest = json.loads(inspect_raw(base))
    base_config = config_of(f"docker://{base}")

    # Into another repository: the base's layer must be brought there too.
    target = f"{registry.host}/{repo('child')}:v2"
    second = tarball(tmp_path / "conf.tar", {"etc/app.conf": b"level=debug\n"})
    third = tmp_path / "more.tar.gz"
    third.write_bytes(gzip.compress(tarball(tmp_path / "more.tar", {"README": b"more\n"})))
    result = append(
        "--base", base, "-f", str(tmp_path / "conf.tar"), "-f", str(third), "-t", target
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("@" + digest_of(target))

    manifest = json.loads(inspect_raw(target))
    layers = manifest["layers"]
    assert len(layers) == 3
    assert layers[0] == base_manifest["layers"][0]
    # A gzipped tarball is pushed as it is.
    assert layers[2]["digest"] == sha256(third.read_bytes())
    config = config_of(f"docker://{target}")
    base_rootfs = base_config["rootfs"]
    assert isinstance(base_rootfs, dict)
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [
            *base_rootfs["diff_ids"],
            sha256(second),
            sha256(gzip.decompress(third.read_bytes())),
        ],
    }
    history = config["history"]
    assert isinstance(history, list)
    assert [entry["comment"] for entry in history] == ["base.tar", "conf.tar", "more.tar.gz"]
    assert pulled_files(target, tmp_path / "out") == {
        "bin/app": b"#!/bin/sh\necho app\n",
        "etc/app.conf": b"level=debug\n",
        "README": b"more\n",
    }
    # The base is unchanged.
    assert json.loads(inspect_raw(base)) == base_manifest


def test_platform(registry: Registry, repo: Callable[[str], str], tmp_path: Path) -> None:
    name = f"{registry.host}/{repo('arm')}:v1"
    tarball(tmp_path / "layer.tar", {"a": b"a"})
    result = append("-f", str(tmp_path / "layer.tar"), "-t", name, "--platform", "linux/arm64/v8")
    assert result.returncode == 0, result.stderr
    config = config_of(f"docker://{name}")
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")


def test_a_file_that_is_not_a_tar_archive(
    registry: Registry, repo: Callable[[str], str], tmp_path: Path
) -> None:
    name = f"{registry.host}/{repo('bad')}:v1"
    good = tmp_path / "good.tar"
    tarball(good, {"a": b"a"})
    cases = {
        "text.tar": b"this is not a tar archive\n" * 40,
        "empty.tar": b"",
        "truncated.tar.gz": gzip.compress(good.read_bytes())[:30],
        "gzipped-text.tar.gz": gzip.compress(b"not a tar either\n" * 40),
    }
    for file_name, data in cases.items():
        (tmp_path / file_name).write_bytes(data)
        # The good layer first: nothing is pushed until every layer has been read.
        result = append("-f", str(good), "-f", str(tmp_path / file_name), "-t", name)
        assert result.returncode == 2, (file_name, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"imgctl: error: layer {tmp_path / file_name}"), lines
        assert "tar archive" in lines[0] or "gzip" in lines[0], lines
    listed = subprocess.run(
        [IMGCTL, "ls", name.rsplit(":", 1)[0]], capture_output=True, text=True, check=False
    )
    assert listed.returncode != 0  # the repository was never created


def test_a_multi_platform_base_gives_the_chosen_platform(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    base = push_image(registry)  # an index over linux/amd64 and linux/arm64
    arm = json.loads(
        skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
            f"docker://{base.ref}",
        ).stdout
    )
    chosen = next(
        entry for entry in arm["manifests"] if entry["platform"]["architecture"] == "arm64"
    )
    arm_manifest = json.loads(inspect_raw(f"{base.ref.rsplit(':', 1)[0]}@{chosen['digest']}"))
    target = f"{registry.host}/{repo('arm-child')}:v1"
    tarball(tmp_path / "layer.tar", {"a": b"a"})
    result = append(
        "-b",
        base.ref,
        "--platform",
        "linux/arm64",
        "-f",
        str(tmp_path / "layer.tar"),
        "-t",
        target,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(inspect_raw(target))
    assert manifest["layers"][:-1] == arm_manifest["layers"]
    assert config_of(f"docker://{target}")["architecture"] == "arm64"

    missing = append(
        "-b",
        base.ref,
        "--platform",
        "linux/s390x",
        "-f",
        str(tmp_path / "layer.tar"),
        "-t",
        target,
    )
    assert missing.returncode == 2
    assert "has no linux/s390x image" in missing.stderr


def test_a_docker_base_stays_a_docker_image(
    registry: Registry,
    layouts: Callable[..., BuiltImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    built = layouts(tag="v1", platforms=None)
    base = f"{registry.host}/{repo('docker')}:v1"
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", built.oci_ref, f"docker://{base}")
    assert json.loads(inspect_raw(base))["mediaType"] == DOCKER_MANIFEST
    target = f"{registry.host}/{repo('docker-child')}:v2"
    tarball(tmp_path / "layer.tar", {"a": b"a"})
    result = append("-b", base, "-f", str(tmp_path / "layer.tar"), "-t", target)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(inspect_raw(target))
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {DOCKER_LAYER}
    assert result.stdout.strip().endswith("@" + digest_of(target))


def test_a_base_that_does_not_exist(
    registry: Registry, repo: Callable[[str], str], tmp_path: Path
) -> None:
    tarball(tmp_path / "layer.tar", {"a": b"a"})
    base = f"{registry.host}/{repo('nothing')}:v1"
    result = append("-b", base, "-f", str(tmp_path / "layer.tar"), "-t", f"{base}-child")
    # A registry's failure, as for imgctl copy: exit 1, one line naming what is missing.
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("imgctl: error: ")
    assert "not found" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def _big_tarball(path: Path, size: int) -> None:
    """A plain tar holding one file of ``size`` bytes that gzip cannot shrink, written in pieces."""
    from ..support.bigimage import layer_pieces, random_blocks

    content = path.with_suffix(".bin")
    with content.open("wb") as out:
        for piece in layer_pieces(size, random_blocks(8)):
            out.write(piece)
    with tarfile.open(path, mode="w") as tar:
        tar.add(content, arcname="big.bin")
    content.unlink()


def test_a_big_layer_is_appended_in_bounded_memory(
    registry: Registry, repo: Callable[[str], str], tmp_path: Path
) -> None:
    # The layer was read whole, then gzipped in memory: a 96 MiB tarball took about twice that
    # in RSS. Judged against a one-file append in the same run, not against a constant.
    from ..support.bigimage import run_watching_rss

    size = 96 << 20
    big, small = tmp_path / "big.tar", tmp_path / "small.tar"
    _big_tarball(big, size)
    tarball(small, {"hello.txt": b"hello\n"})
    name = f"{registry.host}/{repo('append-big')}"
    runs = {}
    for label, path in (("small", small), ("big", big)):
        run = run_watching_rss([IMGCTL, "append", "-f", str(path), "-t", f"{name}:{label}"])
        assert run.returncode == 0, run.stderr.decode()
        runs[label] = run
    growth = runs["big"].peak_mib - runs["small"].peak_mib
    peaks = {label: f"{run.peak_mib:.0f} MiB" for label, run in runs.items()}
    print(f"append peak RSS: {peaks}")
    assert growth < 24, f"a 96 MiB layer grew the peak RSS by {growth:.0f} MiB"

    # What was pushed is what gzip.compress(level 9, mtime 0) gives (the in-memory way, which
    # imgctl demo uses): the same tarball, the same digest, however it is read.
    manifest = json.loads(inspect_raw(f"{name}:big"))
    data = big.read_bytes()
    assert manifest["layers"][0]["digest"] == sha256(gzip.compress(data, compresslevel=9, mtime=0))
    assert config_of(f"docker://{name}:big")["rootfs"] == {
        "type": "layers",
        "diff_ids": [sha256(data)],
    }
    assert runs["big"].stdout.decode().strip() == f"{name}@{digest_of(f'{name}:big')}"
