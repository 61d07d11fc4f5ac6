"""What the server does for each call, without gRPC: authenticate, authorize, promote, record.

Every call ends in exactly one audit record — allowed, denied, invalid or failed — written
(and committed) before the answer goes back, plus one JSON line on the ``imgctl.audit`` logger.
A promotion that passed its checks is recorded *before* it copies (its intent, see
:mod:`imgctl.server._intents`), so a server killed mid-way, or a database lost mid-way, leaves a
record that recovery completes: nothing is copied without a record, and when the intent cannot
be written (the database is down) nothing is copied at all. Slack hears about promotions in the
background and can never fail or delay one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imgctl import __version__
from imgctl._internal.bounds import MAX_ENVIRONMENT, MAX_REFERENCE, check_length
from imgctl.errors import (
    ImgctlError,
    InvalidPromotionError,
    InvalidTokenError,
    NotAllowedError,
    NotAuthenticatedError,
    PromotionCancelledError,
    PromotionError,
    UnreachableError,
)
from imgctl.promotion.service import Promoter, Promotion, PromotionResult, landed_result
from imgctl.server._status import status_name

if TYPE_CHECKING:
    from imgctl.identity.verifier import Principal, TokenVerifier
    from imgctl.scan.scanner import Scanner
    from imgctl.server._intents import Intents
    from imgctl.server.notify import SlackNotifier
    from imgctl.store import AuditRecord, AuditStore, CatalogStore, PendingIntent

__all__ = ["Caller", "ServerCore"]

audit_log = logging.getLogger("imgctl.audit")
log = logging.getLogger("imgctl.server")

Progress = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class Caller:
    """Where a call came from: its bearer token (if any), peer address and request id.

    ``principal`` is set only by the server itself, for the service identity that runs
    auto-promotions from the watches file; calls from the network always carry a token.
    """

    token: str | None
    peer: str | None = None
    request_id: str = ""
    principal: Principal | None = None

    def __repr__(self) -> str:
        return f"Caller(peer={self.peer!r}, request_id={self.request_id!r})"


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


class ServerCore:
    """The server's behaviour, callable from tests with no process and no network."""

    draining = False  # set when the server stops taking calls; /readyz then answers 503

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        promoter: Promoter,
        store: AuditStore,
        notifier: SlackNotifier | None = None,
        issuer_url: str,
        audience: str,
        intents: Intents,
        catalog: CatalogStore | None = None,
    ) -> None:
        self.catalog = catalog
        self.intents = intents
        intents.on_settled = self._recovered
        self.scanner: Scanner | None = None  # set when the server runs with --watches
        self.verifier = verifier
        self.promoter = promoter
        self.store = store
        self.notifier = notifier
        self.issuer_url = issuer_url
        self.audience = audience

    # ------------------------------------------------------------------ public calls

    def server_info(self) -> dict[str, object]:
        """What a client needs before it logs in (no token needed)."""
        environments = [
            {
                "name": env.name,
                "registry": env.describe(),
                "spa_suffix": env.spa_suffix or "",
                "allowed_groups": list(self.promoter.policy.groups_for(env.name)),
            }
            for env in self.promoter.environments
        ]
        return {
            "version": __version__,
            "issuer_url": self.issuer_url,
            "audience": self.audience,
            "environments": environments,
            "default_source": self.promoter.default_source or "",
        }

    async def auth_check(self, caller: Caller) -> tuple[Principal, list[str]]:
        """Who the caller is and where they may promote; recorded like every call."""
        record = _Record(caller, "auth_check")
        try:
            principal = await self._authenticate(caller)
            record.principal = principal
            destinations = self.promoter.destinations_for(principal.groups)
        except PromotionError as exc:
            await self._finish(record, error=exc)
            raise
        await self._finish(record)
        return principal, destinations

    async def promote(
        self,
        caller: Caller,
        ref: str,
        source: str,
        destination: str,
        on_progress: Progress | None = None,
    ) -> PromotionResult:
        """Authenticate, check, record the intent, copy, record, notify.

        Raises a PromotionError kind (``imgctl.errors``). Nothing is copied before its intent is
        committed.
        """
        record = _Record(caller, "promote", reference=ref, source=source, destination=destination)
        promotion: Promotion | None = None
        try:
            # Bounded before anything else, authentication included: an over-long field is
            # INVALID_ARGUMENT for everybody, audited cut short (AuditRecord bounds every field).
            check_length("ref", ref, MAX_REFERENCE)
            check_length("source", source, MAX_ENVIRONMENT)
            check_length("destination", destination, MAX_ENVIRONMENT)
            principal = await self._authenticate(caller)
            record.principal = principal
            promotion = self.promoter.plan(ref, source, destination)
            record.promotion = promotion
            self.promoter.allowed(principal.groups, promotion)
            # The destination's require_signature rule, on the pinned source, before any intent.
            promotion = await self.promoter.check_signature(promotion)
            record.promotion = promotion
            # Its provenance rule too: every attestation of the pinned source must verify.
            promotion = await self.promoter.check_provenance(promotion)
            record.promotion = promotion
            # Identical promotions in this process wait here; across replicas, at the intent.
            async with self.intents.turn(promotion):
                return await self._promote(record, promotion, on_progress)
        except PromotionError as exc:
            if not record.finished:
                await self._finish(record, error=exc)
            raise
        except ImgctlError as exc:
            error: PromotionError = InvalidPromotionError(exc.message, hint=exc.hint)
            if promotion is not None:
                error = PromotionError(str(exc))
            if not record.finished:
                await self._finish(record, error=error)
            raise error from None
        except asyncio.CancelledError:
            # The caller went away (deadline, disconnect) or the server stopped: the copy stops
            # (the tag is written last, so nothing half-done is visible) and the call is still
            # audited. Shielded, so the row is written even though this task is being cancelled.
            if not record.finished:
                error = PromotionCancelledError("cancelled before it finished")
                await asyncio.shield(self._finish(record, error=error))
            raise
        except Exception as exc:
            # Anything unexpected is still audited; the client gets INTERNAL, not a traceback.
            log.exception("promotion %s failed unexpectedly", caller.request_id)
            error = PromotionError(f"internal error ({type(exc).__name__})")
            if not record.finished:
                await self._finish(record, error=error)
            raise error from None

    async def _promote(
        self, record: _Record, promotion: Promotion, on_progress: Progress | None
    ) -> PromotionResult:
        """From the intent on: every way out leaves a record, or an intent for recovery."""
        principal = record.principal
        assert principal is not None
        promoted_by = principal.email or principal.subject
        try:
            promotion, pending = await self.intents.begin(promotion, record.pending, promoted_by)
        except PromotionError:
            raise
        except ImgctlError as exc:  # the database could not take the intent (StoreError)
            raise UnreachableError(
                f"nothing was copied: the server's database is unreachable ({exc.message}), and "
                "a promotion is recorded there before it copies",
                hint="retry once the database is back",
            ) from None
        record.promotion, record.intent = promotion, pending
        try:
            result = await self.promoter.run(
                promotion,
                on_progress,
                requested_by=promoted_by,
                request_id=record.caller.request_id,
            )
        except asyncio.CancelledError:
            cancelled = PromotionCancelledError("cancelled before it finished")
            await asyncio.shield(self._after_failure(record, cancelled))
            raise
        except Exception as exc:
            error = _as_error(exc, caller=record.caller)
            found = await self._after_failure(record, error)
            if found is None:
                raise error from None
            return found
        record.result = replace(result, promoted_by=promoted_by)
        # Shielded: once the copy is done, a caller going away must not keep it from its record.
        await asyncio.shield(self._finish(record))
        return record.result

    async def _after_failure(
        self, record: _Record, error: PromotionError
    ) -> PromotionResult | None:
        """Record a copy that raised, as what the destination shows; a result if it is there.

        A copy that raised may still have written its tag (its answer lost on the way back).
        """
        pending = record.intent
        assert pending is not None
        landed = await self.intents.landed(pending)
        if landed is None:
            # Neither "promoted" nor "not promoted" can be said: recovery looks again later
            # and writes the row then.
            record.finished = True
            log.warning(
                "promotion %s failed (%s) and its destination cannot be checked; recovery will "
                "record how it ended",
                record.caller.request_id,
                error,
            )
            await self.intents.release(pending, str(error))
            return None
        if not landed:
            await self._finish(record, error=error)
            return None
        assert record.promotion is not None
        principal = record.principal
        assert principal is not None
        result = landed_result(record.promotion, int((time.monotonic() - record.started) * 1000))
        promoted_by = principal.email or principal.subject
        result = await self.promoter.sign(
            result,
            requested_by=promoted_by,
            request_id=record.caller.request_id,
            started=record.started_at,
        )
        record.result = replace(result, promoted_by=promoted_by)
        log.warning(
            "promotion %s: the copy reported %s, but its destination holds the image: recorded "
            "as promoted",
            record.caller.request_id,
            status_name(error),
        )
        await self._finish(record)
        return record.result

    # ------------------------------------------------------------------ helpers

    async def _authenticate(self, caller: Caller) -> Principal:
        if caller.principal is not None:
            return caller.principal
        if not caller.token:
            raise NotAuthenticatedError(
                "no token: send `authorization: Bearer <OIDC token>`",
                hint="log in with `imgctl auth login`",
            )
        try:
            return await self.verifier.verify(caller.token)
        except InvalidTokenError as exc:
            if exc.reason == "group_not_allowed":
                raise NotAllowedError(exc.message, hint=exc.hint) from None
            if exc.reason == "issuer_unreachable":
                raise UnreachableError(exc.message, hint=exc.hint) from None
            raise NotAuthenticatedError(
                f"token rejected ({exc.reason}): {exc.message}", hint=exc.hint
            ) from None

    async def _finish(self, record: _Record, *, error: PromotionError | None = None) -> None:
        """Write the call's one audit record (settling its intent, if it has one), then tell."""
        from imgctl.server import _metrics

        record.finished = True
        audit: AuditRecord = record.build(error)
        audit_log.info(json.dumps(audit.as_dict(), sort_keys=True))
        try:
            if record.intent is None:
                await self.store.record(audit)
            else:
                await self.intents.settle(record.intent, audit)
        except ImgctlError as exc:
            # No answer goes out without its audit row; the JSON line above still has it.
            log.error("audit row for request %s not written: %s", audit.request_id, exc)
            if record.intent is not None:
                # The intent is in the database already: keep trying, and recovery would find it.
                self.intents.keep(record.intent, audit)
                raise _kept(audit, exc, error) from None
            outcome = audit.result if error is None else f"{audit.result}: {error}"
            raise UnreachableError(
                f"the audit record could not be written ({exc.message}); the request's outcome "
                f"was {outcome}",
                hint="retry once the server's database is back; promotions are idempotent",
            ) from None
        _metrics.REQUESTS.labels(audit.action, audit.result).inc()
        if audit.action == "promote":
            kind = audit.kind or "unknown"
            seconds = (audit.duration_ms or 0) / 1000
            _metrics.PROMOTION_SECONDS.labels(kind, audit.result).observe(seconds)
            _metrics.BYTES_COPIED.labels(kind).inc(audit.bytes_copied or 0)
        if record.action == "promote" and self.notifier is not None and record.promotion:
            from imgctl.server.notify import PromotionEvent

            self.notifier.notify(
                PromotionEvent(
                    request_id=audit.request_id,
                    subject=audit.subject,
                    email=audit.email,
                    reference=audit.reference or "",
                    kind=audit.kind or "image",
                    source_env=audit.source_env or "",
                    destination_env=audit.destination_env or "",
                    source_ref=audit.source_ref,
                    destination_ref=audit.destination_ref,
                    digest=audit.digest,
                    result=audit.result,
                    error=audit.error,
                    bytes_copied=audit.bytes_copied,
                    duration_ms=audit.duration_ms,
                )
            )

    def _recovered(self, audit: AuditRecord) -> None:
        """An audit row written by recovery (not by a call): its JSON line and its count."""
        from imgctl.server import _metrics

        audit_log.info(json.dumps(audit.as_dict(), sort_keys=True))
        _metrics.REQUESTS.labels(audit.action, audit.result).inc()


