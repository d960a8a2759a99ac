// tests/push/webpush_test.mjs: the notifier's Web Push channel against a Node
// https endpoint that decrypts with http_ece and checks VAPID with jose, and
// the SSRF defence.
//
//   node tests/push/webpush_test.mjs PATH/TO/push_tool
//
// 1. Delivery to an allow-listed 127.0.0.1 endpoint: http_ece decrypts the body
//    with the subscription's private key and auth secret to exactly the fixed
//    payload; the VAPID JWT (Authorization: vapid t=..., k=...) verifies with
//    the key in k, aud = the endpoint's origin, sub, exp within 24 h; TTL,
//    Urgency and Content-Encoding headers; /gone (410) and /missing (404) give
//    TOKEN_DEAD.
// 2. A 302 is not followed: PERMANENT (redirect); the redirect target gets no
//    request.
// 3. A hostile endpoint is bounded: a 1 MiB answer stops at max_response_bytes
//    (RETRY, response_too_large), one that never answers at total_timeout_ms
//    (RETRY, timeout).
// 4. Without the allow-list: 127.0.0.1, localhost, 0x7f000001 spelt as a
//    number, ::ffff:127.0.0.1, 169.254.169.254, plain http and user info are
//    refused (PERMANENT, address_refused) and the endpoint gets no connection;
//    the log names the address class.

import { createECDH, randomBytes } from "node:crypto";
import { check, fatal, finish, load, makePki, newId, runTool, startWebPush, watchdog, workdir, writeSecret } from "./peers.mjs";
import { generateKeyPairSync } from "node:crypto";
import path from "node:path";

watchdog();
const tool = process.argv[2];
if (!tool) fatal("usage: webpush_test.mjs PUSH_TOOL");
const ece = await load("http_ece");
const jose = await load("jose");
const dir = workdir("webpush-");
const pki = makePki(dir);
const vapid = generateKeyPairSync("ec", { namedCurve: "P-256" });
const vapidFile = writeSecret(path.join(dir, "vapid.pem"), vapid.privateKey.export({ type: "pkcs8", format: "pem" }));
const vapidRaw = Buffer.from(vapid.publicKey.export({ format: "jwk" }).x, "base64url");

// the browser's subscription keys
const ua = createECDH("prime256v1");
ua.generateKeys();
const auth = randomBytes(16);
const sub = { p256dh: ua.getPublicKey().toString("base64url"), auth: auth.toString("base64url") };

const target = await startWebPush(pki); // the redirect target: must see nothing
const wp = await startWebPush(pki, { redirectTo: `https://127.0.0.1:${target.port}/steal` });
const origin = `https://127.0.0.1:${wp.port}`;
const config = (allow) => ({
    ca_file: pki.caFile,
    total_timeout_ms: 10000,
    webpush: { vapid_key_file: vapidFile, subject: "mailto:ops@clinic.example", ttl_s: 3600, allow_hosts: allow },
});
const job = (endpoint, extra = {}) => ({ id: newId(), channel: "webpush", kind: "new_message", endpoint, ...sub, ...extra });

// 1 + 2
const jobs = [job(`${origin}/push/abc`), job(`${origin}/push/def`, { kind: "breach_notice" }), job(`${origin}/gone/1`), job(`${origin}/missing/2`), job(`${origin}/redirect/3`)];
const r = await runTool(tool, dir, config(["127.0.0.1"]), jobs);
check(r.code === 0, `push_tool exit ${r.code}: ${r.stderr}`);
const out = jobs.map((j) => r.results.find((x) => x.id === j.id));
check(out[0]?.outcome === "delivered" && out[0].reply_code === 201, `201 -> delivered: ${JSON.stringify(out[0])}`);
check(out[1]?.outcome === "delivered", "breach notice delivered");
check(out[2]?.outcome === "token_dead" && out[2].reply_code === 410, "410 -> token_dead");
check(out[3]?.outcome === "token_dead" && out[3].reply_code === 404, "404 -> token_dead");
check(out[4]?.outcome === "permanent_failure" && out[4].cause === "redirect" && out[4].reply_code === 302, `302 not followed: ${JSON.stringify(out[4])}`);
check(target.log.requests.length === 0 && target.log.connections === 0, "the redirect target got nothing");

