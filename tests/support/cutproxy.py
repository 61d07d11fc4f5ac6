"""A loopback HTTP/1.1 proxy that cuts one connection part-way through a body, and counts bytes.

Put in front of a registry it plays a network that fails once: after ``cut_upload_after`` bytes
of upload bodies (PATCH, PUT, POST) have crossed it, it closes the connection in the middle of
the request carrying the next byte; after ``cut_download_after`` bytes of blob GET bodies, in
the middle of that response. It counts every body byte either way, so a test can say how many
bytes a client sent in all.

How the registry sees a cut request depends on ``buffer_uploads``: False streams each body to
the registry as it arrives, so the registry gets the part before the cut (a plain TCP path);
True reads each body whole before forwarding it, as nginx does by default
(``proxy_request_buffering on``), so a cut request never reaches the registry.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

_PIECE = 1 << 16


@dataclass
class CutProxy:
    upstream: str  # host:port
    cut_upload_after: int | None = None
    cut_download_after: int | None = None
    buffer_uploads: bool = False
    ignore_range: bool = False  # drop Range from requests: a server that always sends it all
    uploaded: int = 0  # upload body bytes received from clients
    downloaded: int = 0  # blob GET body bytes sent to clients
    cuts: int = 0
    log: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    port: int = 0
    _server: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CutProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        self._server = server
        self.port = server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def requests(self, method: str, fragment: str = "") -> list[tuple[str, str, int]]:
        with self._lock:
            return [e for e in self.log if e[0] == method and fragment in e[1]]

    # ------------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while self._server is not None:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = client.makefile("rb")
        try:
            while self._one(client, reader):
                pass
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                reader.close()
                client.close()

    def _take(self, kind: str, size: int) -> int:
        """Count ``size`` bytes; how many may pass before this direction's cut (once)."""
        with self._lock:
            if kind == "up":
                limit, before = self.cut_upload_after, self.uploaded
            else:
                limit, before = self.cut_download_after, self.downloaded
            allowed = size if limit is None else max(0, min(size, limit - before))
            if allowed < size:
                if kind == "up":
                    self.cut_upload_after = None
                else:
                    self.cut_download_after = None
                self.cuts += 1
            if kind == "up":
                self.uploaded += allowed
            else:
                self.downloaded += allowed
            return allowed

    def _one(self, client: socket.socket, reader: BinaryIO) -> bool:
        """Relay one request and its answer; False when the client connection is done."""
        head = _read_head(reader)
        if head is None:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        length = 0
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "transfer-encoding":
                raise RuntimeError("the cut proxy handles Content-Length bodies only")
        dropped = {"connection", "range"} if self.ignore_range else {"connection"}
        kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in dropped]
        upstream_head = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode()
        upstream = socket.create_connection(_address(self.upstream))
        try:
            spool: BinaryIO | None = None
            if self.buffer_uploads and length:
                spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115
            else:
                upstream.sendall(upstream_head)
            remaining = length
            while remaining:
                data = reader.read(min(_PIECE, remaining))
                if not data:
                    return False
                allowed = self._take("up", len(data))
                if allowed < len(data):
                    if spool is None:  # the registry gets the part before the cut
                        upstream.sendall(data[:allowed])
                    _cut(client)
                    with self._lock:
                        self.log.append((method, path, 0))
                    return False
                remaining -= len(data)
                if spool is not None:
                    spool.write(data)
                else:
                    upstream.sendall(data)
            if spool is not None:
                upstream.sendall(upstream_head)
                spool.seek(0)
                while data := spool.read(_PIECE):
                    upstream.sendall(data)
                spool.close()
            return self._relay_answer(client, upstream, method, path)
        finally:
            upstream.close()

    def _relay_answer(
        self, client: socket.socket, upstream: socket.socket, method: str, path: str
    ) -> bool:
        answer = upstream.makefile("rb")
        head = _read_head(answer)
        if head is None:
            _cut(client)
            return False
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        with self._lock:
            self.log.append((method, path, status))
        kept = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() != "connection"]
        client.sendall("\r\n".join([lines[0], *kept, "", ""]).encode("latin-1"))
        counted = method == "GET" and "/blobs/sha256:" in path
        # Upstream closes after its answer (Connection: close): everything until then is body.
        while data := answer.read1(_PIECE):
            if counted:
                allowed = self._take("down", len(data))
                if allowed < len(data):
                    client.sendall(data[:allowed])
                    _cut(client)
                    return False
            client.sendall(data)
        return True


def _read_head(reader: BinaryIO) -> bytes | None:
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)
        lines.append(line)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _address(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)