def _as_error(exc: Exception, *, caller: Caller) -> PromotionError:
    """What a failed copy answers (the copy itself maps registry errors to their codes)."""
    if isinstance(exc, PromotionError):
        return exc
    if isinstance(exc, ImgctlError):
        return PromotionError(str(exc))
    log.error("promotion %s failed unexpectedly", caller.request_id, exc_info=exc)
    return PromotionError(f"internal error ({type(exc).__name__})")


def _kept(audit: AuditRecord, exc: ImgctlError, error: PromotionError | None) -> PromotionError:
    """The answer when the outcome is known but the database cannot take it yet."""
    if error is None:
        return UnreachableError(
            f"copied {audit.destination_ref}, but the database is unreachable ({exc.message}): "
            "the promotion was recorded before its copy, and its audit row and catalog entry "
            "are written as soon as the database answers (until then admission does not know "
            "the image)",
            hint="nothing to redo; promoting again is safe and waits for that record",
        )
    # The same kind of error, so the caller gets the same status, with what happens next.
    return type(error)(
        f"{error}; its audit row is written as soon as the server's database answers again "
        f"({exc.message})",
        hint=error.hint,
    )


def _result(error: PromotionError | None) -> str:
    """The audit row's ``result`` for a call that ended with ``error``."""
    if error is None:
        return "succeeded"
    if isinstance(error, NotAuthenticatedError | NotAllowedError):
        return "denied"
    if isinstance(error, InvalidPromotionError):
        return "invalid"
    return "failed"


