// Notes: a small Express app behind clerk-gateway, with a WebSocket and server-sent events.
//
// The app never sees a Clerk token. The gateway in front of it verifies the session, strips
// any identity header a client sent, and adds its own: X-User-Id, X-Session-Id, X-Org-*,
// and from its user mirror X-User-Email and X-User (a JSON profile). The middleware below
// reads them into req.user. Listening on 127.0.0.1 makes the gateway the only way in; as
// defence in depth, with GATEWAY_JWKS_URL set (the gateway's [assertion] on), it also
// checks the X-Clerk-Gateway-Assertion JWT the gateway signs on every request, so a request
// that did not come through the gateway is refused even if it reaches the app. WebSocket
// upgrades pass through the gateway after it has checked the session, with the same headers.
//
// Run it:  PORT=8000 node server.js
//          GATEWAY_JWKS_URL=http://127.0.0.1:9090/.well-known/jwks.json PORT=8000 node server.js

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const express = require("express");
const { WebSocketServer } = require("ws");

// The gateway's public keys (its admin listener), when its assertions are to be checked.
// `aud` is the route's upstream as gateway.toml names it; by default this server's address.
const JWKS_URL = process.env.GATEWAY_JWKS_URL;
const AUDIENCE = process.env.GATEWAY_AUDIENCE;
const jose = JWKS_URL ? import("jose") : null; // jose is an ES module
const jwks = jose?.then(({ createRemoteJWKSet }) => createRemoteJWKSet(new URL(JWKS_URL)));

/**
 * The gateway's signed claims about this request (null when checking is off); throws when
 * the assertion is missing, forged, expired, for another upstream or another request.
 */
async function gatewayAssertion(req) {
  if (!jose) return null;
  const token = req.headers["x-clerk-gateway-assertion"];
  if (!token) throw new Error("not through the gateway");
  const { jwtVerify } = await jose;
  const local = req.socket;
  const { payload } = await jwtVerify(token, await jwks, {
    algorithms: ["EdDSA", "ES256"],
    issuer: "clerk-gateway",
    audience: AUDIENCE ?? `http://${local.localAddress.replace(/^::ffff:/, "")}:${local.localPort}`,
    requiredClaims: ["exp", "iat"],
  });
  // The path as the gateway forwarded it (still percent-encoded), without the query.
  const path = req.url.split("?")[0];
  const rqh = crypto.createHash("sha256").update(`${req.method} ${path}`).digest("base64url");
  if (payload.rqh !== rqh) throw new Error("the assertion is for another request");
  // The identity headers must say what the gateway signed for this very request.
  const h = req.headers;
  const signed = [payload.sub, payload.sid, payload.org_id, payload.org_role, (payload.org_permissions ?? []).join(",")];
  const sent = [h["x-user-id"], h["x-session-id"], h["x-org-id"], h["x-org-role"], h["x-org-permissions"] ?? ""];
  if (signed.some((value, i) => (value ?? undefined) !== sent[i])) throw new Error("the headers are not the gateway's");
  return payload;
}

/** The signed-in user the gateway describes, or null. */
function userFrom(headers) {
  const id = headers["x-user-id"];
  if (!id) return null;
  const profile = headers["x-user"] ? JSON.parse(headers["x-user"]) : {};
  return {
    id,
    sessionId: headers["x-session-id"] ?? null,
    email: headers["x-user-email"] ?? null,
    firstName: profile.first_name ?? null,
    metadata: profile.public_metadata ?? {},
    orgId: headers["x-org-id"] ?? null,
    orgRole: headers["x-org-role"] ?? null,
    permissions: (headers["x-org-permissions"] ?? "").split(",").filter(Boolean),
  };
}

/** Middleware: req.user, or 401 (on an `optional` or `public` gateway route). */
async function requireUser(req, res, next) {
  req.user = userFrom(req.headers);
  if (!req.user) return res.status(401).json({ error: "sign in first" });
  try {
    await gatewayAssertion(req);
  } catch (error) {
    return res.status(401).json({ error: "bad gateway assertion", detail: String(error.message) });
  }
  next();
}

/** Middleware after requireUser: the active organization's admins only. */
function requireAdmin(req, res, next) {
  if (req.user.orgRole !== "org:admin") return res.status(403).json({ error: "admins only" });
  next();
}

const notes = new Map();
const app = express();
app.use(express.json());

app.get("/healthz", (req, res) => res.json({ ok: true }));

app.get("/hello", (req, res) => res.json({ hello: req.get("x-user-id") ?? "guest" }));

app.get("/api/me", requireUser, (req, res) => {
  const { id, sessionId, orgId, orgRole } = req.user;
  res.json({ id, session_id: sessionId, org_id: orgId, org_role: orgRole });
});

app.get("/api/profile", requireUser, (req, res) => {
  res.json({ email: req.user.email, first_name: req.user.firstName, plan: req.user.metadata.plan ?? null });
});

app.get("/api/notes", requireUser, (req, res) => {
  res.json({ owner: req.user.id, notes: notes.get(req.user.id) ?? [] });
});

app.post("/api/notes", requireUser, (req, res) => {
  const mine = notes.get(req.user.id) ?? [];
  const entry = { id: mine.length + 1, text: String(req.body?.text ?? "") };
  notes.set(req.user.id, [...mine, entry]);
  res.status(201).json(entry);
});

app.get("/api/admin/stats", requireUser, requireAdmin, (req, res) => {
  let count = 0;
  for (const list of notes.values()) count += list.length;
  res.json({ users: notes.size, notes: count, by: req.user.id });
});

// Server-sent events: three ticks for the signed-in user, then the stream ends.
app.get("/api/events", requireUser, (req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let tick = 0;
  const timer = setInterval(() => {
    tick += 1;
    res.write(`event: tick\ndata: ${JSON.stringify({ tick, user: req.user.id })}\n\n`);
    if (tick === 3) {
      clearInterval(timer);
      res.end();
    }
  }, 50);
  req.on("close", () => clearInterval(timer));
});

const server = http.createServer(app);
const sockets = new WebSocketServer({ noServer: true });

// A WebSocket at /api/ws greets the signed-in user and echoes what it is sent.
server.on("upgrade", async (req, socket, head) => {
  const user = userFrom(req.headers);
  const asserted = await gatewayAssertion(req).then(() => true, () => false);
  if (new URL(req.url, "http://localhost").pathname !== "/api/ws" || !user || !asserted) {
    socket.end("HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\r\n");
    return;
  }
  sockets.handleUpgrade(req, socket, head, (ws) => {
    ws.send(`hello ${user.id}`);
    ws.on("message", (data) => ws.send(`echo: ${data}`));
  });
});

const port = Number(process.env.PORT ?? 8000);
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
