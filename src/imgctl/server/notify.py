"""Slack notifications of promotions, sent in the background so Slack can never hold one up.

The server calls :meth:`SlackNotifier.notify` once per promotion; it only appends the event to a
bounded in-memory queue and returns. A worker task posts one message per event to an incoming
webhook (``IMGCTL_SLACK_WEBHOOK_URL``), retrying connection errors, timeouts, 429 (honouring
``Retry-After``) and 5xx with exponential backoff. When the queue is full, events are dropped
and counted rather than applying back-pressure to promotions.

The webhook URL embeds a secret token, so it never appears in logs, errors or reprs: records of
the ``httpx`` logger (which logs every request URL at INFO) are redacted while a notifier runs.
Delivery is at most ``attempts`` posts per event; a post that timed out may still have reached
Slack, so a retry can occasionally duplicate a message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from imgctl import __version__
from imgctl._internal.hosts import is_loopback
from imgctl._internal.retry import backoff_delay, retry_after
from imgctl.errors import UsageError

__all__ = [
    "ENV_WEBHOOK_URL",
    "NotifierStats",
    "PromotionEvent",
    "SlackNotifier",
    "message_for",
    "notifier_from_environment",
]

logger = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "IMGCTL_SLACK_WEBHOOK_URL"

_MAX_BACKOFF = 60.0
# Slack sends small Retry-After values; a huge one must not park the worker for hours while
# the queue overflows.
_MAX_RETRY_AFTER = 60.0
# After cancelling the worker (or closing the HTTP client), how long aclose() still waits.
_CLOSE_GRACE = 0.25
# Slack answers errors with a short code ("invalid_payload", "no_service"); more is noise.
_ERROR_PREVIEW = 200
_REDACTED = "<redacted>"

# Block Kit limits: header text, section field text, section text.
_HEADER_LIMIT = 150
_FIELD_LIMIT = 2000
_SECTION_LIMIT = 3000

_RESULTS = {
    "succeeded": (":white_check_mark:", "succeeded"),
    "failed": (":x:", "failed"),
    "denied": (":no_entry:", "denied"),
    "invalid": (":warning:", "refused as invalid"),
}
_KINDS = {"image": "Image", "spa": "SPA"}


@dataclass(frozen=True, slots=True)
class PromotionEvent:
    """One promotion, as the server reports it once it has finished (or been refused)."""

    request_id: str
    subject: str | None
    email: str | None
    reference: str
    kind: str  # "image" | "spa"
    source_env: str
    destination_env: str
    source_ref: str | None
    destination_ref: str | None
    digest: str | None
    result: str  # "succeeded" | "failed" | "denied"
    error: str | None
    bytes_copied: int | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class NotifierStats:
    """Counters of a notifier: messages Slack accepted, gave up on, and never attempted.

    ``dropped`` counts events refused because the queue was full or the notifier closed, and
    events still queued or in flight when :meth:`SlackNotifier.aclose` ran out of time.
    """

    sent: int = 0
    failed: int = 0
    dropped: int = 0


# ---------------------------------------------------------------------------------- message


def _escape(value: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions (<!channel>), & as an entity.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, never through the middle of an ``&...;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _code(value: str | None, limit: int = _FIELD_LIMIT) -> str:
    if not value:
        return "—"
    return f"`{_clip(_escape(value), limit - 2)}`"


def _who(event: PromotionEvent) -> str:
    email, subject = event.email or None, event.subject or None
    if email and subject and email != subject:
        return f"{_escape(email)} ({_escape(subject)})"
    return _escape(email or subject or "unknown caller")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def _size(count: int | None) -> str:
    if count is None:
        return "—"
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return f"{count:,} B"
    return f"{value:.1f} {unit} ({count:,} bytes)"


def _field(label: str, value: str) -> dict[str, object]:
    prefix = f"*{label}*\n"
    return {"type": "mrkdwn", "text": prefix + _clip(value, _FIELD_LIMIT - len(prefix))}


def message_for(event: PromotionEvent) -> dict[str, object]:
    """The Slack payload for ``event``: a ``text`` fallback line plus Block Kit ``blocks``."""
    emoji, outcome = _RESULTS.get(event.result, (":grey_question:", "finished"))
    kind = _KINDS.get(event.kind, "Artifact")
    result = outcome if event.result in _RESULTS else f"{outcome} ({_escape(event.result)})"
    route = f"{_code(event.source_env, 200)} → {_code(event.destination_env, 200)}"
    who = _who(event)

    text = f"{emoji} {kind} promotion {result}: {_code(event.reference, 500)} {route} by {who}"
    fields = [
        _field("Who", who),
        _field("What", f"{kind} {_code(event.reference, 1900)}"),
        _field("From → To", route),
        _field("Result", f"{emoji} {result}"),
        _field("Digest", _code(event.digest, 1900)),
        _field("Duration", _duration(event.duration_ms)),
        _field("Bytes copied", _size(event.bytes_copied)),
    ]
    if event.source_ref:
        fields.append(_field("Source", _code(event.source_ref, 1900)))
    if event.destination_ref:
        fields.append(_field("Destination", _code(event.destination_ref, 1900)))

    # The header is plain text built only from fixed words: nothing there needs escaping.
    header = f"{emoji} {kind} promotion {outcome}"
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if event.error:
        error = _clip(_escape(event.error), _SECTION_LIMIT - 20)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n{error}"}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Request {_code(event.request_id, 200)}"}],
        }
    )
    return {"text": _clip(text, _SECTION_LIMIT), "blocks": blocks}


# ---------------------------------------------------------------------------------- the URL


def _check_webhook_url(url: str, name: str) -> httpx.URL:
    """``url`` parsed, if it is https (or http to a loopback host); errors never echo its path."""
    hint = "expected https://hooks.slack.com/services/..."
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        # from None: the parser's message may quote the URL, and with it the token.
        raise UsageError(f"{name} is not a valid URL", hint=hint) from None
    if not parsed.host:
        raise UsageError(f"{name} has no host", hint=hint)
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http" and is_loopback(parsed.host):
        return parsed
    scheme = f"{parsed.scheme}://" if parsed.scheme else "no scheme"
    raise UsageError(
        f"{name} must be an https:// URL (got {scheme} for host {parsed.host!r})",
        hint="plain http is accepted only for loopback hosts",
    )


def _secrets_of(url: str, parsed: httpx.URL) -> tuple[str, ...]:
    path = parsed.raw_path.decode("ascii", "replace")
    candidates = {url, str(parsed), path, parsed.path}
    # Longest first, so the whole URL is replaced before its path is.
    return tuple(sorted((s for s in candidates if len(s) > 1), key=len, reverse=True))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


class _Redactor(logging.Filter):
    """Rewrites log records that contain the webhook URL or its path."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report, not ours
            return True
        if any(secret in message for secret in self._secrets):
            record.msg, record.args = _redact(message, self._secrets), None
        return True


