"""The story ``imgctl demo`` tells: push, sign in, promote, sign and attest, verify, admit or deny.

Each step runs the real thing (the ``imgctl`` client as a subprocess, HTTP requests to the
server, the registries' digests, the audit database) and checks what it shows; a step that
does not hold ends the demo with one line naming it and the log that explains it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgctl.cli.demo._setup import (
    AUDIENCE,
    CLIENT_ID,
    GROUP,
    HELLO,
    START_STEP,
    UNSIGNED,
    UNVETTED,
    Demo,
    Started,
    prepare_root,
    start,
    user_name,
)
from imgctl.cli.demo._supervise import (
    CLIENT_TIMEOUT,
    Child,
    Signals,
    StepFailed,
    last_line,
    step,
    wait_ready,
)

if TYPE_CHECKING:
    from imgctl.cli.demo._image import DemoImage
    from imgctl.remote import ClientOptions
    from imgctl.store import AuditRecord

__all__ = ["run"]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _client(demo: Demo, label: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run the real ``imgctl`` client with ``-o json``; return its command line and answer."""
    return _imgctl(demo, label, *args, "-u", demo.user)


def _imgctl(demo: Demo, label: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run ``imgctl ARGS -o json`` in the work directory; return its command line and answer."""
    argv = [*args, "-o", "json"]
    shown = "imgctl " + " ".join(argv)
    result = subprocess.run(
        [sys.executable, "-m", "imgctl", *argv],
        env=demo.client_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        cwd=demo.root,
        start_new_session=True,
    )
    log = demo.logs / "client.log"
    with log.open("a") as handle:
        handle.write(f"$ {shown}\n{result.stdout}{result.stderr}exit {result.returncode}\n")
    if result.returncode != 0:
        raise StepFailed(
            label,
            f"`{shown}` exited with status {result.returncode}: {last_line(result.stderr)}",
            demo.logs / "server.log",
        )
    try:
        answer: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise StepFailed(label, f"`{shown}` printed no JSON", log) from None
    return shown, answer


async def _push_images(demo: Demo) -> dict[str, DemoImage]:
    """Push the demo images to dev (and one straight to prod); return them by repository."""
    from imgctl.cli.demo._image import build_image, push_image
    from imgctl.remote import RegistryClient

    hello = build_image(*HELLO, "Hello from imgctl demo: promoted from dev to prod")
    unvetted = build_image(*UNVETTED, "Nobody promoted me")
    unsigned = build_image(*UNSIGNED, "Copied to prod by hand, never signed")
    async with RegistryClient(options=registry_options()) as client:
        for image in (hello, unvetted):
            await push_image(client, demo.address("dev"), image)
        await push_image(client, demo.address("prod"), unsigned)
    return {"hello": hello, "unvetted": unvetted, "unsigned": unsigned}


def registry_options() -> ClientOptions:
    from imgctl.remote import ClientOptions

    # No proxies: the registries are on loopback, and the user's proxy must not see them.
    return ClientOptions(proxies={}, retries=1)


async def _digests(demo: Demo) -> dict[str, str | None]:
    """HEAD the hello tag in dev and in prod."""
    from imgctl.oci.reference import Reference
    from imgctl.remote import RegistryClient

    found: dict[str, str | None] = {}
    async with RegistryClient(options=registry_options()) as client:
        for env in ("dev", "prod"):
            descriptor = await client.head_manifest(
                Reference.parse(f"{demo.address(env)}/{HELLO[0]}:{HELLO[1]}")
            )
            found[env] = str(descriptor.digest) if descriptor else None
    return found


async def _audit_rows(demo: Demo) -> list[AuditRecord]:
    from imgctl.store import AuditStore

    async with await AuditStore.open(f"sqlite:///{demo.database}") as store:
        return await store.recent(10)


def admission_review(name: str, image: str) -> dict[str, Any]:
    """An AdmissionReview v1 for creating a one-container Pod, as the API server sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"imgctl-demo-{name}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "imgctl-demo"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def _show_started(demo: Demo, started: Started, seconds: float) -> None:
    from imgctl.identity.sshjwt import fingerprint, parse_authorized_key

    _, blob, _ = parse_authorized_key(started.key.line)
    if started.added_with is not None:
        held = f"held by a private ssh-agent (added with {started.added_with})"
    else:
        held = f"in {demo.key_file} (no ssh-agent on PATH)"
    _say(f"1. Started in {seconds:.1f} s, on loopback")
    _say(f"   registry dev   {demo.address('dev'):<22}  imgctl registry serve")
    _say(f"   registry prod  {demo.address('prod'):<22}  imgctl registry serve")
    _say(
        f"   issuer         {demo.issuer_url:<22}  imgctl idp serve: user {demo.user} "
        f"<{demo.email}>, group {GROUP}"
    )
    _say(
        f"   server gRPC    {demo.address('grpc'):<22}  imgctl server with SQLite; prod only for "
        f"group {GROUP}"
    )
    _say(f"   server HTTP    {demo.http_url:<22}  its web pages, catalog API and admission webhook")
    _say(f"   ssh key        ssh-ed25519 {fingerprint(blob)}, new, {held}")
    _say(
        f"   signing key    {demo.verify_key.name:<22}  new, cosign format; the server signs and "
        "attests every promotion with cosign.key, and admission to prod wants both"
    )


def _show_pushed(demo: Demo, images: dict[str, DemoImage]) -> None:
    hello, unvetted, unsigned = images["hello"], images["unvetted"], images["unsigned"]
    _say(
        f"2. Pushed to dev {demo.address('dev')}: OCI indexes for "
        f"{' and '.join(hello.platforms)}, built in memory"
    )
    _say(f"   {HELLO[0]}:{HELLO[1]}      {hello.digest}")
    _say(f"   {UNVETTED[0]}:{UNVETTED[1]}   {unvetted.digest}  (never promoted)")
    _say(f"   and straight to prod {demo.address('prod')}, bypassing imgctl:")
    _say(f"   {UNSIGNED[0]}:{UNSIGNED[1]}   {unsigned.digest}  (never signed)")


def _identity(demo: Demo, server: Child) -> None:
    label = "3 (sign in: imgctl auth-check)"
    with step(label, server.log):
        shown, identity = _client(demo, label, "auth-check")
    _say("3. Signed in: SSH-signed JWT -> token exchange at the issuer -> AuthCheck on the server")
    _say(f"   $ {shown}")
    _say(
        f"   subject {identity.get('subject')} (Dex's encoding of user and connector), "
        f"email {identity.get('email')}"
    )
    _say(
        f"   groups {', '.join(identity.get('groups', [])) or 'none'}; "
        f"may promote to {', '.join(identity.get('destinations', [])) or 'nothing'}"
    )
    if identity.get("email") != demo.email or "prod" not in identity.get("destinations", []):
        raise StepFailed(label, f"unexpected identity {identity}", server.log)


def _promote(demo: Demo, server: Child, digest: str) -> dict[str, Any]:
    label = "4 (promote: imgctl promote)"
    ref = f"{HELLO[0]}:{HELLO[1]}"
    with step(label, server.log):
        shown, promoted = _client(demo, label, "promote", ref, "--source", "dev", "-d", "prod")
    _say(
        "4. Promoted over gRPC: the server checked the token and the policy, copied, then signed "
        "and attested"
    )
    _say(f"   $ {shown}")
    _say(
        f"   {promoted.get('blobsCopied')} blobs copied ({promoted.get('bytesCopied')} bytes) "
        f"in {promoted.get('durationMs')} ms for {promoted.get('promotedBy')}, "
        f"request {promoted.get('requestId')}"
    )
    if promoted.get("digest") != digest:
        raise StepFailed(label, f"the server promoted {promoted.get('digest')}", server.log)
    if promoted.get("signed") is not True:
        why = promoted.get("signatureError") or "the server does not sign"
        raise StepFailed(label, f"the promoted image is not signed: {why}", server.log)
    _say(
        f"   signed in prod with key {str(promoted.get('signatureKey'))[:12]} "
        f"(cosign signature under {digest.replace(':', '-')[:19]}….sig)"
    )
    if promoted.get("attested") is not True:
        why = promoted.get("attestationError") or "the server does not attest"
        raise StepFailed(label, f"the promotion is not attested: {why}", server.log)
    _say(
        f"   attested in prod with the same key (promotion attestation under "
        f"{digest.replace(':', '-')[:19]}….att)"
    )
    return promoted


def _compare_digests(demo: Demo) -> str:
    import asyncio

    label = "5 (digests in both registries)"
    with step(label, demo.logs / "registry-prod.log"):
        digests = asyncio.run(_digests(demo))
    _say(f"5. Same digest in both registries (HEAD /v2/{HELLO[0]}/manifests/{HELLO[1]})")
    for env in ("dev", "prod"):
        _say(f"   {env:<5} {demo.address(env) + '/' + HELLO[0]:<32} {digests[env]}")
    if not digests["dev"] or digests["dev"] != digests["prod"]:
        raise StepFailed(label, f"dev has {digests['dev']}, prod has {digests['prod']}")
    return digests["prod"]


def _audit(demo: Demo, server: Child, request_id: str) -> None:
    import asyncio

    label = "6 (audit row)"
    with step(label, server.log):
        rows = asyncio.run(_audit_rows(demo))
    row = next((r for r in rows if r.request_id == request_id), None)
    if row is None:
        raise StepFailed(label, f"no audit row for request {request_id}", server.log)
    _say(f"6. Audit row (table audit_events in {demo.database.relative_to(demo.root)})")
    _say(
        f"   {row.time:%Y-%m-%dT%H:%M:%SZ} {row.action} {row.result}: {row.email}, "
        f"{row.reference} {row.source_env} -> {row.destination_env}, {row.duration_ms} ms"
    )
    _say(f"   request {row.request_id}, digest {row.digest}")
    if row.signed is not True:
        raise StepFailed(label, f"the audit row says signed={row.signed}", server.log)
    _say(f"   signed: yes, key {str(row.signature_key)[:12]}")
    if row.attested is not True:
        why = row.attestation_error or "nothing recorded"
        raise StepFailed(label, f"the audit row says attested={row.attested} ({why})", server.log)
    _say("   attested: yes (its promotion attestation names this request)")


def _verify(demo: Demo, digest: str) -> None:
    label = "8 (verify: imgctl verify)"
    image = f"{demo.address('prod')}/{HELLO[0]}:{HELLO[1]}"
    shown, report = _imgctl(demo, label, "verify", image, "--key", demo.verify_key.name)
    _say("8. Verified in prod: every cosign signature of the digest, checked with cosign.pub")
    _say(f"   $ {shown}")
    for signature in report.get("signatures", []):
        verdict = "ok" if signature.get("verified") else "refused"
        _say(f"   {verdict}: {signature.get('reason')}")
    if report.get("verified") is not True or report.get("digest") != digest:
        raise StepFailed(label, f"the signature did not verify: {report}", demo.logs / "client.log")


def _attestations(demo: Demo, digest: str, promoted: dict[str, Any]) -> None:
    from imgctl.trust import PROMOTION_PREDICATE_TYPE

    label = "9 (attestation: imgctl attestations)"
    image = f"{demo.address('prod')}/{HELLO[0]}:{HELLO[1]}"
    shown, listing = _imgctl(demo, label, "attestations", image, "--key", demo.verify_key.name)
    _say(
        "9. The promotion's attestation in prod: an in-toto statement, DSSE-signed with cosign.key"
    )
    _say(f"   $ {shown}")
    found = [
        a
        for a in listing.get("attestations", [])
        if a.get("predicateType") == PROMOTION_PREDICATE_TYPE and a.get("verified") is True
    ]
    if not found or listing.get("digest") != digest:
        raise StepFailed(
            label, f"no verified promotion attestation: {listing}", demo.logs / "client.log"
        )
    statement = found[0].get("statement") or {}
    predicate = statement.get("predicate") or {}
    build = predicate.get("buildDefinition") or {}
    internal = build.get("internalParameters") or {}
    builder = ((predicate.get("runDetails") or {}).get("builder") or {}).get("id")
    _say(f"   {PROMOTION_PREDICATE_TYPE}: {found[0].get('reason')}")
    # The builder is the server by its key id; the first 12 hex digits say which one.
    shown_builder = str(builder)
    if len(shown_builder) > 30:  # urn:imgctl:server: and the key id's first 12 hex digits
        shown_builder = shown_builder[:30] + "…"
    _say(f"   statement {statement.get('predicateType')} about {digest[:19]}…")
    _say(
        f"   builder {shown_builder}, requested by {internal.get('requestedBy')}, "
        f"request {internal.get('requestId')}"
    )
    if (internal.get("requestId"), internal.get("requestedBy")) != (
        promoted.get("requestId"),
        promoted.get("promotedBy"),
    ):
        raise StepFailed(
            label,
            f"the attestation names request {internal.get('requestId')} by "
            f"{internal.get('requestedBy')}, not the promotion's",
            demo.logs / "client.log",
        )


def _catalog_and_admission(
    demo: Demo, server: Child, images: dict[str, DemoImage], promoted: dict[str, Any]
) -> None:
    import httpx

    label = "7 (catalog entry)"
    digest = str(images["hello"].digest)
    prod_image = f"{demo.address('prod')}/{HELLO[0]}:{HELLO[1]}"
    dev_unvetted = f"{demo.address('dev')}/{UNVETTED[0]}:{UNVETTED[1]}"
    prod_unsigned = f"{demo.address('prod')}/{UNSIGNED[0]}:{UNSIGNED[1]}"
    with step(label, server.log), httpx.Client(trust_env=False, timeout=10.0) as http:
        response = http.get(f"{demo.http_url}/images", params={"environment": "prod"})
        response.raise_for_status()
        entries = response.json()
        entry = next((e for e in entries if e.get("id") == digest), None)
        if entry is None:
            raise StepFailed(label, f"no catalog entry for {digest}: {entries}", server.log)
        _say("7. Catalog entry (GET /images?environment=prod on the server's HTTP side)")
        _say(f"   {entry.get('name')}:{','.join(entry.get('tags', []))}  id {entry.get('id')}")
        _say(f"   promoted by {entry.get('promoted_by')} at {entry.get('promoted_at')}")
        if (entry.get("signed"), entry.get("attested")) != (True, True):
            raise StepFailed(label, f"the entry is not signed and attested: {entry}", server.log)
        _say("   signed: true, attested: true (what the server recorded of its promotion)")

        _verify(demo, digest)
        _attestations(demo, digest, promoted)

        label = "10 (admission decisions)"
        # Someone records the hand-copied image as promoted (PUT /images, with the catalog
        # token): the catalog alone would let it through; its missing signature and
        # attestation do not.
        unsigned = {
            "id": str(images["unsigned"].digest),
            "name": f"{demo.address('prod')}/{UNSIGNED[0]}",
            "tags": [UNSIGNED[1]],
            "environment": "prod",
        }
        recorded = http.put(
            f"{demo.http_url}/images",
            json=unsigned,
            headers={"Authorization": f"Bearer {demo.catalog_token}"},
        )
        recorded.raise_for_status()
        _say(
            "10. Admission webhook (POST /admission/prod with a Pod's AdmissionReview): promoted, "
            "signed and attested with cosign.pub's key"
        )
        _say(
            f"   ({UNSIGNED[0]} was recorded in the catalog with PUT /images: unsigned, unattested)"
        )
        pods = (
            ("hello", prod_image, True),
            ("unvetted", dev_unvetted, False),
            ("unsigned", prod_unsigned, False),
        )
        for name, image, expected in pods:
            review = admission_review(name, image)
            # Kept for --keep's curl example: the exact request the cluster would send.
            (demo.root / f"admission-{name}.json").write_text(json.dumps(review, indent=2))
            response = http.post(f"{demo.http_url}/admission/prod", json=review)
            response.raise_for_status()
            answer = response.json()["response"]
            allowed = answer.get("allowed") is True
            message = answer.get("status", {}).get("message")
            _say(f"   Pod using {image:<42} {'allowed' if allowed else 'denied'}")
            if message:
                _say(f"     {message}")
            if allowed is not expected:
                verdict = "allowed" if allowed else "denied"
                raise StepFailed(label, f"the Pod using {image} was {verdict}", server.log)


def _story(demo: Demo, started_at: float) -> None:
    """Start everything, use it once, and say what happened at each step."""
    import asyncio

    _say(f"imgctl demo: every part of imgctl, started under {demo.root}")
    _say()
    label = START_STEP
    with step(label):
        started = start(demo)
        wait_ready(
            [(child, f"http://{demo.address(e)}/v2/") for e, child in started.registries.items()],
            label,
        )
    # The registries answer while the server is still importing: push now, show it after.
    with step("2 (push the demo images to dev)", started.registries["dev"].log):
        images = asyncio.run(_push_images(demo))
    with step(label):
        wait_ready(
            [
                (started.idp, f"{demo.issuer_url}/healthz"),
                (started.server, f"{demo.http_url}/readyz"),
            ],
            label,
        )
    _show_started(demo, started, time.monotonic() - started_at)
    _show_pushed(demo, images)
    _identity(demo, started.server)
    promoted = _promote(demo, started.server, str(images["hello"].digest))
    digest = _compare_digests(demo)
    if digest != str(images["hello"].digest):
        raise StepFailed("5 (digests in both registries)", f"prod has {digest}")
    _audit(demo, started.server, str(promoted.get("requestId")))
    _catalog_and_admission(demo, started.server, images, promoted)


def _print_commands(demo: Demo) -> None:
    """What to run by hand while everything keeps running."""
    watches = demo.root / "watches.yaml"
    watches.write_text(
        "watches:\n"
        f"  - name: hello\n    image: {demo.address('dev')}/{HELLO[0]}\n"
        "    interval: 1m\n    policy: {semver: {range: '>=1.0.0'}}\n"
    )
    # A Pod using the prod copy of the unvetted image: denied now, allowed once promoted.
    review = demo.root / "admission-unvetted-prod.json"
    prod_unvetted = f"{demo.address('prod')}/{UNVETTED[0]}:{UNVETTED[1]}"
    review.write_text(json.dumps(admission_review("unvetted", prod_unvetted), indent=2))
    curl = (
        f"curl -s -w '\\n' -H 'Content-Type: application/json' --data @{review} "
        f"{demo.http_url}/admission/prod"
    )
    key = f" -f {demo.key_file}" if not demo.agent_socket else ""
    agent = f"SSH_AUTH_SOCK={demo.agent_socket}" if demo.agent_socket else ""
    lines = [
        f"export IMGCTL_SERVER={demo.address('grpc')} IMGCTL_TLS=false DEX_URL={demo.issuer_url}",
        f"export IMGCTL_AUDIENCE={AUDIENCE} IMGCTL_CLIENT_ID={CLIENT_ID} "
        f"KUBECTL_SSH_USER={demo.user}",
        f'export IMGCTL_CLIENT_SECRET="$(cat {demo.root / "client-secret"})"',
        # The demo's tokens stay out of ~/.cache; the demo's agent (or none) instead of yours.
        f"export XDG_CACHE_HOME={demo.home / '.cache'} {agent}".rstrip(),
        *([] if demo.agent_socket else ["unset SSH_AUTH_SOCK"]),
        "",
        f"imgctl ls {demo.address('dev')}/{HELLO[0]}",
        f"imgctl digest {demo.address('prod')}/{HELLO[0]}:{HELLO[1]}",
        f"imgctl verify {demo.address('prod')}/{HELLO[0]}:{HELLO[1]} --key {demo.verify_key}",
        f"imgctl attestations {demo.address('prod')}/{HELLO[0]}:{HELLO[1]} --key {demo.verify_key}",
        f"imgctl auth-check{key}",
        f"{curl}    # denied: {prod_unvetted} was never promoted",
        f"imgctl promote {UNVETTED[0]}:{UNVETTED[1]} --source dev -d prod{key}",
        f"{curl}    # allowed now",
        f"imgctl catalog ls --catalog-url {demo.http_url} -e prod",
        f"imgctl scan --config {watches} --once",
    ]
    _say()
    _say("Everything keeps running. In another terminal, try:")
    _say()
    for line in lines:
        _say(f"  {line}" if line else "")
    _say()
    _print_web(demo)
    _say(f"Logs are in {demo.logs}. Ctrl-C stops everything and removes {demo.root}.")


def _user_token(demo: Demo) -> str:
    """The demo user's OIDC token, as ``imgctl token`` prints it (from the cache promote filled).

    Not written to client.log: the logs are kept when the demo fails, the token is a secret.
    """
    argv = ["token", "-u", demo.user]
    result = subprocess.run(
        [sys.executable, "-m", "imgctl", *argv],
        env=demo.client_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        cwd=demo.root,
        start_new_session=True,
    )
    log = demo.logs / "client.log"
    with log.open("a") as handle:
        handle.write(f"$ imgctl {' '.join(argv)}\n(the token is not logged)\n")
        handle.write(f"{result.stderr}exit {result.returncode}\n")
    token = result.stdout.strip()
    if result.returncode != 0 or not token or len(token.split()) != 1:
        raise StepFailed(
            "--keep (imgctl token)",
            f"`imgctl {' '.join(argv)}` exited with status {result.returncode}: "
            f"{last_line(result.stderr)}",
            log,
        )
    return token


def _print_web(demo: Demo) -> None:
    """Where the web pages are and the token that opens them (printed once, here)."""
    token = _user_token(demo)
    _say(f"The web pages: {demo.http_url}/  (releases, audit trail, watches, charts)")
    _say(
        f"Sign in at {demo.http_url}/login by pasting this token, {demo.user}'s OIDC token. It "
        "is a secret of this demo only (its issuer stops with it) and lasts an hour; "
        "`imgctl token` with the exports above prints a new one:"
    )
    _say()
    _say(f"   {token}")
    _say()


def _hold(demo: Demo) -> None:
    """Keep running until a signal; a child that dies ends the demo as a failure."""
    while True:
        for child in demo.children:
            code = child.process.poll()
            if code is not None:
                raise StepFailed("--keep", f"{child.name} exited with status {code}", child.log)
        time.sleep(0.5)


def run(keep: bool = False, workdir: Path | None = None) -> None:
    """``imgctl demo``: start everything, tell the story, clean up (or keep it running)."""
    started_at = time.monotonic()
    signals = Signals()
    signals.install()
    code = 0
    failure: StepFailed | None = None
    demo: Demo | None = None
    holding = False
    try:
        with signals.deferred():  # a directory made is a directory cleanup knows about
            root, owns_root = prepare_root(workdir)
            demo = Demo(root, owns_root, signals, user=user_name())
        _story(demo, started_at)
        _say()
        _say(
            f"Done in {time.monotonic() - started_at:.1f} s: promoted, signed, attested, verified, "
            "recorded, admitted."
        )
        if keep:
            _print_commands(demo)
            holding = True
            _hold(demo)
    except KeyboardInterrupt:
        # Ctrl-C is how --keep ends, but it is still an interrupt: 130 (143 for SIGTERM).
        code = signals.code or 130
        what = "stopping everything" if holding else "interrupted; stopping everything"
        print(f"\nimgctl demo: {what}", file=sys.stderr, flush=True)
    except StepFailed as exc:
        code, failure = 1, exc
    except Exception as exc:  # a bug, not a user mistake: still clean up and say so in one line
        code, failure = 1, StepFailed("(unexpected)", f"{type(exc).__name__}: {exc}")
    finally:
        signals.ignore()
        kept: Path | None = None
        try:
            if demo is not None:
                demo.stop()
                if failure is not None:
                    kept = demo.keep_logs()
                demo.remove()
        finally:
            signals.restore()
    if failure is not None:
        print(f"imgctl: error: demo step {failure.step} failed: {failure.message}", file=sys.stderr)
        if kept is not None:
            log = kept / failure.log.name if failure.log is not None else kept
            print(f"imgctl: see {log} (every log is kept in {kept})", file=sys.stderr)
    elif demo is not None:
        where = f"removed {demo.root}" if demo.owns_root else f"left {demo.root} in place"
        print(f"Stopped everything and {where}.", file=sys.stderr if code else sys.stdout)
    if code:
        raise SystemExit(code)
