// The Node app of bench/suite.sh scenario (m): a plain http server, one process.
//
// GET /node/verify  verifies the session in the app, as an app without the gateway does:
//                   @clerk/backend verifyToken, networkless (jwtKey = the PEM public key,
//                   authorizedParties set), 401 unless the token verifies.
// GET /node/bare    the same app behind the gateway: trusts X-User-Id (401 without it).
// Both answer the upstream's 64-byte text body.
//
//   node node_app.js PORT   (JWT_KEY_FILE names the PEM public key)
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const { verifyToken } = require("@clerk/backend");

const port = Number(process.argv[2] || 18140);
const jwtKey = fs.readFileSync(process.env.JWT_KEY_FILE, "utf8");
const options = { jwtKey, authorizedParties: ["https://app.example.com"] };
const BODY = Buffer.from("hello from the upstream: 64 bytes of body, padding padding pad.\n");
const UNAUTHENTICATED = Buffer.from('{"error":"unauthenticated"}');

function ok(res) {
  res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
  res.end(BODY);
}
function refuse(res) {
  res.writeHead(401, { "content-type": "application/json", "content-length": UNAUTHENTICATED.length });
  res.end(UNAUTHENTICATED);
}

async function verify(req, res) {
  const header = req.headers.authorization || "";
  const token = header.startsWith("Bearer ") ? header.slice(7) : null;
  if (!token) return refuse(res);
  try {
    await verifyToken(token, options); // resolves to the claims, rejects with the reason
  } catch {
    return refuse(res);
  }
  ok(res);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/node/verify")) {
    verify(req, res).catch(() => refuse(res));
  } else if (req.url.startsWith("/node/bare")) {
    if (req.headers["x-user-id"]) ok(res);
    else refuse(res);
  } else {
    res.writeHead(404, { "content-length": 0 });
    res.end();
  }
});
server.keepAliveTimeout = 300_000;
server.headersTimeout = 301_000;
server.listen(port, "127.0.0.1");
