"""Machine output end to end: each command family's ``-o json`` and ``-o yaml``, parsed.

The rules (docs/architecture.md "Machine-readable output"): lowerCamelCase keys, numbers as
numbers, times as RFC 3339, and ``-o yaml`` the same document as ``-o json``. The server's
commands (promote, auth-check, audit ls, catalog ls) are checked in test_server.py, beside the
deployment they need.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..conftest import IMGCTL, PushedImage
from ..support.machine import check_document, shape, yaml_and_json
from ..support.registry import Registry

PASSWORD = "machine-output"


def runner(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """imgctl with a HOME of its own (no docker config, no cache) and the cosign password."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
    env |= {"HOME": str(home), "IMGCTL_ENABLE_IAAS_AUTH": "false", "COSIGN_PASSWORD": PASSWORD}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IMGCTL, *args], capture_output=True, text=True, env=env, timeout=180, check=False
        )

    return run


def parsed(result: subprocess.CompletedProcess[str], yaml_output: bool = False) -> Any:
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout) if yaml_output else json.loads(result.stdout)


def test_registry_commands(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    run = runner(tmp_path)
    name = repo("machine")
    image = push_image(registry, repository=name, tag="v1", layers=2)
    destination = f"{registry2.host}/{name}:v1"

    # copy: the first run copies (json), the second finds it there (yaml): one shape.
    copied = parsed(run("copy", image.ref, destination, "-o", "json"))
    counts = ["manifestsPushed", "blobsCopied", "blobsMounted", "blobsSkipped", "bytesCopied"]
    check_document(copied, ints=[f"*.{count}" for count in counts])
    assert copied[0]["bytesCopied"] > 0
    again = parsed(run("copy", image.ref, destination, "-o", "yaml"), yaml_output=True)
    assert again[0]["status"] == "unchanged"
    assert again[0]["bytesCopied"] == 0
    assert shape(again) == shape(copied)

    listed, listed_yaml = yaml_and_json(lambda out: run("ls", f"{registry.host}/{name}", "-o", out))
    assert listed == listed_yaml == {"name": f"{registry.host}/{name}", "tags": ["v1"]}
    check_document(listed)

    explained, explained_yaml = yaml_and_json(
        lambda out: run("auth", "explain", image.ref, "-o", out)
    )
    assert explained == explained_yaml
    check_document(explained)
    assert explained["tls"]["plainHttpAllowed"] is True
    assert isinstance(explained["notConsulted"], list)


def test_signing_commands(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    run = runner(tmp_path)
    image = push_image(registry, repository=repo("signed"), tag="v1", layers=1)
    prefix = str(tmp_path / "cosign")

    generated = parsed(run("generate-key-pair", "--output-key-prefix", prefix, "-o", "json"))
    check_document(generated)
    assert generated["privateKey"] == f"{prefix}.key"
    assert generated["publicKey"] == f"{prefix}.pub"
    other = str(tmp_path / "other")
    as_yaml = run("generate-key-pair", "--output-key-prefix", other, "-o", "yaml")
    assert shape(parsed(as_yaml, yaml_output=True)) == shape(generated)
    key, public = f"{prefix}.key", f"{prefix}.pub"

    signed = parsed(run("sign", image.ref, "--key", key, "-o", "json"))
    check_document(signed)
    assert signed["keyId"] == generated["keyId"]
    again = parsed(run("sign", image.ref, "--key", key, "-o", "yaml"), yaml_output=True)
    assert again == signed | {"status": "already-signed"}

    verified, verified_yaml = yaml_and_json(
        lambda out: run("verify", image.ref, "--key", public, "-o", out)
    )
    assert verified == verified_yaml
    check_document(verified)
    assert verified["verified"] is True

    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"snake_case_inside": "kept as written"}))
    attest = ["attest", image.ref, "--key", key, "--predicate", str(predicate), "--type", "custom"]
    attested = parsed(run(*attest, "-o", "json"))
    check_document(attested)
    assert attested["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"

    listing, listing_yaml = yaml_and_json(
        lambda out: run("attestations", image.ref, "--key", public, "-o", out)
    )
    assert listing == listing_yaml
    # The in-toto statement is reproduced as written (_type, its predicate's own keys).
    check_document(listing, ints=["predicateTypes.*.count"], verbatim=["statement"])
    (attestation,) = listing["attestations"]
    assert attestation["statement"]["predicate"] == {"snake_case_inside": "kept as written"}


def test_cip(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    run = runner(tmp_path)
    image = push_image(registry, repository="staging/app", tag="v1", layers=1)
    root = tmp_path / "thin"
    (root / "manifests" / "main").mkdir(parents=True)
    (root / "images" / "main").mkdir(parents=True)
    registries = [{"name": f"{registry.host}/staging", "src": True}, {"name": registry2.host}]
    (root / "manifests" / "main" / "promoter-manifest.yaml").write_text(
        json.dumps({"registries": registries})
    )
    (root / "images" / "main" / "images.yaml").write_text(
        json.dumps([{"name": "app", "dmap": {image.digest: ["v1", "tag_with_underscore"]}}])
    )
    cip = ["cip", "--thin-manifest-dir", str(root)]

    plan = run(*cip, "-o", "json")
    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    check_document(
        document,
        ints=["summary.edges", "summary.copy", "summary.addTag", "summary.tagMove", "requests"],
    )
    assert document["summary"]["copy"] == 2
    assert document["allowTagMoves"] is False
    events = [json.loads(line) for line in plan.stderr.splitlines() if line.startswith("{")]
    assert events, plan.stderr
    for event in events:
        check_document(event, times=["time"])
    assert any("failedCount" in event for event in events)
    plan_yaml = run(*cip, "-o", "yaml")
    assert plan_yaml.returncode == 0, plan_yaml.stderr
    from_yaml = yaml.safe_load(plan_yaml.stdout)
    # Only the phases' durations differ from one run to the next.
    assert shape(from_yaml) == shape(document)
    assert {k: v for k, v in from_yaml.items() if k != "phases"} == {
        k: v for k, v in document.items() if k != "phases"
    }
    # The phase events stay JSON lines on stderr: stdout is the YAML document alone.
    assert any(line.startswith('{"event": "phase"') for line in plan_yaml.stderr.splitlines())

    parsed_only, parsed_yaml = yaml_and_json(lambda out: run(*cip, "--parse-only", "-o", out))
    assert parsed_only == parsed_yaml
    check_document(parsed_only, ints=["manifests", "images", "digests", "edges", "total"])

    replication, replication_yaml = yaml_and_json(
        lambda out: run("cip", "replicate-signatures", "--thin-manifest-dir", str(root), "-o", out)
    )
    assert replication == replication_yaml
    check_document(replication, ints=["summary.groups", "summary.requests"])


def test_catalog_import_and_scan(
    registry: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    run = runner(tmp_path)
    name = repo("scanned")
    image = push_image(registry, repository=name, tag="1.2.3", layers=1)

    entries = tmp_path / "images.jsonl"
    entries.write_text(
        json.dumps({"id": image.digest, "name": f"{registry.host}/{name}", "tags": ["1.2.3"]})
        + "\n"
    )
    database = f"sqlite:///{tmp_path / 'catalog.db'}"
    imported, imported_yaml = yaml_and_json(
        lambda out: run(
            "catalog",
            "import",
            str(entries),
            "-e",
            "prod",
            "--dry-run",
            "--database-url",
            database,
            "-o",
            out,
        )
    )
    assert imported == imported_yaml
    check_document(imported, ints=["images", "new", "present"])
    assert imported["dryRun"] is True

    watches = tmp_path / "watches.yaml"
    watches.write_text(
        json.dumps(
            {
                "watches": [
                    {
                        "name": "app",
                        "image": f"{registry.host}/{name}",
                        "interval": "1m",
                        "policy": {"semver": {"range": "*"}},
                    }
                ]
            }
        )
    )
    scanned = parsed(run("scan", "--config", str(watches), "--once", "-o", "json"))
    check_document(
        scanned,
        ints=["watches.*.lastScanResult.tagCount"],
        times=["watches.*.lastScanResult.scanTime", "watches.*.conditions.*.lastTransitionTime"],
    )
    assert scanned["watches"][0]["policy"]["latestTag"] == "1.2.3"
    rescanned = run("scan", "--config", str(watches), "--once", "-o", "yaml")
    assert shape(parsed(rescanned, yaml_output=True)) == shape(scanned)
