#!/usr/bin/env python3
"""A tiny local HTTP API for examples/06-http-pipeline.json (no network needed).

GET  /users          -> {"users": [...]}   (needs "Authorization: Bearer demo-secret")
POST /notify/<id>    -> {"notified": <id>, "received": <request body>}
Usage: python3 scripts/demo-api.py [port]   (default 8099)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Linus"}]


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/users"):
            if self.headers.get("Authorization") != "Bearer demo-secret":
                return self._send(401, {"error": "unauthorized"})
            return self._send(200, {"users": USERS})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        if self.path.startswith("/notify/"):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            return self._send(200, {"notified": self.path.rsplit("/", 1)[-1], "received": body})
        self._send(404, {"error": "not found"})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