class _Record:
    """Collects what is known about a call as it goes, then becomes one AuditRecord."""

    def __init__(
        self,
        caller: Caller,
        action: str,
        *,
        reference: str | None = None,
        source: str | None = None,
        destination: str | None = None,
    ) -> None:
        self.caller = caller
        self.action = action
        self.reference = reference
        self.source = source
        self.destination = destination
        self.principal: Principal | None = None
        self.promotion: Promotion | None = None
        self.result: PromotionResult | None = None
        self.intent: PendingIntent | None = None
        self.finished = False  # its audit record was written (or handed to recovery)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)

    def pending(self, promotion: Promotion) -> AuditRecord:
        """The record as known before the copy of ``promotion``: what its intent carries."""
        self.promotion = promotion
        return self.build(None)

    def build(self, error: PromotionError | None) -> AuditRecord:
        """The audit record of the call as it ends: with ``error``, or succeeded."""
        from imgctl.store import AuditRecord

        principal, promotion, result = self.principal, self.promotion, self.result
        source_env = promotion.source.name if promotion else (self.source or None)
        destination_env = promotion.destination.name if promotion else (self.destination or None)
        source_ref = destination_ref = None
        if result is not None:
            source_ref, destination_ref = result.source_ref, result.destination_ref
        elif promotion is not None and promotion.image_source is not None:
            source_ref = str(promotion.image_source)
            destination_ref = str(promotion.image_destination)
        return AuditRecord(
            request_id=self.caller.request_id,
            time=datetime.now(UTC),
            action=self.action,
            result=_result(error),
            subject=principal.subject if principal else None,
            email=principal.email if principal else None,
            groups=principal.groups if principal else (),
            kind=promotion.kind if promotion else None,
            reference=self.reference,
            source_env=source_env,
            destination_env=destination_env,
            source_ref=source_ref,
            destination_ref=destination_ref,
            digest=(result.digest or None) if result else None,
            bytes_copied=result.bytes_copied if result else None,
            duration_ms=int((time.monotonic() - self.started) * 1000),
            error_code=status_name(error) if error else None,
            error=str(error) if error else None,
            peer=self.caller.peer,
            signed=result.signed if result else None,
            signature_key=(result.signature_key or None) if result else None,
            signature_error=(result.signature_error or None) if result else None,
            attested=result.attested if result else None,
            attestation_error=(result.attestation_error or None) if result else None,
        )
