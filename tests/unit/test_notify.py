"""Slack notifications: the message, retries, a hung or full pipeline, config, no leaked URL."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from imgctl.errors import UsageError
from imgctl.server.notify import (
    ENV_WEBHOOK_URL,
    NotifierStats,
    PromotionEvent,
    SlackNotifier,
    message_for,
    notifier_from_environment,
)

from ..support.httpd import CheckedHTTPServer

SECRET = "T0SECRET/B0SECRET/xoxbSecretToken42"
WEBHOOK_PATH = f"/services/{SECRET}"
LOGGER = "imgctl.server.notify"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False  # never answer (until the test ends)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 answering each POST with the next scripted reply."""

    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def record(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.requests.append(Received(path, headers, body, time.monotonic()))
        return self.script.pop(0) if self.script else self.default

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} requests arrived"
            await asyncio.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = self.server.receiver.record(self.path, dict(self.headers.items()), body)
        if reply.hang:
            self.server.receiver.release.wait(30)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(CheckedHTTPServer):
    block_on_close = False
    receiver: Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.receiver
    server.receiver.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)
    server.check()


def event(**changes: Any) -> PromotionEvent:
    base = PromotionEvent(
        request_id="req-1",
        subject="user-1234",
        email="alice@example.com",
        reference="app:1.2",
        kind="image",
        source_env="staging",
        destination_env="prod",
        source_ref="registry.staging.example/app:1.2",
        destination_ref="registry.prod.example/app:1.2",
        digest="sha256:" + "ab" * 32,
        result="succeeded",
        error=None,
        bytes_copied=12_345_678,
        duration_ms=1500,
    )
    return dataclasses.replace(base, **changes)


def notifier(url: str, **options: Any) -> SlackNotifier:
    options = {"timeout": 2.0, "backoff": 0.01} | options
    return SlackNotifier(url, **options)


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def field_texts(payload: Any) -> dict[str, str]:
    """Section fields of a payload as {label: value}."""
    texts = {}
    for block in payload["blocks"]:
        for item in block.get("fields", []):
            label, _, value = item["text"].partition("\n")
            texts[label.strip("*")] = value
    return texts


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ the message


async def test_message_arrives_with_its_fields(receiver: Receiver) -> None:
    slack = notifier(receiver.url)
    await slack.start()
    assert slack.notify(event()) is True
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=1, failed=0, dropped=0)
    [request] = receiver.requests
    assert request.path == WEBHOOK_PATH
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["User-Agent"].startswith("imgctl/")
    payload = request.json()
    assert "app:1.2" in payload["text"]
    assert "staging" in payload["text"]
    assert "prod" in payload["text"]
    assert "succeeded" in payload["text"]
    header = payload["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert "succeeded" in header["text"]["text"]
    fields = field_texts(payload)
    assert fields["Who"] == "alice@example.com (user-1234)"
    assert fields["What"] == "Image `app:1.2`"
    assert fields["From → To"] == "`staging` → `prod`"
    assert fields["Result"] == ":white_check_mark: succeeded"
    assert fields["Digest"] == f"`sha256:{'ab' * 32}`"
    assert fields["Duration"] == "1.5 s"
    assert fields["Bytes copied"] == "11.8 MiB (12,345,678 bytes)"
    assert fields["Source"] == "`registry.staging.example/app:1.2`"
    assert fields["Destination"] == "`registry.prod.example/app:1.2`"
    assert "Error" not in json.dumps(payload)
    assert payload["blocks"][-1]["type"] == "context"
    assert "`req-1`" in payload["blocks"][-1]["elements"][0]["text"]


def test_failure_message_carries_the_error_and_omits_what_is_unknown() -> None:
    payload = message_for(
        event(
            result="failed",
            error="manifest unknown",
            digest=None,
            bytes_copied=None,
            duration_ms=250,
            source_ref=None,
            destination_ref=None,
            subject=None,
            kind="spa",
        )
    )
    fields = field_texts(payload)
    assert fields["Result"] == ":x: failed"
    assert fields["What"] == "SPA `app:1.2`"
    assert fields["Who"] == "alice@example.com"
    assert fields["Digest"] == "—"
    assert fields["Bytes copied"] == "—"
    assert fields["Duration"] == "250 ms"
    assert "Source" not in fields
    assert "Destination" not in fields
    sections = [b["text"]["text"] for b in payload["blocks"] if "text" in b]
    assert "*Error*\nmanifest unknown" in sections
    assert ":x:" in payload["blocks"][0]["text"]["text"]


def test_user_supplied_strings_are_escaped() -> None:
    payload = message_for(
        event(
            reference="app<!channel>:1",
            subject="<@U0ADMIN>",
            email="a&b@example.com",
            source_env="st<g>",
            error="<https://evil.example|click here> & <!here>",
            request_id="<!everyone>",
            result="denied",
        )
    )
    texts = list(strings(payload))
    assert not [t for t in texts if "<" in t or ">" in t]
    assert not [t for t in texts if re.search(r"&(?!amp;|lt;|gt;)", t)]
    dumped = json.dumps(payload, ensure_ascii=False)
    assert "app&lt;!channel&gt;:1" in dumped
    assert "a&amp;b@example.com (&lt;@U0ADMIN&gt;)" in dumped
    assert "&lt;https://evil.example|click here&gt; &amp; &lt;!here&gt;" in dumped
    assert "&lt;!everyone&gt;" in dumped
    assert ":no_entry: denied" in field_texts(payload)["Result"]


def test_long_values_fit_slack_limits_without_cutting_an_entity() -> None:
    payload = message_for(event(error="x&" * 5000, reference="r<" * 3000, result="failed"))
    for block in payload["blocks"]:
        for item in block.get("fields", []):
            assert len(item["text"]) <= 2000
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert len(str(payload["text"])) <= 3000
    for text in strings(payload):
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)


