"""``imgctl server``: assemble everything from the environment and serve gRPC and HTTP.

Configuration is the seed's environment variables (``OIDC_*``, ``IMGCTL_REGISTRY_<NAME>``,
``IMGCTL_SPA_<NAME>``, ``IMGCTL_DEFAULT_SOURCE``, ``IMGCTL_ECR_REGION``,
``IMGCTL_SLACK_WEBHOOK_URL``) plus ``IMGCTL_DATABASE_URL`` and the flags; the files and the
state directory are a flag, else a variable (:meth:`ServerSettings.resolve`).
On SIGTERM/SIGINT the server stops taking calls, lets running promotions finish (up to the
grace period), then closes the notifier and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgctl._internal.bounds import MAX_GRPC_MESSAGE_BYTES
from imgctl._internal.hosts import is_loopback
from imgctl._internal.listen import bound_address, listen, split_address
from imgctl.config import setting
from imgctl.errors import UsageError

if TYPE_CHECKING:
    from imgctl._internal.startup import StartupLog
    from imgctl.authn import Keychain
    from imgctl.catalog.admission import Exemptions
    from imgctl.catalog.signatures import SignatureRule
    from imgctl.identity.verifier import VerifierSettings
    from imgctl.promotion.environments import Environments, Policy
    from imgctl.promotion.provenance import ProvenanceGate
    from imgctl.remote import ClientOptions
    from imgctl.scan.reload import WatchesFile
    from imgctl.trust import Signer, TrustPolicy

__all__ = [
    "ServerConfiguration",
    "ServerSettings",
    "build_core",
    "check_configuration",
    "run_server",
    "serve_catalog",
]

log = logging.getLogger("imgctl.server")


@dataclass(frozen=True)
class ServerSettings:
    """The settings of ``imgctl server`` (and ``imgctl catalog serve``), in one object.

    Built from the flags (None: not given); :meth:`resolve` fills what no flag gave from the
    environment, then the built-in defaults.
    """

    bind_address: str = "0.0.0.0:9999"
    http_address: str | None = "0.0.0.0:8080"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    policy_file: Path | None = None
    state_dir: Path | None = None
    grace: float = 60.0
    # Sign every promoted image with this key (kpromo's sign phase); IMGCTL_SIGN_KEY.
    sign_key: str | None = None
    # Signatures made at once across promotions; IMGCTL_MAX_SIGNATURE_OPS, default 50.
    max_signature_ops: int | None = None
    tokens_file: Path | None = None
    watches_file: Path | None = None
    allow_anonymous_catalog_writes: bool = False
    # --require-signature ENV=KEYREF items; none: IMGCTL_ADMISSION_REQUIRE_SIGNATURE, read with
    # the keys by imgctl.catalog.signatures.
    require_signature: tuple[str, ...] = ()
    # --require-attestation ENV=KEYREF items; none: IMGCTL_ADMISSION_REQUIRE_ATTESTATION (same).
    require_attestation: tuple[str, ...] = ()
    # --public-pages (IMGCTL_PUBLIC_PAGES, read by Typer): the web pages need no token.
    public_pages: bool = False

    def resolve(self, environ: Mapping[str, str]) -> ServerSettings:
        """These settings with every file and directory no flag gave taken from ``environ``.

        The one place that reads IMGCTL_POLICY_FILE, IMGCTL_TOKENS_FILE, IMGCTL_WATCHES_FILE,
        IMGCTL_STATE_DIR, IMGCTL_SIGN_KEY and IMGCTL_MAX_SIGNATURE_OPS (flag > variable >
        built-in).
        """
        from imgctl.promotion.signing import DEFAULT_SIGNATURE_OPS

        base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return replace(
            self,
            policy_file=setting(self.policy_file, "IMGCTL_POLICY_FILE", environ, parse=Path),
            tokens_file=setting(self.tokens_file, "IMGCTL_TOKENS_FILE", environ, parse=Path),
            watches_file=setting(self.watches_file, "IMGCTL_WATCHES_FILE", environ, parse=Path),
            sign_key=setting(self.sign_key, "IMGCTL_SIGN_KEY", environ, parse=str),
            max_signature_ops=_signature_ops(
                setting(
                    self.max_signature_ops,
                    "IMGCTL_MAX_SIGNATURE_OPS",
                    environ,
                    parse=_integer("IMGCTL_MAX_SIGNATURE_OPS"),
                    default=DEFAULT_SIGNATURE_OPS,
                )
            ),
            state_dir=setting(
                self.state_dir,
                "IMGCTL_STATE_DIR",
                environ,
                parse=Path,
                default=Path(base) / "imgctl",
            ),
        )


@dataclass(frozen=True)
class ServerConfiguration:
    """Everything ``imgctl server`` reads at start, checked before a socket or database opens."""

    settings: ServerSettings
    environ: Mapping[str, str]
    oidc: VerifierSettings
    environments: Environments
    default_source: str | None
    policy: Policy | None
    signer: Signer | None
    trust: dict[str, TrustPolicy]
    provenance: dict[str, ProvenanceGate]
    lease: float
    registry: tuple[Keychain, ClientOptions]
    database_url: str
    slack_webhook: bool
    tokens: object
    anonymous_writes: bool
    exemptions: Exemptions
    signatures: SignatureRule | None
    pipeline: tuple[str, ...]
    watches: WatchesFile | None
    tls: tuple[bytes, bytes, bytes | None] | None


SERVER_HELP = "imgctl server --help lists the environment variables it reads"


def check_configuration(
    settings: ServerSettings, environ: Mapping[str, str]
) -> ServerConfiguration:
    """Every flag, variable and file of ``imgctl server``, checked and loaded; nothing opened.

    Every problem is collected: one is raised as it is, several as one ConfigurationError
    listing each (the variable or flag, what is wrong, what to do), so that one run names all
    there is to fix. No socket is bound and no database opened here.
    """
    from imgctl._internal.startup import log_level
    from imgctl.config import Problems
    from imgctl.identity.verifier import VerifierSettings
    from imgctl.promotion.environments import Environments, load_policy
    from imgctl.server._intents import lease_from_environment
    from imgctl.server.notify import notifier_from_environment
    from imgctl.store import database_url

    problems = Problems()
    problems.check(lambda: log_level(dict(environ)))
    resolved = problems.check(lambda: settings.resolve(environ))
    if resolved is None:
        # Only IMGCTL_MAX_SIGNATURE_OPS can fail to resolve: go on with its default.
        resolved = replace(settings, max_signature_ops=50).resolve(environ)
    settings = resolved
    problems.check(lambda: split_address("--bind-address", settings.bind_address, "0.0.0.0:9999"))
    if settings.http_address:
        http = settings.http_address
        problems.check(lambda: split_address("--http-address", http))
    tls = problems.check(lambda: _tls_files(settings))
    oidc = problems.check(lambda: VerifierSettings.from_environment(environ))
    environments = problems.check(lambda: Environments.from_environment(environ))
    default_source = environ.get("IMGCTL_DEFAULT_SOURCE") or None
    policy = None
    if environments is not None:
        if not len(environments):
            problems.add(
                UsageError(
                    "no environments configured",
                    hint="set IMGCTL_REGISTRY_<NAME> (and/or IMGCTL_SPA_<NAME>) for each "
                    "environment",
                )
            )
        elif default_source and environments.get(default_source) is None:
            problems.add(
                UsageError(
                    f"IMGCTL_DEFAULT_SOURCE={default_source!r} is not a configured environment",
                    hint=f"configured: {', '.join(environments.names())}",
                )
            )
        known = environments
        if settings.policy_file:
            policy_file = settings.policy_file
            policy = problems.check(lambda: load_policy(policy_file, known))
    # Keys are loaded before anything serves: a bad reference stops the start (KeyRefError).
    signing = problems.check(lambda: _signing(settings, policy, environ))
    provenance = problems.check(lambda: _provenance(policy, environ))
    lease = problems.check(lambda: lease_from_environment(environ))
    registry = problems.check(lambda: _registry_settings(environ))
    assert settings.state_dir is not None
    state_dir = settings.state_dir
    url = problems.check(lambda: database_url(environ, state_dir))
    slack = problems.check(lambda: notifier_from_environment(environ) is not None)
    writes = problems.check(
        lambda: _catalog_writes(settings.tokens_file, settings.allow_anonymous_catalog_writes)
    )
    exemptions = problems.check(lambda: _exemptions(environ))
    names = environments.names() if environments is not None else None
    signatures = None
    if names is not None:
        signatures = problems.check(
            lambda: _signature_rule(
                settings.require_signature, environ, names, settings.require_attestation
            )
        )
    pipeline = problems.check(lambda: _read_pipeline(environ, names or []))
    watches = None
    if settings.watches_file is not None and environments is not None:
        watches_file, checked = settings.watches_file, environments
        watches = problems.check(lambda: _watches(watches_file, environ, checked))
    problems.raise_any(see=SERVER_HELP)
    assert oidc is not None
    assert environments is not None
    assert signing is not None
    assert provenance is not None
    assert lease is not None
    assert registry is not None
    assert url is not None
    assert writes is not None
    assert exemptions is not None
    assert pipeline is not None
    assert slack is not None
    return ServerConfiguration(
        settings=settings,
        environ=environ,
        oidc=oidc,
        environments=environments,
        default_source=default_source,
        policy=policy,
        signer=signing[0],
        trust=signing[1],
        provenance=provenance,
        lease=lease,
        registry=registry,
        database_url=url,
        slack_webhook=slack,
        tokens=writes[0],
        anonymous_writes=writes[1],
        exemptions=exemptions,
        signatures=signatures,
        pipeline=pipeline,
        watches=watches,
        tls=tls,
    )


def _tls_files(settings: ServerSettings) -> tuple[bytes, bytes, bytes | None] | None:
    """(key, certificate, client CA) as bytes, or None without TLS; UsageError naming the flag."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("--tls-cert and --tls-key must be given together")
    if settings.client_ca is not None and settings.tls_cert is None:
        raise UsageError(
            "--client-ca needs --tls-cert and --tls-key (client certificates need TLS)"
        )
    if settings.tls_cert is None or settings.tls_key is None:
        return None

    def read(flag: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read {flag} {path}: {exc.strerror or exc}", hint="give a PEM file"
            ) from None

    return (
        read("--tls-key", settings.tls_key),
        read("--tls-cert", settings.tls_cert),
        read("--client-ca", settings.client_ca) if settings.client_ca else None,
    )


