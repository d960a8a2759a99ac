// tests/push/apns_test.mjs: the notifier's APNs channel against a Node http2
// (TLS) stand-in that verifies the ES256 provider token with jose.
//
//   node tests/push/apns_test.mjs PATH/TO/push_tool
//
// Checks: POST /3/device/<hex token> over HTTP/2; the JWT verifies (ES256,
// kid, iss = team id, iat now) and is one token reused for every request;
// apns-topic, apns-push-type: alert, apns-priority: 10, an opaque 32-hex
// apns-collapse-id (same for a job's retry, not the job id); the body is
// exactly the fixed alert with mutable-content 1; all requests share one
// HTTP/2 connection; 410 and 400 BadDeviceToken give TOKEN_DEAD; a sandbox
// token goes to the sandbox URL; a key file with mode 0644 disables APNs.

import { generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { check, fatal, finish, makePki, newId, runTool, startApns, watchdog, workdir, writeSecret } from "./peers.mjs";

watchdog();
const tool = process.argv[2];
if (!tool) fatal("usage: apns_test.mjs PUSH_TOOL");
const dir = workdir("apns-");
const pki = makePki(dir);
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const keyFile = writeSecret(path.join(dir, "apns.p8"), privateKey.export({ type: "pkcs8", format: "pem" }));

const live = "a1".repeat(32);
const dead = "de".repeat(32);
const bad = "0b".repeat(32);
const sandboxTok = "5a".repeat(32);
const apns = await startApns(pki, publicKey, { dead: new Set([dead]), bad: new Set([bad]) });
const base = `https://127.0.0.1:${apns.port}`;
const config = (extra = {}) => ({
    ca_file: pki.caFile,
    total_timeout_ms: 10000,
    apns: { key_file: keyFile, key_id: "KEYID12345", team_id: "TEAMID6789", topic: "example.clinic.carechat",
        base_url: base, sandbox_url: `${base}/sandbox`, ...extra },
});

const ids = Array.from({ length: 8 }, newId);
const jobs = [
    ...ids.slice(0, 5).map((id) => ({ id, channel: "apns", kind: "new_message", apns_token: live })),
    { id: ids[5], channel: "apns", kind: "breach_notice", apns_token: dead },
    { id: ids[6], channel: "apns", kind: "new_message", apns_token: bad },
    { id: ids[7], channel: "apns", kind: "new_message", apns_token: sandboxTok, apns_sandbox: true },
];
const r = await runTool(tool, dir, config(), jobs);
check(r.code === 0, `push_tool exit ${r.code}: ${r.stderr}`);
const byId = Object.fromEntries(r.results.map((x) => [x.id, x]));
check(ids.slice(0, 5).every((id) => byId[id]?.outcome === "delivered" && byId[id].reply_code === 200), "200 -> delivered");
check(byId[ids[5]]?.outcome === "token_dead" && byId[ids[5]].reply_code === 410, "410 -> token_dead");
check(byId[ids[6]]?.outcome === "token_dead" && byId[ids[6]].reply_code === 400, "400 BadDeviceToken -> token_dead");
check(byId[ids[7]]?.outcome === "delivered", "sandbox token delivered");

const reqs = apns.log.requests;
check(reqs.length === 8, `8 requests, got ${reqs.length}`);
check(reqs.every((q) => q.jwt !== null), `every JWT verifies: ${reqs.map((q) => q.jwtError).filter(Boolean)}`);
const now = Date.now() / 1000;
check(reqs.every((q) => q.jwt?.header.alg === "ES256" && q.jwt?.header.kid === "KEYID12345"), "alg ES256, kid");
check(reqs.every((q) => q.jwt?.payload.iss === "TEAMID6789" && Math.abs(q.jwt.payload.iat - now) < 120), "iss, iat");
check(new Set(reqs.map((q) => q.jwt?.raw)).size === 1, "one provider token reused for every request");
check(reqs.every((q) => q.method === "POST"), "POST");
check(reqs.filter((q) => q.path === `/3/device/${live}`).length === 5, "path /3/device/<token>");
check(reqs.some((q) => q.path === `/sandbox/3/device/${sandboxTok}`), "sandbox token to the sandbox URL");
check(reqs.every((q) => q.headers["apns-topic"] === "example.clinic.carechat" && q.headers["apns-push-type"] === "alert" &&
    q.headers["apns-priority"] === "10"), "apns-topic, apns-push-type, apns-priority");
const collapse = reqs.map((q) => q.headers["apns-collapse-id"]);
check(collapse.every((c) => /^[0-9a-f]{32}$/.test(c)) && new Set(collapse).size === 8, "opaque collapse ids, one per job");
check(ids.every((id) => !collapse.includes(id)), "collapse id is not the job id");
const want = JSON.stringify({ aps: { alert: { title: "CareChat", body: "You have a new secure message" }, sound: "default", "mutable-content": 1 } });
check(reqs.filter((q) => q.path.endsWith(live)).every((q) => JSON.stringify(JSON.parse(q.body)) === want), "exactly the fixed body");
check(apns.log.sessions === 1, `one HTTP/2 connection for all requests (got ${apns.log.sessions})`);

// The same job again (a retry): the same collapse id.
const before = apns.log.requests.length;
const r2 = await runTool(tool, dir, config(), [{ ...jobs[0], attempt: 2 }]);
check(r2.results[0]?.outcome === "delivered" && r2.results[0].attempt === 2, "retry delivered");
check(apns.log.requests[before]?.headers["apns-collapse-id"] === collapse[0], "a retry keeps its collapse id");

// A key file others may read disables the channel.
const loose = writeSecret(path.join(dir, "loose.p8"), privateKey.export({ type: "pkcs8", format: "pem" }), 0o644);
const n = apns.log.requests.length;
const r3 = await runTool(tool, dir, config({ key_file: loose }), [jobs[0]]);
check(r3.results[0]?.cause === "not_configured", `loose key: not_configured, got ${JSON.stringify(r3.results)}`);
check(apns.log.requests.length === n, "nothing sent");

await apns.close();
finish();
