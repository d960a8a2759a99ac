// tests/push/peers.mjs: what the push peer tests share: a pass/fail tally that
// ends with "N passed, N failed", a throwaway CA and server certificate made
// by the openssl CLI, credential files with mode 0600, Node stand-ins for an
// SMTP relay (smtp-server), APNs (http2 over TLS), FCM (https) and a Web Push
// endpoint (https), each on 127.0.0.1 with a free port and recording every
// byte it got, and runTool(), which runs push_tool (the real notifier) with a
// deadline.
//
// The npm packages come from $CARECHAT_NODE_MODULES (tests/node_modules made
// by `npm ci`); without it the tests fail, they do not skip.

import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const TOOL_TIMEOUT_MS = 45_000;

let passed = 0;
let failed = 0;

export function check(ok, what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        console.error(`FAIL: ${what}`);
    }
    return ok;
}

export function finish() {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

export function fatal(msg) {
    console.error(`fatal: ${msg}`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
}

// Whatever happens, a test ends: a watchdog well inside Bazel's timeout.
export function watchdog(ms = 90_000) {
    setTimeout(() => fatal(`test did not finish within ${ms} ms`), ms).unref();
}

export async function load(name) {
    const nodeModules = process.env.CARECHAT_NODE_MODULES;
    if (!nodeModules) fatal("CARECHAT_NODE_MODULES is not set");
    const dir = path.join(nodeModules, ...name.split("/"));
    const pkgFile = path.join(dir, "package.json");
    if (!existsSync(pkgFile)) fatal(`${name} is not installed in ${nodeModules} (npm ci in tests/)`);
    const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
    let entry = pkg.exports?.["."];
    if (typeof entry === "object") entry = entry.import ?? entry.node ?? entry.default;
    if (typeof entry === "object") entry = entry.default ?? entry.import;
    entry = entry ?? pkg.main ?? "index.js";
    const mod = await import(pathToFileURL(path.join(dir, entry)).href);
    // CommonJS packages come as {default: module.exports, ...}: merge both.
    return typeof mod.default === "object" || typeof mod.default === "function"
        ? Object.assign({}, mod.default, mod)
        : mod;
}

export function workdir(prefix) {
    const base = process.env.TEST_TMPDIR || os.tmpdir();
    return mkdtempSync(path.join(base, prefix));
}

export function newId() {
    return randomBytes(16).toString("hex");
}

export function writeSecret(file, text, mode = 0o600) {
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
}

// A CA and a server certificate for 127.0.0.1 and localhost, valid one day.
export function makePki(dir) {
    const f = (n) => path.join(dir, n);
    const ossl = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "1", "-subj", "/CN=carechat test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=localhost");
    writeFileSync(f("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n" +
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
    ossl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
        "-CAcreateserial", "-out", f("server.pem"), "-days", "1", "-extfile", f("ext.cnf"));
    return {
        caFile: f("ca.pem"),
        key: readFileSync(f("server.key")),
        cert: readFileSync(f("server.pem")),
    };
}

function listen(server) {
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server.address().port));
    });
}

function closeServer(server, extra = () => {}) {
    extra();
    return new Promise((resolve) => server.close(() => resolve()));
}

let toolRuns = 0;

