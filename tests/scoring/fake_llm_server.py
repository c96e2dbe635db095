"""A tiny OpenAI-compatible HTTP server on 127.0.0.1, for tests: no network beyond loopback.

``/v1/embeddings`` answers deterministic embeddings (hashed bag of words, so texts that share words
are similar); ``/v1/chat/completions`` answers ``server.chat_reply`` (a string, or a function of the
messages). Every request is recorded in ``server.requests`` (path, headers, JSON body). ``fail_with``
makes every answer that HTTP status; ``delay`` makes every answer that many seconds late.

    with FakeLLMServer() as server:
        provider = OpenAICompatibleProvider(server.base_url, "key", "fake-model", timeout=2)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSION = 64


def fake_embedding(text: str, dimension: int = DIMENSION) -> list[float]:
    vector = [0.0] * dimension
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % dimension] += 1.0 if digest[1] % 2 else -1.0
    if not any(vector):
        vector[0] = 1.0
    return vector


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr logging
        return

    def _answer(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._answer(400, {"error": {"message": "not JSON"}})
            return
        fake = self.server.fake
        fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if fake.delay:
            time.sleep(fake.delay)
        if fake.fail_with:
            self._answer(fake.fail_with, {"error": {"message": "failing on purpose"}})
            return
        if self.path == "/v1/embeddings":
            inputs = body.get("input", [])
            inputs = [inputs] if isinstance(inputs, str) else list(inputs)
            data = [{"object": "embedding", "index": i, "embedding": fake_embedding(t)} for i, t in enumerate(inputs)]
            data.reverse()  # clients must order by index, not by position
            self._answer(200, {"object": "list", "model": body.get("model"), "data": data,
                               "usage": {"prompt_tokens": 0, "total_tokens": 0}})
        elif self.path == "/v1/chat/completions":
            reply = fake.chat_reply(body.get("messages", [])) if callable(fake.chat_reply) else fake.chat_reply
            self._answer(200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": reply}}]})
        else:
            self._answer(404, {"error": {"message": f"no route {self.path}"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that hung up: not news
        return


class FakeLLMServer:
    def __init__(self, chat_reply: str | Callable[[Sequence[dict[str, str]]], str] = "OK") -> None:
        self.chat_reply = chat_reply
        self.requests: list[dict[str, Any]] = []
        self.fail_with = 0
        self.delay = 0.0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
