// tests/push/canary_test.mjs: nothing but the fixed text leaves the notifier.
//
//   node tests/push/canary_test.mjs PATH/TO/push_tool
//
// Every job line carries a unique canary as a would-be sender, patient,
// team, conversation and message text. A push_job has no field for any of
// them, so push_tool drops them; this test shows it on the wire: one job per
// channel (email, APNs, FCM, Web Push) against all four stand-ins, every
// captured byte (SMTP envelope and DATA, request paths, headers and bodies,
// the OAuth2 exchange, the decrypted Web Push payload) is searched for the
// canary, and every body equals the fixed text exactly. The notifier's log
// must not contain the canary, the email address or the device tokens either.

import { createECDH, generateKeyPairSync, randomBytes } from "node:crypto";
import path from "node:path";
import { check, fatal, finish, load, makePki, newId, runTool, startApns, startFcm, startSmtp, startWebPush, watchdog, workdir, writeSecret } from "./peers.mjs";

watchdog();
const tool = process.argv[2];
if (!tool) fatal("usage: canary_test.mjs PUSH_TOOL");
const ece = await load("http_ece");
const dir = workdir("canary-");
const pki = makePki(dir);
const canary = "CANARY-" + randomBytes(12).toString("hex");
const leak = { sender: `Dr ${canary}`, patient: `Patient ${canary}`, team: `Oncology ${canary}`, conversation: canary, text: `Your biopsy ${canary}` };

const es = generateKeyPairSync("ec", { namedCurve: "P-256" });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pem = (k) => k.export({ type: "pkcs8", format: "pem" });
const smtp = await startSmtp(pki);
const apns = await startApns(pki, es.publicKey);
const fcm = await startFcm(pki, rsa.publicKey, { clientEmail: "sa@clinic-project.iam.gserviceaccount.com" });
const wp = await startWebPush(pki);
const saFile = writeSecret(path.join(dir, "sa.json"), JSON.stringify({
    project_id: "clinic-project", private_key: pem(rsa.privateKey), client_email: "sa@clinic-project.iam.gserviceaccount.com",
    token_uri: `https://127.0.0.1:${fcm.port}/token`,
}));
const ua = createECDH("prime256v1");
ua.generateKeys();
const auth = randomBytes(16);
const apnsToken = "c0".repeat(32);
const fcmToken = "fcm-device-token-" + randomBytes(4).toString("hex");

const config = {
    app_link: "https://clinic.example/app",
    ca_file: pki.caFile,
    total_timeout_ms: 10000,
    email: { url: `smtp://127.0.0.1:${smtp.port}`, from: "no-reply@clinic.example" },
    apns: { key_file: writeSecret(path.join(dir, "apns.p8"), pem(es.privateKey)), key_id: "KEYID12345", team_id: "TEAMID6789",
        topic: "example.clinic.carechat", base_url: `https://127.0.0.1:${apns.port}` },
    fcm: { service_account_file: saFile, base_url: `https://127.0.0.1:${fcm.port}` },
    webpush: { vapid_key_file: writeSecret(path.join(dir, "vapid.pem"), pem(es.privateKey)), subject: "mailto:ops@clinic.example",
        allow_hosts: ["127.0.0.1"] },
};
const jobs = [
    { id: newId(), channel: "email", kind: "new_message", email: "pat@example.org", ...leak },
    { id: newId(), channel: "apns", kind: "new_message", apns_token: apnsToken, ...leak },
    { id: newId(), channel: "fcm", kind: "new_message", fcm_token: fcmToken, ...leak },
    { id: newId(), channel: "webpush", kind: "new_message", endpoint: `https://127.0.0.1:${wp.port}/push/sub1`,
        p256dh: ua.getPublicKey().toString("base64url"), auth: auth.toString("base64url"), ...leak },
];
const r = await runTool(tool, dir, config, jobs);
check(r.code === 0, `push_tool exit ${r.code}: ${r.stderr}`);
check(r.results.length === 4 && r.results.every((x) => x.outcome === "delivered"), `all four delivered: ${JSON.stringify(r.results)}`);

// Everything that reached a peer, as bytes.
const captured = [];
const add = (what, v) => captured.push([what, Buffer.isBuffer(v) ? v : Buffer.from(typeof v === "string" ? v : JSON.stringify(v))]);
smtp.log.raw.forEach((b) => add("smtp DATA", b));
add("smtp envelope", [smtp.log.mailFrom, smtp.log.rcptTo]);
apns.log.requests.forEach((q) => { add("apns path", q.path); add("apns headers", q.headers); add("apns body", q.body); });
fcm.log.tokenRequests.forEach((q) => { add("oauth headers", q.headers); add("oauth body", q.body); });
fcm.log.sends.forEach((q) => { add("fcm url", q.url); add("fcm headers", q.headers); add("fcm body", q.body); });
let plain = null;
wp.log.requests.forEach((q) => {
    add("webpush url", q.url);
    add("webpush headers", q.headers);
    add("webpush body", q.body);
    plain = ece.decrypt(q.body, { version: "aes128gcm", privateKey: ua, authSecret: auth });
    add("webpush payload", plain);
});
check(captured.length >= 12, `captured ${captured.length} pieces`);
const lower = canary.toLowerCase();
for (const [what, bytes] of captured) {
    const s = bytes.toString("latin1").toLowerCase();
    check(!s.includes(lower) && !s.includes("biopsy") && !s.includes("oncology"), `no canary in ${what}`);
}
// Only the fixed text goes out.
const mail = smtp.log.raw[0]?.toString("utf8") ?? "";
check(mail.split("\r\n\r\n").slice(1).join("\r\n\r\n") ===
    "You have a new secure message in CareChat.\r\n\r\nOpen the app or sign in to read it:\r\nhttps://clinic.example/app\r\n\r\n" +
    "This message was sent automatically. Please do not reply to it.\r\n", "mail body is the fixed text");
const fixed = { kind: "new_message", title: "CareChat", body: "You have a new secure message" };
check(apns.log.requests[0]?.body.toString() === JSON.stringify({ aps: { alert: { title: "CareChat", body: fixed.body }, sound: "default", "mutable-content": 1 } }), "APNs body is fixed");
check(JSON.stringify(JSON.parse(fcm.log.sends[0]?.body ?? "{}").message?.data) === JSON.stringify(fixed), "FCM data is fixed");
check(plain !== null && JSON.stringify(JSON.parse(plain)) === JSON.stringify(fixed), "Web Push payload is fixed");
// The notifier's own log: no canary, no address, no token.
check(!r.stderr.includes(canary) && !r.stderr.includes("pat@example.org") && !r.stderr.includes(apnsToken) &&
    !r.stderr.includes(fcmToken) && !r.stderr.includes("/push/sub1"), "nothing personal in the log");

await Promise.all([smtp.close(), apns.close(), fcm.close(), wp.close()]);
finish();