# ------------------------------------------------------------------------------ delivery


async def test_server_errors_are_retried_until_success(receiver: Receiver) -> None:
    receiver.script = [Reply(500), Reply(503, b"busy")]
    slack = notifier(receiver.url, attempts=4)
    await slack.start()
    slack.notify(event())
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=1, failed=0, dropped=0)
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1  # the same message each time


async def test_gives_up_after_the_last_attempt(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.default = Reply(502)
    slack = notifier(receiver.url, attempts=3)
    await slack.start()
    slack.notify(event(request_id="req-502"))
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=0, failed=1, dropped=0)
    assert len(receiver.requests) == 3
    [warning] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert "'req-502'" in warning.getMessage()
    assert "after 3 attempt(s)" in warning.getMessage()
    assert "HTTP 502" in warning.getMessage()


async def test_429_waits_for_retry_after(receiver: Receiver) -> None:
    receiver.script = [Reply(429, b"rate_limited", (("Retry-After", "1"),))]
    slack = notifier(receiver.url, backoff=0.01)
    await slack.start()
    slack.notify(event())
    await slack.aclose(timeout=5)

    assert slack.stats.sent == 1
    first, second = receiver.requests
    assert second.at - first.at >= 0.95  # the header's second, not the 10 ms backoff


async def test_client_error_is_not_retried(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.default = Reply(400, b"invalid_payload")
    slack = notifier(receiver.url, attempts=4)
    await slack.start()
    slack.notify(event(request_id="req-400"))
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=0, failed=1, dropped=0)
    assert len(receiver.requests) == 1
    [warning] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert "'req-400'" in message
    assert "HTTP 400" in message
    assert "invalid_payload" in message
    assert "not retried" in message


async def test_timeouts_are_retried(receiver: Receiver) -> None:
    receiver.script = [Reply(hang=True)]
    slack = notifier(receiver.url, timeout=0.3)
    await slack.start()
    slack.notify(event())
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=1, failed=0, dropped=0)
    assert len(receiver.requests) == 2


async def test_connection_errors_are_retried_then_counted_as_failed() -> None:
    slack = notifier(f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}", attempts=2)
    await slack.start()
    slack.notify(event())
    await slack.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=0, failed=1, dropped=0)


async def test_one_message_per_event_in_order(receiver: Receiver) -> None:
    slack = notifier(receiver.url)
    await slack.start()
    for number in range(5):
        assert slack.notify(event(request_id=f"req-{number}"))
    await slack.aclose(timeout=5)

    assert slack.stats.sent == 5
    contexts = [r.json()["blocks"][-1]["elements"][0]["text"] for r in receiver.requests]
    assert contexts == [f"Request `req-{number}`" for number in range(5)]


async def test_notify_from_another_thread(receiver: Receiver) -> None:
    slack = notifier(receiver.url)
    await slack.start()
    await asyncio.sleep(0)  # the worker is now waiting for work
    assert await asyncio.to_thread(slack.notify, event()) is True
    await receiver.wait_for_requests(1)
    await slack.aclose(timeout=5)
    assert slack.stats.sent == 1


# ------------------------------------------------------------------------------ never in the way