const want = {
    "/push/abc": { kind: "new_message", title: "CareChat", body: "You have a new secure message" },
    "/push/def": { kind: "breach_notice", title: "CareChat", body: "Important notice about your account" },
};
for (const [p, payload] of Object.entries(want)) {
    const q = wp.log.requests.find((x) => x.url === p);
    if (!check(!!q, `request to ${p}`)) continue;
    check(q.method === "POST" && q.headers["content-encoding"] === "aes128gcm", "POST, Content-Encoding: aes128gcm");
    check(q.headers["ttl"] === "3600" && q.headers["urgency"] === "high", "TTL and Urgency");
    let plain = null;
    try {
        plain = ece.decrypt(q.body, { version: "aes128gcm", privateKey: ua, authSecret: auth }).toString("utf8");
    } catch (e) {
        check(false, `http_ece decrypts: ${e}`);
    }
    check(plain !== null && JSON.stringify(JSON.parse(plain)) === JSON.stringify(payload), `exactly the fixed payload: ${plain}`);
    const m = /^vapid t=([^,]+), k=([A-Za-z0-9_-]+)$/.exec(q.headers.authorization ?? "");
    if (!check(!!m, `vapid Authorization header: ${q.headers.authorization}`)) continue;
    const k = Buffer.from(m[2], "base64url");
    check(k.length === 65 && k[0] === 4 && k.subarray(1, 33).equals(vapidRaw), "k is the VAPID public key");
    try {
        const key = await jose.importJWK({ kty: "EC", crv: "P-256", x: k.subarray(1, 33).toString("base64url"), y: k.subarray(33).toString("base64url") }, "ES256");
        const { payload: claims, protectedHeader } = await jose.jwtVerify(m[1], key, { algorithms: ["ES256"], audience: origin });
        check(protectedHeader.typ === "JWT", "typ JWT");
        check(claims.sub === "mailto:ops@clinic.example", "sub");
        check(claims.exp > Date.now() / 1000 && claims.exp < Date.now() / 1000 + 86400, "exp within 24 h");
    } catch (e) {
        check(false, `VAPID JWT verifies: ${e}`);
    }
}
// A fresh key and salt per message.
const salts = wp.log.requests.filter((q) => q.url.startsWith("/push")).map((q) => q.body.subarray(0, 16).toString("hex"));
check(new Set(salts).size === salts.length, "a new salt per message");

// 3: bounds
{
    const big = job(`${origin}/big/1`);
    const slow = job(`${origin}/slow/1`);
    const cfg = config(["127.0.0.1"]);
    cfg.max_response_bytes = 4096;
    cfg.total_timeout_ms = 1500;
    const t0 = Date.now();
    const rb = await runTool(tool, dir, cfg, [big, slow]);
    const xb = rb.results.find((x) => x.id === big.id);
    const xs = rb.results.find((x) => x.id === slow.id);
    check(xb?.outcome === "retry" && xb.cause === "response_too_large", `1 MiB answer bounded: ${JSON.stringify(xb)}`);
    check(xs?.outcome === "retry" && xs.cause === "timeout" && xs.latency_ms >= 1400 && xs.latency_ms < 5000,
        `silent endpoint bounded by total_timeout_ms: ${JSON.stringify(xs)}`);
    check(Date.now() - t0 < 10000, "both within seconds");
}

// 4: SSRF
const before = wp.log.connections;
const bad = [
    `https://127.0.0.1:${wp.port}/push/abc`,
    `https://localhost:${wp.port}/push/abc`,
    `https://2130706433:${wp.port}/push/abc`,
    `https://[::ffff:127.0.0.1]:${wp.port}/push/abc`,
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/x",
    "https://10.1.2.3/x",
    `http://127.0.0.1:${wp.port}/push/abc`,
    `https://user@127.0.0.1:${wp.port}/push/abc`,
].map((e) => job(e));
const r2 = await runTool(tool, dir, config([]), bad);
check(r2.code === 0, `push_tool exit ${r2.code}: ${r2.stderr}`);
for (const j of bad) {
    const x = r2.results.find((y) => y.id === j.id);
    check(x?.outcome === "permanent_failure" && x.cause === "address_refused" && x.reply_code === 0,
        `${j.endpoint} refused: ${JSON.stringify(x)}`);
}
check(wp.log.connections === before, `no connection reached the endpoint (${wp.log.connections - before})`);
check(/loopback address/.test(r2.stderr) && /link_local address/.test(r2.stderr) && /private address/.test(r2.stderr),
    "the log names the address classes");
check(!r2.stderr.includes(String(wp.port)) || !r2.stderr.includes("/push/abc"), "the log does not print endpoints");

await wp.close();
await target.close();
finish();
