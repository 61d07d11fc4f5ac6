"""The gRPC servicer: metadata in, ServerCore call, message or status out. Nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from imgctl.errors import PromotionError
from imgctl.promotion.service import PromotionResult
from imgctl.server._status import status_name
from imgctl.server.core import Caller, ServerCore, new_request_id
from imgctl.v1 import imgctl_pb2 as pb
from imgctl.v1 import imgctl_pb2_grpc as pb_grpc

__all__ = ["ImgCtlServicer", "status_code"]


def status_code(error: PromotionError) -> grpc.StatusCode:
    """The gRPC status that answers ``error`` (the map is ``imgctl.server._status``)."""
    code: grpc.StatusCode = grpc.StatusCode[status_name(error)]
    return code


def _caller(context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
    metadata = {key.lower(): value for key, value in (context.invocation_metadata() or ())}
    authorization = metadata.get("authorization")
    token = None
    if isinstance(authorization, str) and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip() or None
    request_id = metadata.get("x-request-id")
    if (
        not isinstance(request_id, str)
        or not request_id.strip()
        or not request_id.isprintable()
        or len(request_id) > 128
    ):
        request_id = new_request_id()
    return Caller(token, context.peer(), request_id)


def _response(result: PromotionResult, request_id: str) -> pb.PromoteResponse:
    return pb.PromoteResponse(
        request_id=request_id,
        kind=result.kind,
        source_environment=result.source_environment,
        destination_environment=result.destination_environment,
        source_ref=result.source_ref,
        destination_ref=result.destination_ref,
        digest=result.digest,
        unchanged=result.unchanged,
        bytes_copied=result.bytes_copied,
        duration_ms=result.duration_ms,
        blobs_copied=result.blobs_copied,
        blobs_mounted=result.blobs_mounted,
        blobs_skipped=result.blobs_skipped,
        objects_copied=result.objects_copied,
        objects_skipped=result.objects_skipped,
        promoted_by=result.promoted_by,
        signed=result.signed,
        signature_key=result.signature_key,
        signature_error=result.signature_error,
        attested=result.attested,
        attestation_error=result.attestation_error,
    )


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], caller: Caller, error: PromotionError
) -> None:
    await context.send_initial_metadata((("x-request-id", caller.request_id),))
    await context.abort(status_code(error), str(error))


class ImgCtlServicer(pb_grpc.ImgCtlServicer):
    """Maps the ImgCtl service onto ServerCore."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        # Promotions whose client went away finish (and are audited) in the background.
        self._orphans: set[asyncio.Future[PromotionResult]] = set()

    async def ServerInfo(
        self, request: pb.ServerInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerInfoResponse:
        """Issuer, audience and environments; no token needed."""
        info = self.core.server_info()
        environments: list[dict[str, Any]] = info.pop("environments")  # type: ignore[assignment]
        return pb.ServerInfoResponse(
            environments=[pb.Environment(**e) for e in environments],
            **info,  # type: ignore[arg-type]
        )

    async def AuthCheck(
        self, request: pb.AuthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AuthCheckResponse:
        """Who the caller is."""
        caller = _caller(context)
        try:
            principal, destinations = await self.core.auth_check(caller)
        except PromotionError as error:
            await _abort(context, caller, error)
            raise  # abort raised already; this line is for type checkers
        await context.send_initial_metadata((("x-request-id", caller.request_id),))
        return pb.AuthCheckResponse(
            subject=principal.subject,
            email=principal.email or "",
            name=principal.name or "",
            groups=list(principal.groups),
            expires_at=principal.expires_at,
            destinations=destinations,
        )

    async def Promote(
        self, request: pb.PromoteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PromoteResponse:
        """Promote and answer once, when done."""
        caller = _caller(context)
        try:
            result = await self.core.promote(
                caller, request.ref, request.source, request.destination
            )
        except PromotionError as error:
            await _abort(context, caller, error)
            raise
        await context.send_initial_metadata((("x-request-id", caller.request_id),))
        return _response(result, caller.request_id)

    async def PromoteStream(
        self, request: pb.PromoteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.PromoteEvent]:
        """Promote, streaming progress; the last event is the result."""
        caller = _caller(context)
        events: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue(maxsize=1)

        def on_progress(copied: int, done: int, total: int) -> None:
            # A slow client never holds the copy back: progress it has not read yet is dropped.
            if events.empty():
                events.put_nowait((copied, done, total))

        task = asyncio.ensure_future(
            self.core.promote(caller, request.ref, request.source, request.destination, on_progress)
        )
        await context.send_initial_metadata((("x-request-id", caller.request_id),))
        try:
            while not task.done():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    copied, done, total = getter.result()
                    yield pb.PromoteEvent(
                        progress=pb.PromoteProgress(bytes_copied=copied, done=done, total=total)
                    )
                else:
                    getter.cancel()
            try:
                result = task.result()
            except PromotionError as error:
                await context.abort(status_code(error), str(error))
                raise
            yield pb.PromoteEvent(result=_response(result, caller.request_id))
        finally:
            if not task.done():
                self._orphans.add(task)
                task.add_done_callback(self._orphans.discard)
