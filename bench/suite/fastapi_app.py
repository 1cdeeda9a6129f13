"""The FastAPI app of bench/suite.sh scenario (l), served by uvicorn with one worker.

GET /py/verify  verifies the session in the app, as an app without the gateway does:
                clerk-backend-api's authenticate_request, networkless (jwt_key = the PEM
                public key, authorized_parties set), 401 unless signed in.
GET /py/bare    the same app behind the gateway: trusts X-User-Id (401 without it), no
                verification.
Both answer the upstream's 64-byte text body.
"""
import os

from clerk_backend_api import Clerk
from clerk_backend_api.security.types import AuthenticateRequestOptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

BODY = b"hello from the upstream: 64 bytes of body, padding padding pad.\n"
with open(os.environ["JWT_KEY_FILE"]) as f:
    JWT_KEY = f.read()
OPTIONS = AuthenticateRequestOptions(jwt_key=JWT_KEY, authorized_parties=["https://app.example.com"])
clerk = Clerk()  # no secret key: with jwt_key, authenticate_request needs no network
app = FastAPI()


@app.get("/py/verify")
async def verify(request: Request):
    state = clerk.authenticate_request(request, OPTIONS)
    if not state.is_signed_in:
        return JSONResponse({"error": "unauthenticated", "reason": state.message}, status_code=401)
    return Response(BODY, media_type="text/plain")


@app.get("/py/bare")
async def bare(request: Request):
    if not request.headers.get("x-user-id"):
        return JSONResponse({"error": "unauthenticated"}, status_code=401)
    return Response(BODY, media_type="text/plain")
