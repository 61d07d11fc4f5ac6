"""The server's repository watches: the scanner, and auto-promotion through the normal path.

An auto-promotion is an ordinary promotion (``ServerCore.promote``): authorised by the policy
file for the watches file's ``serviceIdentity``, copied digest-unchanged, audited, recorded in the
catalog and announced on Slack, exactly like one a person asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from imgctl.errors import UsageError
from imgctl.identity.verifier import Principal
from imgctl.oci.reference import canonical_registry
from imgctl.promotion.environments import Environment, Environments
from imgctl.scan.scanner import Scanner
from imgctl.scan.watches import Watch, WatchConfig
from imgctl.server.core import Caller, ServerCore, new_request_id
from imgctl.store import ScanStore, WatchState

__all__ = ["SERVICE_ISSUER", "build_scanner", "repository_path"]

log = logging.getLogger("imgctl.scan")

SERVICE_ISSUER = "imgctl:watches"  # the issuer recorded for the service identity's calls


def repository_path(watch: Watch, environment: Environment) -> str:
    """The path of ``watch``'s repository inside ``environment`` (what a promotion names)."""
    registry = environment.registry
    ref = watch.reference
    where = f"watch {watch.name!r}: autoPromote.from {environment.name!r}"
    if registry is None:
        raise UsageError(
            f"{where} has no registry", hint=f"set IMGCTL_REGISTRY_{environment.name.upper()}"
        )
    if canonical_registry(ref.registry) != canonical_registry(registry):
        raise UsageError(
            f"{where} is the registry {environment.describe()}, but the watch's image "
            f"{watch.canonical_image_name} is on {ref.registry}",
            hint="watch the image in the source environment's registry",
        )
    prefix = f"{environment.prefix}/" if environment.prefix else ""
    if not ref.repository.startswith(prefix) or ref.repository == prefix:
        raise UsageError(
            f"{where} keeps its images under {environment.describe()}/, but the watch's image "
            f"is {watch.canonical_image_name}",
            hint="watch an image under the source environment's prefix",
        )
    return ref.repository[len(prefix) :]


async def build_scanner(
    core: ServerCore, config: WatchConfig, database_url: str, environ: Mapping[str, str]
) -> Scanner:
    """The scanner for ``config``, its state in the server's database; errors name the watch."""
    environments: Environments = core.promoter.environments
    rules = [w for w in config.watches if w.auto_promote is not None]
    paths: dict[str, str] = {}
    for watch in rules:
        rule = watch.auto_promote
        assert rule is not None
        for role, name in (("from", rule.source), ("to", rule.destination)):
            if environments.get(name) is None:
                raise UsageError(
                    f"{config.source}: watch {watch.name!r}: autoPromote.{role} {name!r} is not "
                    "a configured environment",
                    hint=f"configured: {', '.join(environments.names())}",
                )
        source = environments.get(rule.source)
        assert source is not None
        paths[watch.name] = repository_path(watch, source)
    identity = config.service_identity
    if rules and identity is None:
        raise UsageError(
            f"{config.source}: autoPromote needs a serviceIdentity (subject and groups) to "
            "promote as",
            hint="add serviceIdentity: {subject: imgctl-scanner, groups: [release-bots]}",
        )
    principal = (
        None
        if identity is None
        else Principal(
            subject=identity.subject,
            email=identity.email,
            name=None,
            groups=identity.groups,
            issuer=SERVICE_ISSUER,
            expires_at=0,
        )
    )

    async def promote(watch: Watch, tag: str, digest: str) -> None:
        rule = watch.auto_promote
        assert rule is not None
        assert principal is not None
        caller = Caller(
            token=None,
            peer=f"scan:{watch.name}",
            request_id=new_request_id(),
            principal=principal,
        )
        # Tag and digest: the destination gets the tag, pointing at exactly what the scan saw
        # (not at whatever the tag was moved to since).
        await core.promote(
            caller, f"{paths[watch.name]}:{tag}@{digest}", rule.source, rule.destination
        )

    def measure(watch: Watch, state: WatchState, seconds: float) -> None:
        from imgctl.server import _metrics

        _metrics.SCANS.labels(watch.name, state.reason).inc()
        _metrics.SCAN_SECONDS.labels(watch.name).observe(seconds)
        if state.ready == "True":
            _metrics.SCAN_TAGS.labels(watch.name).set(len(state.tags))

    state = await ScanStore.open(database_url)
    return Scanner(
        config,
        state=state,
        environ=environ,
        home=Path.home(),
        promote=promote,
        on_scan=measure,
    )
