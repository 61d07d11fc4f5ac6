"""End to end: `imgctl server --watches` auto-promotes, `GET /scan`, `imgctl scan` from the CLI."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import IMGCTL, PushedImage
from ..support.deployment import AUDIENCE, OPS, SECRET, server_env, start_server, stop_process
from ..support.idp import start_idp
from ..support.registry import Registry
from ..support.sshkeys import keygen

INTERVAL = 3.0  # seconds between scans of the auto-promoted watch


@dataclass
class ScanDeployment:
    dev: Registry
    prod: Registry
    http: str
    database: str
    repository: str
    first: PushedImage
    log: Path

    def audit_count(self, **filters: str) -> int:
        import asyncio

        from imgctl.store import AuditStore

        async def count() -> int:
            async with await AuditStore.open(self.database) as store:
                return await store.count(**filters)

        return asyncio.run(count())

    def scan(self) -> dict[str, dict[str, Any]]:
        answer = httpx.get(f"http://{self.http}/scan", timeout=10)
        assert answer.status_code == 200, answer.text
        return {w["name"]: w for w in answer.json()["watches"]}


@pytest.fixture(scope="module")
def scan_deployment(
    registries: Callable[..., Registry],
    htpasswd_registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
    layouts: Callable[..., Any],
) -> Iterator[ScanDeployment]:
    from ..support.skopeo import push_layout

    root = tmp_path_factory.mktemp("scan-deployment")
    dev, prod = registries(), registries()
    repository = "shop/web"
    built = layouts(tag="1.0.0", layers=1)
    push_layout(built.oci_ref, f"{dev.host}/{repository}:1.0.0")
    first = PushedImage(f"{dev.host}/{repository}:1.0.0", built)
    key = keygen(root / "keys", "ed25519", name="alice")
    with contextlib.ExitStack() as cleanup:
        idp = start_idp(
            IMGCTL,
            root / "idp",
            {"alice": {"keys": [key.line], "email": "alice@example.com", "groups": [OPS]}},
            audiences=[AUDIENCE],
            secret=SECRET,
        )
        cleanup.callback(idp.stop)
        policy = root / "policy.yaml"
        policy.write_text(f"destinations:\n  prod: [{OPS}]\n  vault: [security-team]\n")
        watches = root / "watches.yaml"
        watches.write_text(
            f"""
serviceIdentity:
  subject: imgctl-scanner
  email: scanner@example.com
  groups: ["{OPS}"]
watches:
  - name: web
    image: {dev.host}/{repository}
    interval: {INTERVAL:g}s
    policy:
      semver:
        range: ">=1.0.0"
    autoPromote: {{from: dev, to: prod}}
  - name: web-to-vault
    image: {dev.host}/{repository}
    interval: 1m
    policy:
      semver:
        range: ">=1.0.0"
    autoPromote: {{from: dev, to: vault}}
  - name: locked
    image: {htpasswd_registry.host}/private/app
    interval: 1m
  - name: paused
    image: {dev.host}/{repository}
    interval: 1m
    suspend: true
"""
        )
        database = f"sqlite:///{root / 'state' / 'imgctl.db'}"
        env = server_env(idp, dev, prod) | {
            "IMGCTL_DATABASE_URL": database,
            "IMGCTL_REGISTRY_VAULT": f"{prod.host}/vault",
        }
        process, _, http, log = start_server(
            root, env, "--policy-file", str(policy), "--watches", str(watches)
        )
        cleanup.callback(stop_process, process)
        yield ScanDeployment(dev, prod, http, database, repository, first, log)


def wait_for(condition: Callable[[], bool], seconds: float, what: str, log: Path) -> float:
    """Poll ``condition`` until true; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what} did not happen in {seconds} s:\n{log.read_text()}")
        time.sleep(0.1)
    return time.monotonic() - started


