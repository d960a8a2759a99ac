// tests/push/mailpeer.mjs: the mail relay and Web Push endpoint that
// tests/outbox_test.c runs beside the real carechatd.
//
//   node tests/push/mailpeer.mjs DIR [hold-first | temp-fail-first]
//
// Makes a throwaway CA and server certificate (peers.mjs makePki), a VAPID key
// (DIR/vapid.pem, mode 0600), starts an SMTP relay with STARTTLS
// (smtp-server) and an https Web Push endpoint on 127.0.0.1, and writes
// DIR/ready.json: {"smtp": PORT, "webpush": PORT, "ca": FILE, "vapid": FILE,
// "p256dh": B64URL, "auth": B64URL} (a subscription's public key and secret
// the test may register). Then records, as files written atomically:
//   DIR/mail-N.eml     each accepted message (raw, with its envelope
//                      recipient in DIR/mail-N.rcpt)
//   DIR/held-N.eml     with hold-first: the first message's DATA, which is
//                      never answered (the test kills carechatd meanwhile);
//                      with temp-fail-first: the first DATA, answered 451
//   DIR/push-N.txt     each Web Push request: "METHOD URL", the headers, a
//                      blank line, and the body in hex; /gone answers 410,
//                      everything else 201
// Runs until killed (the test sends SIGTERM). Everything stays on 127.0.0.1.

import { generateKeyPairSync, randomBytes, createECDH } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { load, makePki, startWebPush, writeSecret } from "./peers.mjs";

const dir = process.argv[2];
const holdFirst = process.argv[3] === "hold-first";
const tempFailFirst = process.argv[3] === "temp-fail-first";
if (!dir) {
    console.error("usage: mailpeer.mjs DIR [hold-first | temp-fail-first]");
    process.exit(2);
}

function atomicWrite(name, data) {
    const tmp = path.join(dir, `.${name}.tmp`);
    writeFileSync(tmp, data);
    renameSync(tmp, path.join(dir, name));
}

const pki = makePki(dir);
const { SMTPServer } = await load("smtp-server");
let mails = 0;
let held = 0;
const smtp = new SMTPServer({
    key: pki.key,
    cert: pki.cert,
    logger: false,
    disabledCommands: ["AUTH"],
    authOptional: true,
    onData(stream, session, cb) {
        const chunks = [];
        stream.on("data", (c) => chunks.push(c));
        stream.on("end", () => {
            const raw = Buffer.concat(chunks);
            if ((holdFirst || tempFailFirst) && held === 0) {
                held++;
                atomicWrite(`held-${held}.eml`, raw);
                if (holdFirst) return; // never answered
                const e = new Error("try again later");
                e.responseCode = 451;
                return cb(e);
            }
            mails++;
            atomicWrite(`mail-${mails}.rcpt`, session.envelope.rcptTo.map((r) => r.address).join("\n"));
            atomicWrite(`mail-${mails}.eml`, raw);
            cb();
        });
    },
});
const smtpPort = await new Promise((resolve, reject) => {
    smtp.server.once("error", reject);
    smtp.server.listen(0, "127.0.0.1", () => resolve(smtp.server.address().port));
});

const wp = await startWebPush(pki);
let pushes = 0;
setInterval(() => {
    while (pushes < wp.log.requests.length) {
        const q = wp.log.requests[pushes++];
        const head = Object.entries(q.headers).map(([k, v]) => `${k}: ${v}`).join("\n");
        atomicWrite(`push-${pushes}.txt`, `${q.method} ${q.url}\n${head}\n\n${q.body.toString("hex")}\n`);
    }
}, 50);

const vapid = generateKeyPairSync("ec", { namedCurve: "P-256" });
const vapidFile = writeSecret(path.join(dir, "vapid.pem"), vapid.privateKey.export({ type: "pkcs8", format: "pem" }));
const ua = createECDH("prime256v1");
ua.generateKeys();
atomicWrite("ready.json", JSON.stringify({
    smtp: smtpPort,
    webpush: wp.port,
    ca: pki.caFile,
    vapid: vapidFile,
    p256dh: ua.getPublicKey().toString("base64url"),
    auth: randomBytes(16).toString("base64url"),
}));
process.on("SIGTERM", () => process.exit(0));