// Runs push_tool with `config` over `jobs` (objects, one JSON line each).
// Resolves to {results, stats, stderr, code}; never hangs past the deadline.
export function runTool(tool, dir, config, jobs, deadlineMs = 30_000) {
    const cfgFile = path.join(dir, `config-${++toolRuns}.json`);
    writeFileSync(cfgFile, JSON.stringify(config));
    return new Promise((resolve) => {
        const child = spawn(tool, [cfgFile], {
            env: { ...process.env, PUSH_TOOL_DEADLINE_MS: String(deadlineMs) },
            stdio: ["pipe", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        const timer = setTimeout(() => child.kill("SIGKILL"), TOOL_TIMEOUT_MS);
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (err += d));
        child.on("close", (code) => {
            clearTimeout(timer);
            const lines = out.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
            resolve({
                results: lines.filter((l) => !l.stats),
                stats: lines.find((l) => l.stats)?.stats,
                stderr: err,
                code,
            });
        });
        child.stdin.end(jobs.map((j) => JSON.stringify(j)).join("\n") + "\n");
    });
}

// ---- SMTP ------------------------------------------------------------------

// An SMTP relay on 127.0.0.1. opts: implicitTls (smtps), noStarttls, auth
// {user, pass}, rcptCode (refuse RCPT with it), dataCodes (one reply code per
// DATA in turn, 250 when exhausted). `log` records connections, envelopes,
// every DATA stream in `raw` (also refused ones), accepted `messages`, and
// whether each was over TLS.
export async function startSmtp(pki, opts = {}) {
    const { SMTPServer } = await load("smtp-server");
    const log = { connections: 0, mailFrom: [], rcptTo: [], raw: [], messages: [], auths: [] };
    const dataCodes = [...(opts.dataCodes ?? [])];
    const server = new SMTPServer({
        key: pki.key,
        cert: pki.cert,
        secure: !!opts.implicitTls,
        logger: false,
        disabledCommands: opts.noStarttls ? ["STARTTLS", "AUTH"] : opts.auth ? [] : ["AUTH"],
        authOptional: !opts.auth,
        onConnect(session, cb) {
            log.connections++;
            cb();
        },
        onAuth(auth, session, cb) {
            log.auths.push({ user: auth.username, secure: session.secure });
            if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) {
                cb(null, { user: auth.username });
            } else {
                cb(new Error("Invalid username or password"));
            }
        },
        onMailFrom(address, session, cb) {
            log.mailFrom.push(address.address);
            cb();
        },
        onRcptTo(address, session, cb) {
            log.rcptTo.push(address.address);
            if (opts.rcptCode) {
                const e = new Error("mailbox unavailable");
                e.responseCode = opts.rcptCode;
                return cb(e);
            }
            cb();
        },
        onData(stream, session, cb) {
            const chunks = [];
            stream.on("data", (c) => chunks.push(c));
            stream.on("end", () => {
                const raw = Buffer.concat(chunks);
                log.raw.push(raw);
                const code = dataCodes.shift() ?? 250;
                if (code !== 250) {
                    const e = new Error("try again later");
                    e.responseCode = code;
                    return cb(e);
                }
                log.messages.push({ raw, secure: session.secure, rcpt: session.envelope.rcptTo.map((r) => r.address) });
                cb();
            });
        },
    });
    const port = await listen(server.server ?? server);
    return { port, log, close: () => new Promise((r) => server.close(() => r())) };
}

// ---- APNs ------------------------------------------------------------------

// An APNs stand-in: HTTP/2 over TLS. Verifies every provider token with jose
// against `publicKey` (a KeyObject) and records {path, headers, body,
// jwt: {header, payload} | null, jwtError}. Answers 410 for tokens in
// opts.dead, 400 BadDeviceToken for opts.bad, 403 when the JWT does not
// verify, else 200.
export async function startApns(pki, publicKey, opts = {}) {
    const jose = await load("jose");
    const log = { sessions: 0, requests: [], streamErrors: 0 };
    // A benchmark burst puts hundreds of streams on a connection: room for them,
    // and a stream the peer resets is not a crash.
    const server = http2.createSecureServer({ key: pki.key, cert: pki.cert, maxSessionMemory: 256 });
    server.on("session", () => log.sessions++);
    server.on("stream", (stream, headers) => {
        stream.on("error", () => log.streamErrors++);
        const chunks = [];
        stream.on("data", (c) => chunks.push(c));
        stream.on("end", async () => {
            const rec = { path: headers[":path"], method: headers[":method"], headers: { ...headers },
                body: Buffer.concat(chunks), jwt: null, jwtError: null };
            log.requests.push(rec);
            const auth = headers["authorization"] ?? "";
            try {
                const token = auth.replace(/^bearer /, "");
                const { payload, protectedHeader } = await jose.jwtVerify(token, publicKey, { algorithms: ["ES256"] });
                rec.jwt = { header: protectedHeader, payload, raw: token };
            } catch (e) {
                rec.jwtError = String(e);
            }
            const device = rec.path.split("/").pop();
            let status = 200;
            let body = "";
            if (!rec.jwt) {
                status = 403;
                body = JSON.stringify({ reason: "InvalidProviderToken" });
            } else if (opts.dead?.has(device)) {
                status = 410;
                body = JSON.stringify({ reason: "Unregistered", timestamp: Date.now() });
            } else if (opts.bad?.has(device)) {
                status = 400;
                body = JSON.stringify({ reason: "BadDeviceToken" });
            }
            if (stream.destroyed) return; // reset meanwhile (the client retries it)
            stream.respond({ ":status": status, "apns-id": "00000000-0000-0000-0000-000000000000" });
            stream.end(body);
        });
    });
    const sessions = new Set();
    server.on("session", (s) => sessions.add(s));
    const port = await listen(server);
    return { port, log, close: () => closeServer(server, () => sessions.forEach((s) => s.destroy())) };
}

// ---- FCM -------------------------------------------------------------------

// An FCM stand-in (https): POST /token checks the RS256 assertion with jose
// (iss, aud = token_uri, scope) and issues an access token; POST
// /v1/projects/<project>/messages:send checks the bearer token and answers
// 404 UNREGISTERED for tokens in opts.dead, 400 with errorCode UNREGISTERED
// for opts.unregistered, else 200.
export async function startFcm(pki, publicKey, opts = {}) {
    const jose = await load("jose");
    const log = { tokenRequests: [], sends: [], issued: [] };
    let port = 0;
    const server = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", async () => {
            const body = Buffer.concat(chunks);
            const reply = (status, obj) => {
                res.writeHead(status, { "content-type": "application/json" });
                res.end(JSON.stringify(obj));
            };
            if (req.url === "/token" && req.method === "POST") {
                const form = new URLSearchParams(body.toString());
                const rec = { headers: req.headers, body, form: Object.fromEntries(form), jwt: null, jwtError: null };
                log.tokenRequests.push(rec);
                try {
                    const { payload, protectedHeader } = await jose.jwtVerify(form.get("assertion"), publicKey, {
                        algorithms: ["RS256"],
                        audience: `https://127.0.0.1:${port}/token`,
                        issuer: opts.clientEmail,
                    });
                    rec.jwt = { header: protectedHeader, payload };
                } catch (e) {
                    rec.jwtError = String(e);
                }
                if (!rec.jwt || form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
                    return reply(400, { error: "invalid_grant" });
                }
                const token = "ya29." + randomBytes(24).toString("base64url");
                log.issued.push(token);
                return reply(200, { access_token: token, expires_in: 3599, token_type: "Bearer" });
            }
            const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url);
            if (m && req.method === "POST") {
                const rec = { url: req.url, project: m[1], headers: req.headers, body, json: null };
                log.sends.push(rec);
                try {
                    rec.json = JSON.parse(body.toString());
                } catch {
                    return reply(400, { error: { status: "INVALID_ARGUMENT" } });
                }
                const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
                if (!log.issued.includes(bearer)) return reply(401, { error: { status: "UNAUTHENTICATED" } });
                const token = rec.json?.message?.token;
                if (opts.dead?.has(token)) return reply(404, { error: { code: 404, status: "NOT_FOUND", message: "Requested entity was not found.", details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" }] } });
                if (opts.unregistered?.has(token)) return reply(400, { error: { code: 400, status: "INVALID_ARGUMENT", details: [{ errorCode: "UNREGISTERED" }] } });
                return reply(200, { name: `projects/${m[1]}/messages/${randomBytes(8).toString("hex")}` });
            }
            reply(404, { error: "no such route" });
        });
    });
    port = await listen(server);
    return { port, log, close: () => closeServer(server, () => server.closeAllConnections()) };
}

// ---- Web Push -----------------------------------------------------------------

// A Web Push endpoint (https). Records every request {url, headers, body};
// answers per path: /gone 410, /missing 404, /redirect 302 to opts.redirectTo,
// /big 201 with a 1 MiB body, /slow never, otherwise 201.
export async function startWebPush(pki, opts = {}) {
    const log = { requests: [], connections: 0 };
    const handler = (req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
            log.requests.push({ url: req.url, method: req.method, headers: req.headers, body: Buffer.concat(chunks) });
            if (req.url.startsWith("/gone")) res.writeHead(410);
            else if (req.url.startsWith("/missing")) res.writeHead(404);
            else if (req.url.startsWith("/redirect")) res.writeHead(302, { location: opts.redirectTo ?? "/" });
            else if (req.url.startsWith("/slow")) return; // never answers
            else res.writeHead(201, { location: "/m/1" });
            res.end(req.url.startsWith("/big") ? Buffer.alloc(1 << 20, 0x41) : undefined);
        });
    };
    const server = https.createServer({ key: pki.key, cert: pki.cert }, handler);
    server.on("connection", () => log.connections++);
    const port = await listen(server);
    return { port, log, close: () => closeServer(server, () => server.closeAllConnections()) };
}