def _read_pipeline(environ: Mapping[str, str], names: list[str]) -> tuple[str, ...]:
    from imgctl.web import read_pipeline

    return read_pipeline(environ, names)


def _watches(path: Path, environ: Mapping[str, str], environments: Environments) -> WatchesFile:
    """The watches file, loaded and checked against the environments (UsageError if bad)."""
    from imgctl.scan.reload import WatchesFile
    from imgctl.server._scan import check_auto_promotions

    # A bad file stops the start, before serving; once serving, a bad version is logged and
    # the last good one stays in force.
    return WatchesFile(
        path, environ=environ, check=lambda config: check_auto_promotions(config, environments)
    )


async def build_core(config: ServerConfiguration) -> object:
    """Everything the server needs, from its checked configuration; opens the database."""
    from imgctl.identity.verifier import TokenVerifier
    from imgctl.promotion.service import Promoter
    from imgctl.remote import RegistryClient
    from imgctl.server._intents import Intents
    from imgctl.server.core import ServerCore
    from imgctl.server.notify import notifier_from_environment
    from imgctl.store import CatalogStore, IntentStore

    environ, settings, oidc = config.environ, config.settings, config.oidc
    registry = RegistryClient(*config.registry)
    promoter = Promoter(
        config.environments,
        registry,
        policy=config.policy,
        default_source=config.default_source,
        environ=environ,
        signer=config.signer,
        trust=config.trust,
        max_signature_ops=settings.max_signature_ops or 50,
        provenance=config.provenance,
    )
    url = config.database_url
    # The audit trail with its write-ahead half: promotions are recorded before they copy.
    store = await IntentStore.open(url)
    catalog = await CatalogStore.open(url)
    # Admission answers "promoted" from memory, following the catalog's change feed.
    await catalog.follow()
    notifier = notifier_from_environment(environ)
    if notifier is not None:
        await notifier.start()
    return ServerCore(
        verifier=TokenVerifier(oidc),
        promoter=promoter,
        store=store,
        notifier=notifier,
        issuer_url=oidc.issuer_url,
        audience=oidc.audience,
        intents=Intents(store, catalog, promoter, lease=config.lease),
        catalog=catalog,
    )


