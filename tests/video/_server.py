"""A tiny HTTP server on 127.0.0.1 for the stream tests: serves a file (with Range support, like a web server)
and a "live" endless MPEG-TS stream that can be cut and refused, so reconnects can be tested without a camera.
Every loop is bounded and the server stops when its ``with`` block ends."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


class LocalVideoServer:
    """``with LocalVideoServer(file_bytes, live_bytes) as server:`` then ``server.url("/file.mp4")``,
    ``server.url("/live.ts")``. The live stream repeats ``live_bytes`` at ``live_rate`` bytes/s, cuts each
    connection after ``live_seconds``, and answers 503 after ``max_connections`` live connections.

    ``stall_after`` (also settable while serving): each file response sends at most this many bytes of its body,
    then stalls with the connection open (until the server stops, at most 60 s), as a server that hangs
    mid-body does; ``stalled`` counts those responses."""

    def __init__(
        self,
        file_bytes: bytes = b"",
        live_bytes: bytes = b"",
        *,
        live_rate: float = 200_000,
        live_seconds: float = 1.0,
        max_connections: Optional[int] = None,
        stall_after: Optional[int] = None,
    ) -> None:
        self.file_bytes = file_bytes
        self.stall_after = stall_after
        self.stalled = 0
        self.live_bytes = live_bytes
        self.live_rate = live_rate
        self.live_seconds = live_seconds
        self.max_connections = max_connections
        self.live_connections = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/file.mp4":
                    server._serve_file(self)
                elif self.path == "/live.ts":
                    server._serve_live(self)
                else:
                    self.send_error(404)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def _serve_file(self, handler: BaseHTTPRequestHandler) -> None:
        data, begin, end = self.file_bytes, 0, len(self.file_bytes) - 1
        ranged = handler.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            begin = int(first or 0)
            end = min(int(last), end) if last else end
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {begin}-{end}/{len(data)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(end - begin + 1))
        handler.end_headers()
        body, limit = data[begin : end + 1], self.stall_after
        try:
            handler.wfile.write(body if limit is None else body[:limit])
            if limit is not None and limit < len(body):
                handler.wfile.flush()
                with self._lock:
                    self.stalled += 1
                self._stopping.wait(60)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve_live(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            if self.max_connections is not None and self.live_connections >= self.max_connections:
                self.refused += 1
                refuse = True
            else:
                self.live_connections += 1
                refuse = False
        if refuse:
            handler.send_error(503)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp2t")
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = 188 * 20
        deadline = time.monotonic() + self.live_seconds
        position = 0
        try:
            while time.monotonic() < deadline and not self._stopping.is_set():
                piece = self.live_bytes[position : position + chunk]
                position = (position + chunk) % len(self.live_bytes)
                handler.wfile.write(piece)
                time.sleep(len(piece) / self.live_rate)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def __enter__(self) -> "LocalVideoServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