def test_newer_tag_in_dev_reaches_prod_within_two_scans(
    scan_deployment: ScanDeployment, layouts: Callable[..., Any]
) -> None:
    from ..support.skopeo import digest_of, push_layout

    d = scan_deployment
    prod_repository = f"release/{d.repository}"
    # At start-up the latest tag (1.0.0) is promoted once.
    wait_for(lambda: d.prod.has_tag(prod_repository, "1.0.0"), 30, "first promotion", d.log)
    newer = layouts(tag="1.1.0", layers=1)
    pushed_at = datetime.now(UTC)
    push_layout(newer.oci_ref, f"{d.dev.host}/{d.repository}:1.1.0")
    # Counted in scans, not seconds (a loaded machine stretches seconds, not scans): every scan
    # of the watch finished after the push, up to the first one that saw 1.1.0.
    scans: dict[datetime, bool] = {}

    def note_scan() -> None:
        result = d.scan()["web"]["lastScanResult"]
        scanned = datetime.fromisoformat(result["scanTime"])
        if scanned > pushed_at:
            scans[scanned] = "1.1.0" in result["latestTags"]

    def promoted() -> bool:
        note_scan()
        return d.prod.has_tag(prod_repository, "1.1.0")

    def seen() -> bool:
        note_scan()
        return any(scans.values())

    # The bounds only stop a test that would wait forever.
    wait_for(promoted, 60 * INTERVAL, "1.1.0 in prod", d.log)
    wait_for(seen, 60 * INTERVAL, "a scan listing 1.1.0", d.log)
    first = min(t for t, saw in scans.items() if saw)
    before = sorted(t for t in scans if t <= first)
    assert len(before) <= 2, f"1.1.0 was first seen by scan {len(before)} after the push: {before}"
    assert digest_of(f"{d.prod.host}/{prod_repository}:1.1.0") == newer.digest
    # A tag the policy does not pick (a pre-release) is never promoted.
    beta = layouts(tag="2.0.0-rc.1", layers=1)
    push_layout(beta.oci_ref, f"{d.dev.host}/{d.repository}:2.0.0-rc.1")

    def web_scanned_beta() -> bool:
        web = d.scan()["web"]
        return "2.0.0-rc.1" in web["lastScanResult"]["latestTags"]

    wait_for(web_scanned_beta, 4 * INTERVAL, "a scan seeing 2.0.0-rc.1", d.log)
    assert not d.prod.has_tag(prod_repository, "2.0.0-rc.1")

    # Each promotion went the normal way: one audit row, as the service identity ...
    assert d.audit_count(action="promote", result="succeeded", subject="imgctl-scanner") == 2
    assert d.audit_count(destination_env="prod", email="scanner@example.com") == 2
    # ... and a catalog entry that the admission webhook trusts.
    listed = httpx.get(
        f"http://{d.http}/images", params={"environment": "prod", "digest": newer.digest}
    )
    [entry] = listed.json()
    assert entry["name"] == f"{d.prod.host}/{prod_repository}"
    assert entry["tags"] == ["1.1.0"]
    assert entry["promoted_by"] == "scanner@example.com"

    web = d.scan()["web"]
    assert web["policy"]["latestTag"] == "1.1.0"
    assert web["policy"]["latestDigest"] == newer.digest
    assert web["autoPromote"] == {
        "from": "dev",
        "to": "prod",
        "lastPromotedTag": "1.1.0",
        "lastPromotedDigest": newer.digest,
    }


def test_auto_promotion_is_authorised_like_any_other(scan_deployment: ScanDeployment) -> None:
    d = scan_deployment

    def refused() -> bool:
        return (
            "auto-promotion to vault failed" in d.scan()["web-to-vault"]["conditions"][0]["message"]
        )

    wait_for(refused, 30, "the refused auto-promotion", d.log)
    status = d.scan()["web-to-vault"]
    assert "needs one of the groups security-team" in status["conditions"][0]["message"]
    assert status["autoPromote"]["lastPromotedTag"] is None
    assert not d.prod.has_tag(f"vault/{d.repository}", "1.0.0")
    assert d.audit_count(action="promote", result="denied", subject="imgctl-scanner") >= 1


