#!/usr/bin/env python3
"""A fake Clerk Backend API for bench/mirror.sh: N users, GET /v1/users (limit, offset,
starting_after), /v1/users/count, /v1/users/{id}. Users are generated on the fly."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

N = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18090


def user(i):
    uid = f"user_{N - 1 - i:07d}"  # newest first
    return {
        "id": uid, "object": "user", "username": None, "first_name": f"U{i}", "last_name": "Bench",
        "image_url": f"https://img.example.com/{uid}", "primary_email_address_id": f"idn_{uid}",
        "email_addresses": [{"id": f"idn_{uid}", "email_address": f"{uid}@example.com"}],
        "public_metadata": {"plan": "pro"}, "private_metadata": {}, "unsafe_metadata": {},
        "created_at": 1_700_000_000_000 - i, "updated_at": 1_700_000_000_000,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/v1/users/count":
            return self.reply(200, {"object": "total_count", "total_count": N})
        if url.path == "/v1/users":
            limit = int(q.get("limit", 10))
            if "starting_after" in q:
                start = N - int(q["starting_after"].split("_")[1])
            else:
                start = int(q.get("offset", 0))
            return self.reply(200, [user(i) for i in range(start, min(N, start + limit))])
        return self.reply(404, {"errors": [{"code": "resource_not_found", "message": "", "long_message": ""}]})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
