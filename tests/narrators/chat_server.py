"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1 (stdlib http.server in a thread), for the openai
narrator's tests: each request takes the next scripted answer and is recorded. (A module of its own, not the
conftest: pytest keeps only one module named ``conftest`` importable at a time.)"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chat(content: str | None) -> dict:
    """A chat-completions answer whose reply is ``content``."""
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


@dataclass
class Answer:
    status: int = 200
    body: dict | str | None = None  # a dict is sent as JSON, a str as is
    delay: float = 0.0  # seconds before answering (a slow server)
    headers: dict = field(default_factory=dict)


def reply(content: str | None, **kwargs) -> Answer:
    return Answer(body=chat(content), **kwargs)


class ChatServer:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.requests: list[dict] = []  # {"path", "headers", "json"}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                server.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                answer = server.script.pop(0) if server.script else Answer(500, {"error": {"message": "script is empty"}})
                if answer.delay:
                    time.sleep(answer.delay)
                data = answer.body if isinstance(answer.body, str) else json.dumps(answer.body or {})
                payload = data.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