def _registry_settings(environ: Mapping[str, str]) -> tuple[Keychain, ClientOptions]:
    """The keychain and client options of the server's registry clients, from ``environ``."""
    from imgctl.authn import default_keychain
    from imgctl.remote import ClientOptions
    from imgctl.remote.config import (
        default_config_path,
        insecure_hosts,
        load_registry_config,
        resolve_tls,
    )

    registry_config = load_registry_config(default_config_path(environ, Path.home()))
    ca_paths = environ.get("IMGCTL_TLS_CA_CERT_PATH", "").split()
    options = ClientOptions(
        insecure_registries=insecure_hosts(
            registry_config, [environ.get("IMGCTL_INSECURE_REGISTRIES", "")]
        ),
        tls=resolve_tls(registry_config, ca_cert_paths=ca_paths),
    )
    return default_keychain(environ, Path.home()), options


def _signature_rule(
    flags: tuple[str, ...],
    environ: Mapping[str, str],
    environments: list[str] | None,
    attestation_flags: tuple[str, ...] = (),
) -> SignatureRule | None:
    """Admission's rule (--require-signature, --require-attestation), keys loaded.

    UsageError before serving.
    """
    from imgctl.catalog.signatures import load_signature_rule
    from imgctl.remote import RegistryClient

    def client() -> RegistryClient:
        keychain, options = _registry_settings(environ)
        # The webhook answers within 5 s: one retry, short timeouts, and a denial otherwise.
        return RegistryClient(
            keychain, replace(options, retries=1, connect_timeout=2.0, read_timeout=3.0)
        )

    return load_signature_rule(
        flags, environ, client, environments=environments, attestation_flags=attestation_flags
    )