def test_scan_endpoint_and_status_command(scan_deployment: ScanDeployment) -> None:
    d = scan_deployment

    def locked_failed() -> bool:
        return d.scan()["locked"]["conditions"][0]["status"] == "False"

    wait_for(locked_failed, 30, "the locked watch's first scan", d.log)
    watches = d.scan()
    locked = watches["locked"]["conditions"][0]
    assert locked["reason"] == "AuthenticationFailed"
    assert watches["web"]["conditions"][0]["status"] == "True"
    assert watches["paused"]["conditions"][0]["reason"] == "Suspended"
    assert watches["paused"]["lastScanResult"] is None

    metrics = httpx.get(f"http://{d.http}/metrics", timeout=10).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("imgctl_scan")
    }
    assert samples['imgctl_scans_total{reason="Succeeded",watch="web"}'] >= 1
    assert samples['imgctl_scans_total{reason="AuthenticationFailed",watch="locked"}'] >= 1
    assert samples['imgctl_scan_tags{watch="web"}'] == watches["web"]["lastScanResult"]["tagCount"]
    assert samples['imgctl_scan_duration_seconds_count{watch="web"}'] >= 1
    assert not any('watch="paused"' in name for name in samples)  # suspended: never scanned

    table = subprocess.run(
        [IMGCTL, "scan", "status", "--catalog-url", f"http://{d.http}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "IMAGE", "READY", "TAGS", "LATEST", "DIGEST", "LAST", "SCAN"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["web"][2] == "True"
    assert by_name["locked"][2] == "False"
    assert by_name["paused"][2] == "Suspended"
    assert "locked: AuthenticationFailed" in table.stderr
    as_json = subprocess.run(
        [IMGCTL, "scan", "status", "--catalog-url", f"http://{d.http}", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_json.returncode == 0, as_json.stderr
    names = {w["name"] for w in json.loads(as_json.stdout)["watches"]}
    assert names == {"web", "web-to-vault", "locked", "paused"}


def run_scan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGCTL, "scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "IMGCTL_ENABLE_IAAS_AUTH": "false"},
    )


def test_scan_once_from_the_command_line(
    registry: Registry,
    htpasswd_registry: Registry,
    push_image: Callable[..., PushedImage],
    tmp_path: Path,
) -> None:
    pushed = push_image(registry, tag="v1.2.0")
    name = pushed.ref.rsplit(":", 1)[0]
    good = tmp_path / "good.yaml"
    good.write_text(
        f"watches:\n  - name: app\n    image: {name}\n    interval: 5m\n"
        f"    policy: {{semver: {{range: '^1.0'}}}}\n"
    )
    result = run_scan("--config", str(good), "--once", "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [status] = json.loads(result.stdout)["watches"]
    assert status["policy"]["latestTag"] == "v1.2.0"
    assert status["policy"]["latestDigest"] == pushed.digest
    assert status["lastScanResult"]["tagCount"] == 1

    table = run_scan("--config", str(good), "--once", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[:5] == ["app", name, "True", "1", "v1.2.0"]

    failing = tmp_path / "failing.yaml"
    failing.write_text(
        good.read_text()
        + f"  - name: locked\n    image: {htpasswd_registry.host}/x/y\n    interval: 5m\n"
    )
    result = run_scan("--config", str(failing), "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "locked: AuthenticationFailed" in result.stderr

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        "watches:\n  - name: app\n    image: https://ghcr.io/a/b\n    interval: 5m\n"
    )
    result = run_scan("--config", str(invalid), "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert "should not start with URL scheme; remove 'https://'" in result.stderr
    assert "Traceback" not in result.stderr


def test_scan_keeps_scanning_until_interrupted_and_logs_one_line_per_scan(
    registry: Registry, push_image: Callable[..., PushedImage], tmp_path: Path
) -> None:
    pushed = push_image(registry, tag="1.0.0")
    watches = tmp_path / "watches.yaml"
    watches.write_text(
        f"watches:\n  - name: app\n    image: {pushed.ref.rsplit(':', 1)[0]}\n"
        "    interval: 1s\n    policy: {semver: {range: '*'}}\n"
    )
    log = tmp_path / "scan.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [IMGCTL, "scan", "--config", str(watches)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "IMGCTL_ENABLE_IAAS_AUTH": "false",
            },
        )
        try:
            wait_for(lambda: log.read_text().count("scan app: ") >= 3, 30, "three scans", log)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=30)
    assert code == 130  # Ctrl-C, after a clean stop (README "Exit codes")
    lines = log.read_text().splitlines()
    assert lines.pop() == "imgctl: interrupted"
    scans = [line for line in lines if "scan app: successful scan: found 1 tags" in line]
    assert len(scans) >= 3
    assert all(
        line.endswith(f"latest image tag for {pushed.ref.rsplit(':', 1)[0]} is 1.0.0")
        for line in scans
    )
    # Only imgctl's own lines: no line per HTTP request, no library start-up chatter.
    assert len(lines) == len(scans), lines


def environments(**registries: str) -> Any:
    from imgctl.promotion.environments import Environments

    return Environments.from_environment(
        {f"IMGCTL_REGISTRY_{name.upper()}": value for name, value in registries.items()}
    )


@pytest.mark.parametrize(
    ("image", "source", "expected"),
    [
        ("dev.example.com/shop/web", "dev.example.com", "shop/web"),
        ("dev.example.com/teams/shop/web", "dev.example.com/teams", "shop/web"),
        ("dev.example.com/other/web", "dev.example.com/teams", "under dev.example.com/teams/"),
        ("prod.example.com/shop/web", "dev.example.com", "is on prod.example.com"),
        ("dev.example.com/teams", "dev.example.com/teams", "under dev.example.com/teams/"),
    ],
)
def test_auto_promotion_names_the_repository_inside_the_source(
    image: str, source: str, expected: str
) -> None:
    from imgctl.errors import UsageError
    from imgctl.scan.watches import parse_watches
    from imgctl.server._scan import repository_path

    [watch] = parse_watches({"watches": [{"name": "w", "image": image, "interval": "1m"}]}).watches
    [environment] = list(environments(dev=source))
    if "/" in expected and " " not in expected:
        assert repository_path(watch, environment) == expected
    else:
        with pytest.raises(UsageError, match=expected.replace(".", r"\.")):
            repository_path(watch, environment)


def test_server_refuses_auto_promotion_it_cannot_run(
    registries: Callable[..., Registry], tmp_path: Path
) -> None:
    import asyncio
    from types import SimpleNamespace

    from imgctl.errors import UsageError
    from imgctl.scan.watches import parse_watches
    from imgctl.server._scan import build_scanner

    core: Any = SimpleNamespace(
        promoter=SimpleNamespace(
            environments=environments(dev="dev.example.com", prod="p.example.com")
        )
    )
    rule = {"name": "w", "image": "dev.example.com/web", "interval": "1m"}
    rule |= {"policy": {"semver": {"range": "*"}}}
    cases = [
        ({"autoPromote": {"from": "staging", "to": "prod"}}, {}, "autoPromote.from 'staging'"),
        ({"autoPromote": {"from": "dev", "to": "qa"}}, {}, "autoPromote.to 'qa'"),
        ({"autoPromote": {"from": "dev", "to": "prod"}}, None, "needs a serviceIdentity"),
    ]
    for extra, identity, message in cases:
        top: dict[str, Any] = {"watches": [rule | extra]}
        if identity is not None:
            top["serviceIdentity"] = {"subject": "bot", "groups": ["ops"]}
        config = parse_watches(top, source="w.yaml")
        with pytest.raises(UsageError, match=message):
            asyncio.run(build_scanner(core, config, f"sqlite:///{tmp_path}/db", {}))
