#!/usr/bin/env python3
"""Mint Clerk-style RS256 session tokens for bench/suite.sh, one per line.

    mint.py KEY.pem OUT COUNT [--sub user_bench] [--sid-prefix sess_bench] [--exp-in 3600]
                              [--kid ins_a] [--jobs N]

Every token gets its own `sid` and `jti` (prefix + index), so COUNT tokens are COUNT distinct
strings the gateway has never seen. `--exp-in` may be negative (an expired token). The
claims are those of bench/proxy.sh: issuer https://clerk.example.com, azp
https://app.example.com, a v2 organization claim. Signing runs in --jobs processes (default:
every CPU), since RSA signing is the slow part (about 3,000 a second per core for 2048 bits).
"""
import argparse
import base64
import json
import os
import sys
import time
from multiprocessing import Pool

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ISSUER = "https://clerk.example.com"
AZP = "https://app.example.com"

_key = None
_args = None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _init(key_path, args):
    global _key, _args
    with open(key_path, "rb") as f:
        _key = serialization.load_pem_private_key(f.read(), password=None)
    _args = args


def _mint_range(bounds):
    start, end = bounds
    a = _args
    now = int(time.time())
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": a["kid"]}, separators=(",", ":")).encode())
    lines = []
    for i in range(start, end):
        claims = {
            "sub": a["sub"],
            "sid": f"{a['sid_prefix']}_{i}",
            "jti": f"{a['sid_prefix']}_jti_{i}",
            "iss": ISSUER,
            "azp": AZP,
            "iat": now - 10 if a["exp_in"] > 0 else now + a["exp_in"] - 60,
            "nbf": now - 15 if a["exp_in"] > 0 else now + a["exp_in"] - 65,
            "exp": now + a["exp_in"],
            "v": 2,
            "fea": "o:billing",
            "o": {"id": "org_1", "rol": "admin", "slg": "acme", "per": "read,manage", "fpm": "3"},
        }
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        sig = _key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        lines.append(f"{header}.{payload}.{b64url(sig)}\n")
    return "".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("key")
    p.add_argument("out")
    p.add_argument("count", type=int)
    p.add_argument("--sub", default="user_bench")
    p.add_argument("--sid-prefix", default="sess_bench")
    p.add_argument("--exp-in", type=int, default=3600)
    p.add_argument("--kid", default="ins_a")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    args = {"sub": a.sub, "sid_prefix": a.sid_prefix, "exp_in": a.exp_in, "kid": a.kid}
    chunk = 2000
    ranges = [(s, min(a.count, s + chunk)) for s in range(0, a.count, chunk)]
    tmp = a.out + ".part"
    with open(tmp, "w") as out:
        if a.jobs <= 1 or len(ranges) <= 1:
            _init(a.key, args)
            for r in ranges:
                out.write(_mint_range(r))
        else:
            with Pool(a.jobs, initializer=_init, initargs=(a.key, args)) as pool:
                for text in pool.imap(_mint_range, ranges):
                    out.write(text)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    sys.exit(main())
