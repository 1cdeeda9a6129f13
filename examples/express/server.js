// Notes: a small Express app behind clerk-gateway, with a WebSocket and server-sent events.
//
// The app never sees a Clerk token. The gateway in front of it verifies the session, strips
// any identity header a client sent, and adds its own: X-User-Id, X-Session-Id, X-Org-*,
// and from its user mirror X-User-Email and X-User (a JSON profile). The middleware below
// reads them into req.user and trusts them, which is safe only because the server listens
// on 127.0.0.1, reachable through the gateway alone. WebSocket upgrades pass through the
// gateway after it has checked the session, with the same headers.
//
// Run it:  PORT=8000 node server.js

"use strict";

const http = require("node:http");
const express = require("express");
const { WebSocketServer } = require("ws");

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
function requireUser(req, res, next) {
  req.user = userFrom(req.headers);
  if (!req.user) return res.status(401).json({ error: "sign in first" });
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
server.on("upgrade", (req, socket, head) => {
  const user = userFrom(req.headers);
  if (new URL(req.url, "http://localhost").pathname !== "/api/ws" || !user) {
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
