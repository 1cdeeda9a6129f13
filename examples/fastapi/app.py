"""Notes: a small FastAPI app behind clerk-gateway.

The app never sees a Clerk token. The gateway in front of it verifies the session, strips
any identity header a client sent, and adds its own: `X-User-Id`, `X-Session-Id`,
`X-Org-*`, and from its user mirror `X-User-Email` and `X-User` (a JSON profile). The app
reads them into a typed `User` (`current_user`). Listening on 127.0.0.1 makes the gateway
the only way in; as defence in depth, with `GATEWAY_JWKS_URL` set (the gateway's
`[assertion]` on), it also checks the `X-Clerk-Gateway-Assertion` JWT the gateway signs on
every request, so a request that did not come through the gateway is refused even if it
reaches the app.

Run it:  uvicorn app:app --host 127.0.0.1 --port 8000
         GATEWAY_JWKS_URL=http://127.0.0.1:9090/.well-known/jwks.json uvicorn app:app ...
"""

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel

app = FastAPI(title="notes")

# The gateway's public keys (its admin listener), when its assertions are to be checked.
JWKS_URL = os.environ.get("GATEWAY_JWKS_URL")
JWKS = jwt.PyJWKClient(JWKS_URL, cache_keys=True) if JWKS_URL else None
# `aud` is the route's upstream as gateway.toml names it; by default this app's own address.
AUDIENCE = os.environ.get("GATEWAY_AUDIENCE")


def gateway_assertion(
    request: Request,
    x_clerk_gateway_assertion: Annotated[str | None, Header()] = None,
) -> dict | None:
    """The gateway's signed claims about this request (None when checking is off); 401 when
    the assertion is missing, forged, expired, for another upstream or another request."""
    if JWKS is None:
        return None
    if not x_clerk_gateway_assertion:
        raise HTTPException(status_code=401, detail="not through the gateway")
    host, port = request.scope["server"]
    try:
        key = JWKS.get_signing_key_from_jwt(x_clerk_gateway_assertion)
        claims = jwt.decode(
            x_clerk_gateway_assertion,
            key,
            algorithms=["EdDSA", "ES256"],
            audience=AUDIENCE or f"http://{host}:{port}",
            issuer="clerk-gateway",
            options={"require": ["exp", "iat", "aud", "iss"]},
        )
    except jwt.PyJWTError as error:
        raise HTTPException(status_code=401, detail=f"bad gateway assertion: {error}") from None
    # The path as the gateway forwarded it (still percent-encoded), without the query.
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    digest = hashlib.sha256(f"{request.method} {path}".encode("latin-1")).digest()
    if claims.get("rqh") != base64.urlsafe_b64encode(digest).rstrip(b"=").decode():
        raise HTTPException(status_code=401, detail="the assertion is for another request")
    return claims


@dataclass(frozen=True)
class User:
    """The signed-in user, as the gateway describes them."""

    id: str
    session_id: str
    email: str | None
    first_name: str | None
    metadata: dict
    org_id: str | None
    org_role: str | None
    permissions: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return self.org_role == "org:admin"


def current_user(
    assertion: Annotated[dict | None, Depends(gateway_assertion)],
    x_user_id: Annotated[str | None, Header()] = None,
    x_session_id: Annotated[str | None, Header()] = None,
    x_user_email: Annotated[str | None, Header()] = None,
    x_user: Annotated[str | None, Header()] = None,
    x_org_id: Annotated[str | None, Header()] = None,
    x_org_role: Annotated[str | None, Header()] = None,
    x_org_permissions: Annotated[str | None, Header()] = None,
) -> User:
    """The request's user; 401 without one (on an `optional` or `public` gateway route)."""
    if not x_user_id:
        raise HTTPException(status_code=401, detail="sign in first")
    if assertion is not None:
        # The identity headers must say what the gateway signed for this very request.
        signed = (assertion.get(k) for k in ("sub", "sid", "org_id", "org_role"))
        sent = (x_user_id, x_session_id, x_org_id, x_org_role)
        permissions = ",".join(assertion.get("org_permissions") or [])
        if any(a != b for a, b in zip(signed, sent)) or permissions != (x_org_permissions or ""):
            raise HTTPException(status_code=401, detail="the headers are not the gateway's")
    profile = json.loads(x_user) if x_user else {}
    return User(
        id=x_user_id,
        session_id=x_session_id or "",
        email=x_user_email,
        first_name=profile.get("first_name"),
        metadata=profile.get("public_metadata") or {},
        org_id=x_org_id,
        org_role=x_org_role,
        permissions=tuple(p for p in (x_org_permissions or "").split(",") if p),
    )


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The request's user, who must be an admin of the active organization."""
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="admins only")
    return user


class NewNote(BaseModel):
    text: str


NOTES: dict[str, list[dict]] = {}


@app.get("/healthz")
def healthz():
    return {"ok": True}


@app.get("/hello")
def hello(x_user_id: Annotated[str | None, Header()] = None):
    """Public: anyone may call it; a signed-in caller is greeted by id."""
    return {"hello": x_user_id or "guest"}


@app.get("/api/me")
def me(user: Annotated[User, Depends(current_user)]):
    return {"id": user.id, "session_id": user.session_id, "org_id": user.org_id, "org_role": user.org_role}


@app.get("/api/profile")
def profile(user: Annotated[User, Depends(current_user)]):
    """What the gateway's mirror knows of the user (fed by Clerk's webhooks)."""
    return {"email": user.email, "first_name": user.first_name, "plan": user.metadata.get("plan")}


@app.get("/api/notes")
def list_notes(user: Annotated[User, Depends(current_user)]):
    return {"owner": user.id, "notes": NOTES.get(user.id, [])}


@app.post("/api/notes", status_code=201)
def add_note(note: NewNote, user: Annotated[User, Depends(current_user)]):
    entry = {"id": len(NOTES.get(user.id, [])) + 1, "text": note.text}
    NOTES.setdefault(user.id, []).append(entry)
    return entry


@app.get("/api/admin/stats")
def stats(user: Annotated[User, Depends(admin_user)]):
    return {"users": len(NOTES), "notes": sum(len(n) for n in NOTES.values()), "by": user.id}
