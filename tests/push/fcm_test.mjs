// tests/push/fcm_test.mjs: the notifier's FCM HTTP v1 channel against a Node
// https stand-in for Google's OAuth2 token endpoint and FCM.
//
//   node tests/push/fcm_test.mjs PATH/TO/push_tool
//
// Checks: one token request for many sends; its assertion verifies with jose
// (RS256, iss = client_email, aud = token_uri, scope firebase.messaging, exp
// about iat + 1 h) and grant_type jwt-bearer; each send goes to
// /v1/projects/<project>/messages:send with the issued bearer token and is a
// data-only, high-priority message of string values with the fixed text; 404
// UNREGISTERED and 400 with errorCode UNREGISTERED give TOKEN_DEAD; a service
// account without private_key disables FCM.

import { generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { check, fatal, finish, makePki, newId, runTool, startFcm, watchdog, workdir, writeSecret } from "./peers.mjs";

watchdog();
const tool = process.argv[2];
if (!tool) fatal("usage: fcm_test.mjs PUSH_TOOL");
const dir = workdir("fcm-");
const pki = makePki(dir);
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const clientEmail = "carechat-push@clinic-project.iam.gserviceaccount.com";
const fcm = await startFcm(pki, publicKey, { clientEmail, dead: new Set(["dead-token"]), unregistered: new Set(["unreg-token"]) });
const base = `https://127.0.0.1:${fcm.port}`;
const account = {
    type: "service_account",
    project_id: "clinic-project",
    private_key_id: "0123abcd",
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
    client_email: clientEmail,
    token_uri: `${base}/token`,
};
const saFile = writeSecret(path.join(dir, "sa.json"), JSON.stringify(account));
const config = (file) => ({ ca_file: pki.caFile, total_timeout_ms: 10000, fcm: { service_account_file: file, base_url: base } });

const ids = Array.from({ length: 6 }, newId);
const r = await runTool(tool, dir, config(saFile), [
    ...ids.slice(0, 4).map((id) => ({ id, channel: "fcm", kind: "new_message", fcm_token: "dXk:APA91b-live_token" })),
    { id: ids[4], channel: "fcm", kind: "new_message", fcm_token: "dead-token" },
    { id: ids[5], channel: "fcm", kind: "breach_notice", fcm_token: "unreg-token" },
]);
check(r.code === 0, `push_tool exit ${r.code}: ${r.stderr}`);
const byId = Object.fromEntries(r.results.map((x) => [x.id, x]));
check(ids.slice(0, 4).every((id) => byId[id]?.outcome === "delivered"), `delivered: ${JSON.stringify(r.results)}`);
check(byId[ids[4]]?.outcome === "token_dead" && byId[ids[4]].reply_code === 404, "404 UNREGISTERED -> token_dead");
check(byId[ids[5]]?.outcome === "token_dead" && byId[ids[5]].reply_code === 400, "400 errorCode UNREGISTERED -> token_dead");

check(fcm.log.tokenRequests.length === 1, `one token request for six sends (got ${fcm.log.tokenRequests.length})`);
const t = fcm.log.tokenRequests[0];
check(t?.jwt !== null, `assertion verifies: ${t?.jwtError}`);
check(t?.form.grant_type === "urn:ietf:params:oauth:grant-type:jwt-bearer", "grant_type jwt-bearer");
check(t?.headers["content-type"] === "application/x-www-form-urlencoded", "form encoded");
check(t?.jwt?.header.alg === "RS256", "RS256");
check(t?.jwt?.payload.scope === "https://www.googleapis.com/auth/firebase.messaging", "scope");
const p = t?.jwt?.payload ?? {};
check(Math.abs(p.iat - Date.now() / 1000) < 120 && p.exp - p.iat === 3600, "iat now, exp = iat + 3600");

const sends = fcm.log.sends;
check(sends.length === 6 && sends.every((s) => s.project === "clinic-project"), "six sends to the project");
check(sends.every((s) => s.headers.authorization === `Bearer ${fcm.log.issued[0]}`), "the issued bearer token");
const live = sends.filter((s) => s.json?.message?.token === "dXk:APA91b-live_token");
check(live.length === 4, "four to the live token");
const want = JSON.stringify({ message: { token: "dXk:APA91b-live_token", data: { kind: "new_message", title: "CareChat", body: "You have a new secure message" }, android: { priority: "high" } } });
check(live.every((s) => JSON.stringify(s.json) === want), `exactly the fixed data-only message: ${live[0]?.body}`);
check(live.every((s) => !("notification" in s.json.message)), "data-only (no notification block)");
check(live.every((s) => Object.values(s.json.message.data).every((v) => typeof v === "string")), "string values");

// No private key: FCM disabled, nothing sent.
const broken = writeSecret(path.join(dir, "broken.json"), JSON.stringify({ ...account, private_key: undefined }));
const n = fcm.log.sends.length + fcm.log.tokenRequests.length;
const r2 = await runTool(tool, dir, config(broken), [{ id: newId(), channel: "fcm", kind: "new_message", fcm_token: "x" }]);
check(r2.results[0]?.cause === "not_configured" && r2.results[0].outcome === "permanent_failure", "broken account: not_configured");
check(fcm.log.sends.length + fcm.log.tokenRequests.length === n, "nothing sent");

await fcm.close();
finish();
