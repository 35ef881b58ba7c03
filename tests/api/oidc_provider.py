"""A small OpenID Connect provider on loopback, for the sign-in tests: discovery, authorize (answers
at once, as if the user had signed in), token (checks the PKCE verifier), JWKS; RS256 ID tokens.

`claims` are what the next ID token says about the user; `tamper` lets a test break one claim.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "govsoc-test"


@dataclass
class Provider:
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    claims: dict[str, Any] = field(default_factory=dict)
    tamper: dict[str, Any] = field(default_factory=dict)
    forger: RSAKey | None = None  # when set, ID tokens are signed with it instead of the published key
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (nonce, challenge)

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300,
                  "nonce": nonce, **self.claims, **self.tamper}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.forger or self.key)


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, body: Any, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json({"issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks"})
            elif url.path == "/jwks":
                self._json(KeySet([provider.key]).as_dict(private=False))
            elif url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                code = secrets.token_urlsafe(16)
                provider.codes[code] = (query["nonce"], query["code_challenge"])
                self.send_response(302)
                answer = urlencode({"code": code, "state": query["state"]})
                self.send_header("Location", f"{query['redirect_uri']}?{answer}")
                self.end_headers()
            else:
                self._json({"error": "not_found"}, 404)

        def do_POST(self) -> None:
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            nonce, challenge = provider.codes.pop(form.get("code", ""), ("", ""))
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if not nonce or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                self._json({"error": "invalid_grant"}, 400)
                return
            self._json({"access_token": "a", "token_type": "Bearer", "id_token": provider.id_token(nonce)})

    return Handler


@contextmanager
def running_provider() -> Iterator[Provider]:
    provider = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
