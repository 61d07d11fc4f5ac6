"""The server's repository watches: the scanner, and auto-promotion through the normal path.

An auto-promotion is an ordinary promotion (``ServerCore.promote``): authorised by the policy
file for the watches file's ``serviceIdentity``, copied digest-unchanged, audited, recorded in the
catalog and announced on Slack, exactly like one a person asked for.

The watches file is followed while the server runs (:class:`~imgctl.scan.reload.WatchesFile`):
a new version must also pass :func:`check_auto_promotions` to be used, and auto-promotions run
as the ``serviceIdentity`` of the version in force.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from imgctl.errors import UsageError
from imgctl.identity.verifier import Principal
from imgctl.oci.reference import canonical_registry
from imgctl.promotion.environments import Environment, Environments
from imgctl.scan.reload import WatchesFile
from imgctl.scan.scanner import Scanner
from imgctl.scan.watches import Watch, WatchConfig
from imgctl.server.core import Caller, ServerCore, new_request_id
from imgctl.store import ScanStore, WatchState

__all__ = [
    "SERVICE_ISSUER",
    "AutoPromotions",
    "build_scanner",
    "check_auto_promotions",
    "repository_path",
]

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


def check_auto_promotions(config: WatchConfig, environments: Environments) -> None:
    """UsageError unless every autoPromote of ``config`` can run here; names file and line."""
    rules = [w for w in config.watches if w.auto_promote is not None]
    for watch in rules:
        rule = watch.auto_promote
        assert rule is not None
        where = f"{config.where(watch.name)}watch {watch.name!r}"
        for role, name in (("from", rule.source), ("to", rule.destination)):
            if environments.get(name) is None:
                raise UsageError(
                    f"{where}: autoPromote.{role} {name!r} is not a configured environment",
                    hint=f"configured: {', '.join(environments.names())}",
                )
        source = environments.get(rule.source)
        assert source is not None
        try:
            repository_path(watch, source)
        except UsageError as exc:
            raise UsageError(f"{config.where(watch.name)}{exc.message}", hint=exc.hint) from None
    if rules and config.service_identity is None:
        raise UsageError(
            f"{config.source}: autoPromote needs a serviceIdentity (subject and groups) to "
            "promote as",
            hint="add serviceIdentity: {subject: imgctl-scanner, groups: [release-bots]}",
        )


class AutoPromotions:
    """Auto-promotions through ``core.promote``, as the service identity of the file in force."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core
        self._principal: Principal | None = None

    def use(self, config: WatchConfig) -> None:
        """Promote as ``config``'s serviceIdentity from now on (a reload calls this)."""
        identity = config.service_identity
        self._principal = (
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

    async def promote(self, watch: Watch, tag: str, digest: str) -> None:
        """Promote ``tag@digest`` of ``watch`` along its autoPromote rule."""
        rule = watch.auto_promote
        assert rule is not None
        principal = self._principal
        if principal is None:  # the file in force has no serviceIdentity any more
            raise UsageError("the watches file in force has no serviceIdentity to promote as")
        source = self._core.promoter.environments.get(rule.source)
        if source is None:  # checked when the file loaded; the environments do not change
            raise UsageError(f"autoPromote.from {rule.source!r} is not a configured environment")
        caller = Caller(
            token=None,
            peer=f"scan:{watch.name}",
            request_id=new_request_id(),
            principal=principal,
        )
        # Tag and digest: the destination gets the tag, pointing at exactly what the scan saw
        # (not at whatever the tag was moved to since).
        await self._core.promote(
            caller,
            f"{repository_path(watch, source)}:{tag}@{digest}",
            rule.source,
            rule.destination,
        )


def measure(watch: Watch, state: WatchState, seconds: float, *, current: bool = True) -> None:
    """Count a finished scan in the server's metrics (``current``: the watch is still watched)."""
    from imgctl.server import _metrics

    _metrics.SCANS.labels(watch.name, state.reason).inc()
    _metrics.SCAN_SECONDS.labels(watch.name).observe(seconds)
    if state.ready == "True" and current:
        _metrics.scan_tags(watch.name, len(state.tags))


async def build_scanner(
    core: ServerCore,
    config: WatchConfig | WatchesFile,
    database_url: str,
    environ: Mapping[str, str],
) -> Scanner:
    """The scanner for ``config`` (followed when it is a file), its state in the database."""
    from imgctl.server import _metrics

    environments: Environments = core.promoter.environments
    watches_file = config if isinstance(config, WatchesFile) else None
    current = config.config if isinstance(config, WatchesFile) else config
    check_auto_promotions(current, environments)
    promotions = AutoPromotions(core)
    promotions.use(current)

    def reloaded(new: WatchConfig) -> None:
        promotions.use(new)
        _metrics.forget_watches({watch.name for watch in new.watches})

    def measured(watch: Watch, state: WatchState, seconds: float) -> None:
        # A scan that was running when its watch left the file must not bring its gauge back.
        measure(watch, state, seconds, current=scanner.config.get(watch.name) is not None)

    if watches_file is not None:
        _metrics.follow_watches_file(watches_file)
    state = await ScanStore.open(database_url)
    scanner = Scanner(
        current,
        state=state,
        environ=environ,
        home=Path.home(),
        promote=promotions.promote,
        on_scan=measured,
        on_config=reloaded,
        watches_file=watches_file,
    )
    return scanner