def _integer(variable: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise UsageError(
                f"{variable}={text!r} is not a whole number", hint="unset it for the default"
            ) from None

    return parse


def _signature_ops(value: int | None) -> int | None:
    from imgctl.promotion.signing import check_concurrency

    if value is None:
        return None
    return check_concurrency("--max-signature-ops (IMGCTL_MAX_SIGNATURE_OPS)", value)


def _signing(
    settings: ServerSettings, policy: Policy | None, environ: Mapping[str, str]
) -> tuple[Signer | None, dict[str, TrustPolicy]]:
    """The signing key (--sign-key) and the policy file's require_signature rules, keys loaded.

    A reference that cannot be used is a UsageError naming the flag or the rule: the server
    does not start rather than promote unsigned.
    """
    from imgctl.errors import KeyRefError
    from imgctl.promotion.signing import rule_policy

    signer = None
    if settings.sign_key:
        from imgctl.trust import load_signer

        try:
            signer = load_signer(settings.sign_key, environ=environ)
            # A KMS key is asked for its public half now, not at the first promotion.
            signer.public_key()
        except KeyRefError as exc:
            raise UsageError(
                f"--sign-key (IMGCTL_SIGN_KEY): {exc.message}", hint=exc.hint
            ) from None
    trust: dict[str, TrustPolicy] = {}
    if policy is not None:
        for environment, rule in policy.signatures.items():
            trust[environment] = rule_policy(
                rule,
                where=f"policy file {policy.path}: require_signature.{environment}",
                environ=environ,
            )
    return signer, trust


def _provenance(policy: Policy | None, environ: Mapping[str, str]) -> dict[str, ProvenanceGate]:
    """The policy file's provenance rules, keys and trusted roots loaded (UsageError naming one)."""
    from imgctl.promotion.provenance import ProvenanceGate
    from imgctl.promotion.signing import rule_policy

    gates: dict[str, ProvenanceGate] = {}
    if policy is None:
        return gates
    for environment, rule in policy.provenance.items():
        trust = rule_policy(
            rule, where=f"policy file {policy.path}: provenance.{environment}", environ=environ
        )
        gates[environment] = ProvenanceGate(trust, rule.required)
    return gates


def _configure_logging(daemon: str, environ: Mapping[str, str]) -> StartupLog:
    """The audit trail on stdout, the log on stderr; its INFO lines held until listening."""
    from imgctl._internal.logs import OneLineFormatter
    from imgctl._internal.startup import StartupLog, log_level
    from imgctl.errors import ImgctlError

    # Every line starts a record and no caller's text can start one: the audit trail on stdout
    # is one JSON object per line, and the log on stderr escapes what it quotes.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(OneLineFormatter("%(message)s"))
    audit = logging.getLogger("imgctl.audit")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        level = log_level(dict(environ))
    except ImgctlError:
        level = logging.INFO  # reported with the configuration's other problems
    logging.basicConfig(level=level, handlers=[errors])
    # One line per registry request is noise in production; failures are logged by imgctl.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic says at INFO which plugins it loaded and each migration it ran: 7 to 15 lines on
    # every start. Shown at IMGCTL_LOG_LEVEL=debug; its warnings always.
    logging.getLogger("alembic").setLevel(
        logging.INFO if level <= logging.DEBUG else logging.WARNING
    )
    startup = StartupLog(daemon)
    startup.hold(errors)
    return startup


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _add_port(server: Any, address: str, credentials: Any) -> int:
    """Bind the gRPC server to ``address``; UsageError if the port is taken or unusable."""
    # A probe first: its error says why, where gRPC only logs a C-core line and fails.
    listen("--bind-address", address, "0.0.0.0:9999").close()
    try:
        if credentials is None:
            port: int = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise UsageError(
            f"cannot listen on {address} (--bind-address): the address is in use or not local",
            hint="another process listens there: stop it or choose another port",
        )
    return port


async def run_server(settings: ServerSettings, environ: Mapping[str, str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer
    from grpc_reflection.v1alpha import reflection

    from imgctl.server._grpc import ImgCtlServicer
    from imgctl.server.core import ServerCore
    from imgctl.v1 import imgctl_pb2, imgctl_pb2_grpc

    environ = dict(os.environ if environ is None else environ)
    startup = _configure_logging("server", environ)
    # The whole configuration first, every problem at once, before a socket or the database.
    config = check_configuration(settings, environ)
    settings = config.settings
    # Bound before anything starts, so that a port in use stops the server before it serves.
    http_socket = listen("--http-address", settings.http_address) if settings.http_address else None
    server = grpc.aio.server(
        options=[
            # gRPC sets SO_REUSEPORT by default: a second server on the same port would start
            # and the two would share its traffic (two configurations, two audit databases).
            ("grpc.so_reuseport", 0),
            # The default is 4 MiB; no request of this API needs more than a few hundred bytes.
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
        ]
    )
    try:
        if config.tls is not None:
            key, cert, client_ca = config.tls
            credentials = grpc.ssl_server_credentials(
                [(key, cert)],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            port = _add_port(server, settings.bind_address, credentials)
        else:
            port = _add_port(server, settings.bind_address, None)
    except BaseException:
        if http_socket is not None:
            http_socket.close()
        raise
    host, _ = split_address("--bind-address", settings.bind_address)
    # On loopback the tokens never leave this machine (the client, too, speaks plain HTTP only
    # to loopback): a warning there would be false, and the first thing a new user reads.
    if config.tls is None and not is_loopback(host):
        log.warning(
            "serving gRPC WITHOUT TLS on %s: tokens cross the network in clear text; "
            "pass --tls-cert/--tls-key (or terminate TLS in front of the server)",
            _host_port(host, port),
        )
    tokens, anonymous_writes = config.tokens, config.anonymous_writes
    exemptions, signatures, pipeline = config.exemptions, config.signatures, config.pipeline
    watches = config.watches
    core = await build_core(config)
    assert isinstance(core, ServerCore)
    # Leases of this replica's promotions, and recovery of intents whose owner is gone: at once
    # (start-up), then every half lease.
    intents_stop = asyncio.Event()
    intents_task = asyncio.ensure_future(core.intents.run(intents_stop))
    scan_stop = asyncio.Event()
    scan_task = None
    if watches is not None:
        from imgctl.server._scan import build_scanner

        core.scanner = await build_scanner(core, watches, config.database_url, environ)
        scan_task = asyncio.ensure_future(core.scanner.run(scan_stop))

    imgctl_pb2_grpc.add_ImgCtlServicer_to_server(ImgCtlServicer(core), server)  # type: ignore[no-untyped-call]
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    service_name = imgctl_pb2.DESCRIPTOR.services_by_name["ImgCtl"].full_name
    reflection.enable_server_reflection(
        (
            service_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            "grpc.reflection.v1alpha.ServerReflection",
        ),
        server,
    )
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(service_name, health_pb2.HealthCheckResponse.SERVING)

    http_task = None
    http_server = None
    if http_socket is not None:
        import uvicorn

        from imgctl.server._http import create_http_app

        http_server = uvicorn.Server(
            uvicorn.Config(
                create_http_app(
                    core,
                    tokens,  # type: ignore[arg-type]
                    anonymous_writes=anonymous_writes,
                    exemptions=exemptions,
                    signatures=signatures,
                    public_pages=settings.public_pages,
                    pipeline=pipeline,
                    grpc_address=settings.bind_address,
                ),
                log_level="warning",
                lifespan="off",
            )
        )
        # The gRPC side owns SIGTERM/SIGINT (graceful stop); uvicorn must not take them.
        http_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        http_task = asyncio.ensure_future(http_server.serve(sockets=[http_socket]))

    _freeze_heap()
    listeners = [("grpc" if config.tls is None else "grpc+tls", _host_port(host, port))]
    if http_socket is not None:
        listeners.append(("http", bound_address(http_socket)))
    startup.listening(listeners)
    log.info("environments: %s", ", ".join(core.promoter.environments.names()))
    if core.scanner is not None:
        log.info(
            "watching %d repositories from %s",
            len(core.scanner.config.watches),
            core.scanner.config.source,
        )
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await stop.wait()
    log.info("shutting down: finishing running calls (up to %.0f s)", settings.grace)
    core.draining = True
    await health.enter_graceful_shutdown()
    scan_stop.set()
    await server.stop(settings.grace)
    if scan_task is not None and core.scanner is not None:
        await scan_task
        await core.scanner.aclose()
        await core.scanner.state.aclose()
    if http_server is not None and http_task is not None:
        http_server.should_exit = True
        await http_task
    if signatures is not None:
        await signatures.aclose()
    intents_stop.set()
    await intents_task
    if core.intents.unsettled:
        log.warning(
            "%d promotion(s) not yet recorded (the database does not answer): their intents "
            "are in the database, and any replica settles them once their lease runs out",
            core.intents.unsettled,
        )
    if core.notifier is not None:
        await core.notifier.aclose()
    await core.store.aclose()
    if core.catalog is not None:
        await core.catalog.aclose()
    await core.verifier.aclose()
    await core.promoter.aclose()
    log.info("stopped")
    if received[:1] == [signal.SIGINT]:
        # Stopped as gracefully as for SIGTERM (a pod's stop, exit 0); Ctrl-C exits 130.
        raise KeyboardInterrupt


def _catalog_writes(chosen: Path | None, anonymous: bool) -> tuple[object, bool]:
    """Who may write to the catalog: (tokens file or None, anonymous writes allowed).

    --tokens-file (or IMGCTL_TOKENS_FILE) requires its bearer tokens. Without one, writes
    are refused unless --allow-anonymous-catalog-writes says otherwise, loudly.
    """
    from imgctl.catalog.tokens import TokenFile

    if chosen is not None and anonymous:
        raise UsageError(
            "--allow-anonymous-catalog-writes and --tokens-file exclude each other",
            hint="drop one: with a tokens file, every write needs one of its tokens",
        )
    if chosen is not None:
        return TokenFile(chosen), False
    if anonymous:
        log.warning(
            "catalog writes are open to ANYONE who can reach the HTTP address: PUT and DELETE "
            "/images need no token (--allow-anonymous-catalog-writes); pass --tokens-file "
            "instead to require bearer tokens"
        )
        return None, True
    log.info(
        "catalog writes are refused: no tokens file. Pass --tokens-file (IMGCTL_TOKENS_FILE) "
        "to accept writes with bearer tokens"
    )
    return None, False


def _exemptions(environ: Mapping[str, str]) -> Exemptions:
    """The admission webhook's exemptions; UsageError (before serving) if a prefix is bad."""
    from imgctl.catalog.admission import Exemptions

    return Exemptions.from_environment(environ)


async def serve_catalog(
    http_address: str,
    tokens_file: Path | None,
    url: str | None,
    environ: Mapping[str, str],
    allow_anonymous_writes: bool = False,
    *,
    require_signature: tuple[str, ...] = (),
    require_attestation: tuple[str, ...] = (),
    public_pages: bool = False,
) -> None:
    """``imgctl catalog serve``: the catalog API, admission webhook and pages, without gRPC."""
    import uvicorn

    from imgctl._internal.startup import log_level
    from imgctl.catalog.admission import AdmissionWebhook
    from imgctl.catalog.api import create_catalog_app
    from imgctl.config import Problems
    from imgctl.promotion.environments import Environments
    from imgctl.store import AuditStore, CatalogStore, ScanStore, database_url
    from imgctl.web import CatalogTokenAccess, WebContext, create_web_router, read_pipeline

    startup = _configure_logging("catalog serve", environ)
    settings = ServerSettings(http_address=http_address, tokens_file=tokens_file).resolve(environ)
    # The whole configuration first, every problem at once, before the socket or the database.
    problems = Problems()
    problems.check(lambda: log_level(dict(environ)))
    problems.check(lambda: split_address("--http-address", http_address))
    writes = problems.check(lambda: _catalog_writes(settings.tokens_file, allow_anonymous_writes))
    exemptions = problems.check(lambda: _exemptions(environ))
    # No environments are configured here: a rule may name any.
    signatures = problems.check(
        lambda: _signature_rule(require_signature, environ, None, require_attestation)
    )
    # The pages name environments by IMGCTL_REGISTRY_* when they are set here too.
    environments = problems.check(lambda: Environments.from_environment(environ))
    names = environments.names() if environments is not None else []
    pipeline = problems.check(lambda: read_pipeline(environ, names))
    assert settings.state_dir is not None
    state_dir = settings.state_dir
    given = url
    chosen = problems.check(lambda: given or database_url(environ, state_dir))
    problems.raise_any(see="imgctl catalog serve --help lists the environment variables it reads")
    assert writes is not None
    assert exemptions is not None
    assert environments is not None
    assert pipeline is not None
    assert chosen is not None
    url = chosen
    tokens, anonymous_writes = writes
    sock = listen("--http-address", http_address)
    store = await CatalogStore.open(url)
    # Admission answers "promoted" from memory, following the catalog's change feed.
    await store.follow()
    audit = await AuditStore.open(url)
    scans = await ScanStore.open(url)
    pages = create_web_router(
        WebContext(
            catalog=store,
            audit=audit,
            environments=environments,
            pipeline=pipeline,
            scan_store=scans,
            title="imgctl catalog",
        ),
        CatalogTokenAccess(tokens, public=public_pages),  # type: ignore[arg-type]
    )
    catalog_app = create_catalog_app(
        store,
        tokens,  # type: ignore[arg-type]
        anonymous_writes=anonymous_writes,
        pages=pages,
    )
    app = AdmissionWebhook(
        catalog_app,
        store.promoted,
        exemptions,
        store.known,
        signatures=signatures,
        generation=store.generation,
    )
    # One log line per admission review would cost more than the decision itself.
    from imgctl._internal.uvicorn_signals import serve_until_signalled

    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    _freeze_heap()
    startup.listening([("http", bound_address(sock))])
    try:
        interrupted = await serve_until_signalled(server, [sock])
    finally:
        if signatures is not None:
            await signatures.aclose()
        await scans.aclose()
        await audit.aclose()
        await store.aclose()
    if interrupted:
        raise KeyboardInterrupt  # Ctrl-C exits 130; SIGTERM (a pod's stop) 0, as for gRPC


def _freeze_heap() -> None:
    """Keep the start-up heap (SQLAlchemy, Alembic, FastAPI...) out of garbage collections.

    Full collections walking it paused every request for tens of milliseconds (the admission
    webhook's p99); everything allocated after start-up is still collected.
    """
    import gc

    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived objects; collecting the young generation less often
    # (default 700 allocations) keeps the collector's pauses out of most requests. Measured
    # with bench/catalog.py: p99 70 ms -> 20 ms with the freeze, -> 9-10 ms with this.
    gc.set_threshold(100_000, 50, 100)
