"""A loopback HTTP proxy in front of a registry that can misbehave on purpose.

It forwards every request to the upstream registry (keeping the ``Host`` header, so the
registry's Location URLs point back through the proxy) and can, per rule: answer with an error
status for a number of requests, cap or refuse tag page sizes, slow bodies down, corrupt blob
bodies, and it counts the body bytes that cross it in each direction.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from .httpd import CheckedHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    """Answer ``status`` to the next ``count`` requests matching ``method`` and ``path``.

    Status 0 closes the connection without any answer, like a crashed server or a proxy reset.
    Status -1 forwards the request, then closes the connection without its answer: the request
    took effect, but the client cannot know it.
    """

    status: int
    count: int
    method: str | None = None
    path: str = ""  # regular expression searched in the request path
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.count
            and (self.method is None or self.method == method)
            and re.search(self.path, path) is not None
        )


@dataclass
class FaultProxy:
    upstream: str  # host:port
    faults: list[Fault] = field(default_factory=list)
    # docker-registry 2.8 ignores n/last; with paginate_tags the proxy pages tag lists the way
    # distribution 3 and Quay do: sorted, n and last honoured, a Link header to the next page.
    paginate_tags: bool = False
    paginate_catalog: bool = False  # the same for /v2/_catalog
    tag_page_cap: int | None = None  # silently serve at most this many names per page (Quay)
    tag_page_max: int | None = None  # refuse larger pages with 400 (distribution 3)
    throttle_bytes_per_second: float | None = None  # slow blob GET bodies down
    ignore_mounts: bool = False  # drop ?mount=&from=, like registries without mount support
    corrupt_blob_gets: bool = False
    latency: float = 0.0  # seconds added before forwarding each request (a far-away registry)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    # (time.time() on arrival, method, path) of every request, for rates per second.
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    bytes_up: Counter[str] = field(default_factory=Counter)  # request body bytes per method
    bytes_down: Counter[str] = field(default_factory=Counter)  # response body bytes per method
    port: int = 0
    _server: CheckedHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fail(self, status: int, count: int, **kwargs: object) -> Fault:
        fault = Fault(status, count, **kwargs)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def blob_bytes_moved(self) -> int:
        """Blob bytes uploaded through the proxy (PUT and PATCH bodies)."""
        return self.bytes_up["PUT"] + self.bytes_up["PATCH"]

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two sends; with Nagle's algorithm the body would wait
            # for the client's delayed ACK (about 40 ms per response on a kept-alive connection).
            # Registries set TCP_NODELAY (Go does by default), so the proxy must too.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(parts)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                method = self.command
                with proxy._lock:
                    proxy.arrivals.append((time.time(), method, self.path))
                if proxy.latency:
                    time.sleep(proxy.latency)
                body = self._read_body()
                with proxy._lock:
                    proxy.bytes_up[method] += len(body)
                path = self.path
                fault = proxy._fault_for(method, path)
                if fault is not None:
                    # Logged before answering, so a client that already has the answer
                    # always finds it in the log.
                    with proxy._lock:
                        proxy.log.append((method, path, fault.status))
                    if fault.status == -1:  # forward, then lose the answer
                        upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                        try:
                            headers = {
                                key: ", ".join(self.headers.get_all(key) or [])
                                for key in set(self.headers.keys())
                                if key.lower() not in _HOP_BY_HOP
                            }
                            headers["Content-Length"] = str(len(body))
                            upstream.request(method, path, body=body or None, headers=headers)
                            upstream.getresponse().read()
                        finally:
                            upstream.close()
                        fault = Fault(0, 1)
                    if fault.status == 0:  # drop the connection without an answer
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                    self.send_response(fault.status)
                    for key, value in fault.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(payload)
                    return
                if proxy.ignore_mounts and method == "POST" and "mount=" in path:
                    path = urlsplit(path).path
                if "/tags/list" in path and method == "GET" and proxy.paginate_tags:
                    self._paginated(path, "tags")
                    return
                if path.startswith("/v2/_catalog") and method == "GET" and proxy.paginate_catalog:
                    self._paginated(path, "repositories")
                    return

                upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    headers: dict[str, str] = {}
                    for key in set(self.headers.keys()):
                        if key.lower() not in _HOP_BY_HOP:
                            headers[key] = ", ".join(self.headers.get_all(key) or [])
                    headers["Content-Length"] = str(len(body))
                    if method in ("GET", "HEAD", "DELETE") and not body:
                        headers.pop("Content-Length")
                    upstream.request(method, path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    with proxy._lock:
                        proxy.log.append((method, path, response.status))
                    self.send_response(response.status, response.reason)
                    length = response.getheader("Content-Length")
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    data = b""
                    if method == "HEAD":
                        self.send_header("Content-Length", length or "0")
                        self.end_headers()
                    elif length is not None:
                        self.send_header("Content-Length", length)
                        self.end_headers()
                        self._stream(response, int(length), method, path)
                    else:
                        data = response.read()
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        with proxy._lock:
                            proxy.bytes_down[method] += len(data)
                        self.wfile.write(data)
                finally:
                    upstream.close()

            def _paginated(self, path: str, key: str) -> None:
                parts = urlsplit(path)
                query = dict(parse_qsl(parts.query))
                n = int(query.get("n", "0") or 0) or 100
                if proxy.tag_page_max is not None and n > proxy.tag_page_max:
                    with proxy._lock:
                        proxy.log.append(("GET", path, 400))
                    self._json(
                        400,
                        b'{"errors":[{"code":"PAGINATION_NUMBER_INVALID",'
                        b'"message":"invalid number of results requested"}]}',
                    )
                    return
                if proxy.tag_page_cap is not None:
                    n = min(n, proxy.tag_page_cap)
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    upstream.request("GET", parts.path, headers={"Host": self.headers["Host"]})
                    response = upstream.getresponse()
                    raw = response.read()
                    status = response.status
                finally:
                    upstream.close()
                with proxy._lock:
                    proxy.log.append(("GET", path, status))
                if status != 200:
                    self._json(status, raw)
                    return
                listing = json.loads(raw)
                names = sorted(listing.get(key) or [])
                if "last" in query:
                    names = [t for t in names if t > query["last"]]
                page, rest = names[:n], names[n:]
                listing[key] = page
                body = json.dumps(listing).encode()
                link = None
                if rest:
                    link = f'<{parts.path}?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
                self._json(200, body, {"Link": link} if link else {})

            def _json(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(
                self, response: http.client.HTTPResponse, length: int, method: str, path: str
            ) -> None:
                is_blob = method == "GET" and "/blobs/sha256:" in path
                remaining = length
                first = True
                while remaining > 0:
                    chunk = response.read(min(65536, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if is_blob and proxy.corrupt_blob_gets and first:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    first = False
                    if is_blob and proxy.throttle_bytes_per_second:
                        time.sleep(len(chunk) / proxy.throttle_bytes_per_second)
                    with proxy._lock:
                        proxy.bytes_down[method] += len(chunk)
                    self.wfile.write(chunk)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        # Broken connections are what a fault proxy is for; any other error is its own bug.
        self._server = CheckedHTTPServer(
            ("127.0.0.1", 0), Handler, benign=(OSError, http.client.HTTPException)
        )
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
            server.check()