# Loggers that may print the request URL: httpx logs every request at INFO.
_REDACTED_LOGGERS = ("httpx", __name__)


def _printable(data: bytes, secrets: tuple[str, ...]) -> str:
    text = data[:_ERROR_PREVIEW].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return _redact(text, secrets)


class SlackNotifier:
    """Posts promotion events to a Slack incoming webhook from a background task."""

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff: float = 1.0,
        queue_size: int = 1000,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        parsed = _check_webhook_url(webhook_url, "the Slack webhook URL")
        if not timeout > 0:
            raise UsageError("the Slack notification timeout must be positive")
        if attempts < 1:
            raise UsageError("the Slack notifier needs at least one attempt per message")
        if not backoff >= 0:
            raise UsageError("the Slack notification backoff must not be negative")
        if queue_size < 1:
            raise UsageError("the Slack notification queue needs room for at least one event")
        self._url = webhook_url
        self._host = parsed.host
        self._secrets = _secrets_of(webhook_url, parsed)
        self._redactor = _Redactor(self._secrets)
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._queue_size = queue_size
        self._http = http
        self._owns_http = http is None
        # A deque under a thread lock rather than an asyncio.Queue: notify() may be called from
        # a thread of a synchronous gRPC server, not only from the event loop.
        self._lock = threading.Lock()
        self._queue: collections.deque[PromotionEvent] = collections.deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: PromotionEvent | None = None
        self._closing = False
        self._closed = False
        self._sent = 0
        self._failed = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return f"SlackNotifier(host={self._host!r})"

    @property
    def stats(self) -> NotifierStats:
        """A snapshot of the sent / failed / dropped counters."""
        with self._lock:
            return NotifierStats(self._sent, self._failed, self._dropped)

    async def start(self) -> None:
        """Start the background worker on the running loop; a no-op if started or closed."""
        with self._lock:
            if self._task is not None or self._closing:
                return
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers={"User-Agent": f"imgctl/{__version__}"}, follow_redirects=False
            )
        for name in _REDACTED_LOGGERS:
            logging.getLogger(name).addFilter(self._redactor)
        self._task = asyncio.create_task(self._run(), name="imgctl-slack-notifier")

    def notify(self, event: PromotionEvent) -> bool:
        """Queue ``event`` for sending; False (and a warning) if the queue is full or closed."""
        try:
            with self._lock:
                if self._closing:
                    reason = "the notifier is closed"
                elif len(self._queue) >= self._queue_size:
                    reason = f"the queue is full ({self._queue_size} events)"
                else:
                    self._queue.append(event)
                    reason = ""
                if reason:
                    self._dropped += 1
                loop, loop_thread = self._loop, self._loop_thread
            if reason:
                logger.warning(
                    "slack notification for request %r dropped: %s", event.request_id, reason
                )
                return False
            if loop is not None:
                if threading.get_ident() == loop_thread:
                    self._wake.set()
                else:
                    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
                        loop.call_soon_threadsafe(self._wake.set)
            return True
        except Exception as exc:  # notify() runs inside promotions: it must never fail one
            logger.warning("slack notification not queued: %s", type(exc).__name__)
            return False

    async def aclose(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Send what can be sent within ``timeout`` seconds, then stop; never raises."""
        try:
            await self._aclose(timeout)
        except Exception as exc:  # shutting down must go on whatever happened here
            logger.warning("slack notifier did not close cleanly: %s", type(exc).__name__)

    async def _aclose(self, timeout: float) -> None:  # noqa: ASYNC109
        with self._lock:
            if self._closed:
                return
            self._closing = True
        try:
            await self._stop_worker(timeout)
        finally:
            # Even when aclose() itself is cancelled: count what was lost, release the client.
            self._account_leftovers()
            try:
                if self._owns_http and self._http is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(_CLOSE_GRACE):
                            await self._http.aclose()
            finally:
                for name in _REDACTED_LOGGERS:
                    logging.getLogger(name).removeFilter(self._redactor)

    async def _stop_worker(self, timeout: float) -> None:  # noqa: ASYNC109
        task = self._task
        if task is None or task.done():
            return
        self._wake.set()
        try:
            await asyncio.wait({task}, timeout=max(timeout, 0.0))
        finally:
            if not task.done():
                task.cancel()
        if not task.done():
            await asyncio.wait({task}, timeout=_CLOSE_GRACE)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it at exit

    def _account_leftovers(self) -> None:
        with self._lock:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            if self._current is not None:
                left.insert(0, self._current)
                self._current = None
            self._dropped += len(left)
        if left:
            ids = ", ".join(repr(e.request_id) for e in left[:10])
            more = f" and {len(left) - 10} more" if len(left) > 10 else ""
            logger.warning(
                "%d slack notification(s) not sent before shutdown: requests %s%s",
                len(left),
                ids,
                more,
            )

    # ------------------------------------------------------------------------------ worker

    async def _next(self) -> PromotionEvent | None:
        """The next queued event, or None once closing with nothing left."""
        while True:
            with self._lock:
                if self._queue:
                    self._current = self._queue.popleft()
                    return self._current
                if self._closing:
                    return None
                self._wake.clear()
            await self._wake.wait()

    async def _run(self) -> None:
        while (event := await self._next()) is not None:
            try:
                delivered = await self._deliver(event)
            except Exception as exc:  # one bad event must not stop the ones behind it
                logger.error(
                    "slack notification for request %r failed: %s",
                    event.request_id,
                    type(exc).__name__,
                )
                delivered = False
            with self._lock:
                self._current = None
                if delivered:
                    self._sent += 1
                else:
                    self._failed += 1

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self._backoff, _MAX_BACKOFF)

    async def _deliver(self, event: PromotionEvent) -> bool:
        body = json.dumps(message_for(event)).encode()
        request_id = event.request_id
        problem = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                status, retry_after, detail = await self._post(body)
            except (httpx.TransportError, OSError, TimeoutError) as exc:
                problem = type(exc).__name__
                message = _redact(str(exc), self._secrets)
                if message:
                    problem = f"{problem}: {message}"
                delay = self._delay(attempt)
            else:
                if 200 <= status < 300:
                    logger.info(
                        "slack notification for request %r sent (attempt %d)", request_id, attempt
                    )
                    return True
                problem = f"HTTP {status} {detail!r}" if detail else f"HTTP {status}"
                if status == 429:
                    delay = retry_after if retry_after is not None else self._delay(attempt)
                elif status >= 500:
                    delay = self._delay(attempt)
                else:
                    logger.warning(
                        "slack notification for request %r failed: %s; not retried",
                        request_id,
                        problem,
                    )
                    return False
            if attempt < self._attempts:
                logger.info(
                    "slack notification for request %r: %s (attempt %d of %d); retrying in %.2f s",
                    request_id,
                    problem,
                    attempt,
                    self._attempts,
                    delay,
                )
                await asyncio.sleep(delay)
        logger.warning(
            "slack notification for request %r failed after %d attempt(s): %s",
            request_id,
            self._attempts,
            problem,
        )
        return False

    async def _post(self, body: bytes) -> tuple[int, float | None, str]:
        """POST ``body``; (status, Retry-After seconds, start of an error body)."""
        http = self._http
        assert http is not None, "start() creates the client before the worker runs"
        # httpx's timeout bounds each read; this bounds the whole exchange, so a receiver
        # that trickles bytes cannot hold the worker either.
        async with (
            asyncio.timeout(self._timeout),
            http.stream(
                "POST",
                self._url,
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
            ) as response,
        ):
            preview = b""
            if not response.is_success:
                async for chunk in response.aiter_bytes():
                    preview += chunk
                    if len(preview) >= _ERROR_PREVIEW:
                        break
            return (
                response.status_code,
                retry_after(response.headers.get("retry-after"), cap=_MAX_RETRY_AFTER),
                _printable(preview, self._secrets),
            )


def notifier_from_environment(environ: Mapping[str, str]) -> SlackNotifier | None:
    """A notifier for ``IMGCTL_SLACK_WEBHOOK_URL``, or None when it is unset or empty."""
    url = environ.get(ENV_WEBHOOK_URL, "").strip()
    if not url:
        return None
    _check_webhook_url(url, ENV_WEBHOOK_URL)
    return SlackNotifier(url)