async def test_hung_receiver_neither_blocks_notify_nor_close(receiver: Receiver) -> None:
    receiver.default = Reply(hang=True)
    # A request timeout far beyond the test's: anything that waited for the network would hang.
    slack = SlackNotifier(receiver.url, timeout=3600)
    await slack.start()

    # notify() is a plain call that only queues: nothing has reached the network when it returns
    # (the worker runs on this loop, which has not run since).
    assert not inspect.iscoroutinefunction(slack.notify)
    assert slack.notify(event(request_id="req-1")) is True
    assert receiver.requests == []
    await receiver.wait_for_requests(1)
    # With that request hung, a second notify() still only queues.
    assert slack.notify(event(request_id="req-2")) is True
    assert len(receiver.requests) == 1

    # aclose() gives up on the hung request after its own timeout, not the request's hour; the
    # outer bound only stops a test that would otherwise hang.
    await asyncio.wait_for(slack.aclose(timeout=1), timeout=120)
    assert slack.stats == NotifierStats(sent=0, failed=0, dropped=2)  # in flight + queued


async def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    slack = notifier(f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}", queue_size=2)
    # Not started, so nothing leaves the queue.
    results = [slack.notify(event(request_id=f"req-{n}")) for n in range(3)]

    assert results == [True, True, False]
    assert slack.stats == NotifierStats(sent=0, failed=0, dropped=1)
    [warning] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert "'req-2'" in warning.getMessage()
    assert "queue is full" in warning.getMessage()

    await slack.aclose(timeout=1)
    assert slack.stats == NotifierStats(sent=0, failed=0, dropped=3)


async def test_notify_after_close_is_refused_quietly(receiver: Receiver) -> None:
    slack = notifier(receiver.url)
    await slack.start()
    await slack.aclose(timeout=1)
    await slack.aclose(timeout=1)  # a second close is harmless

    assert slack.notify(event()) is False
    assert slack.stats == NotifierStats(sent=0, failed=0, dropped=1)
    await slack.start()  # a closed notifier stays closed
    assert slack.notify(event()) is False
    assert receiver.requests == []


def test_arguments_are_validated() -> None:
    url = "https://hooks.slack.com/services/T/B/X"
    for bad in ({"timeout": 0}, {"attempts": 0}, {"backoff": -1}, {"queue_size": 0}):
        with pytest.raises(UsageError):
            SlackNotifier(url, **bad)


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.slack.com{WEBHOOK_PATH}",
        f"http://127.0.0.1:8080{WEBHOOK_PATH}",
        f"http://localhost{WEBHOOK_PATH}",
        f"http://[::1]:9000{WEBHOOK_PATH}",
        f"  https://hooks.slack.com{WEBHOOK_PATH}\n",
    ],
)
def test_environment_accepts_https_and_loopback_http(url: str) -> None:
    slack = notifier_from_environment({ENV_WEBHOOK_URL: url})
    assert isinstance(slack, SlackNotifier)
    assert SECRET not in repr(slack)


@pytest.mark.parametrize("environ", [{}, {ENV_WEBHOOK_URL: ""}, {ENV_WEBHOOK_URL: "  "}])
def test_environment_without_url_disables_notifications(environ: dict[str, str]) -> None:
    assert notifier_from_environment(environ) is None


@pytest.mark.parametrize(
    "url",
    [
        f"http://hooks.slack.com{WEBHOOK_PATH}",
        f"http://10.0.0.1{WEBHOOK_PATH}",
        f"ftp://hooks.slack.com{WEBHOOK_PATH}",
        f"hooks.slack.com{WEBHOOK_PATH}",
        f"https//hooks.slack.com{WEBHOOK_PATH}",
        f"https://{WEBHOOK_PATH}",
        f"https://hooks.slack.com:notaport{WEBHOOK_PATH}",
    ],
)
def test_environment_rejects_other_urls_without_echoing_the_secret(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        notifier_from_environment({ENV_WEBHOOK_URL: url})
    error = caught.value
    assert ENV_WEBHOOK_URL in str(error)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


# ------------------------------------------------------------------------------ logs


async def test_no_log_record_contains_the_webhook_path(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpx_filters = list(logging.getLogger("httpx").filters)
    receiver.script = [Reply(500, WEBHOOK_PATH.encode()), Reply(200), Reply(404, b"no_service")]
    receiver.default = Reply(hang=True)
    slack = notifier(receiver.url)
    refused = notifier(f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}", attempts=2)
    await slack.start()
    await refused.start()
    for number in range(3):
        slack.notify(event(request_id=f"req-{number}"))
    refused.notify(event(request_id="req-refused"))
    await receiver.wait_for_requests(4)
    await slack.aclose(timeout=0.2)
    await refused.aclose(timeout=5)

    assert slack.stats == NotifierStats(sent=1, failed=1, dropped=1)
    assert refused.stats.failed == 1
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records if r.name == "httpx")
    mine = " ".join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    for request_id in ("req-0", "req-1", "req-2", "req-refused"):
        assert request_id in mine
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.name
        assert SECRET not in repr(record.args)
        assert SECRET not in (record.exc_text or "")
    assert SECRET not in caplog.text
    assert logging.getLogger("httpx").filters == httpx_filters  # the redactor is gone again
