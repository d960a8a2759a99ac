// tests/push/bench.mjs: runs push_bench (the notifier's throughput) against a
// loopback SMTP relay with STARTTLS (smtp-server) and an APNs stand-in on Node
// http2 over TLS that verifies every ES256 provider token. Not a test: it
// prints push_bench's figures.
//
//   bazel build -c opt //tests/push:push_bench
//   CARECHAT_NODE_MODULES=$PWD/tests/node_modules \
//       node tests/push/bench.mjs bazel-bin/tests/push/push_bench [JOBS]

import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fatal, makePki, startApns, startSmtp, workdir, writeSecret } from "./peers.mjs";

const bench = process.argv[2];
const jobs = Number(process.argv[3] ?? 2000);
if (!bench) fatal("usage: bench.mjs PUSH_BENCH [JOBS]");
const dir = workdir("bench-");
const pki = makePki(dir);
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const smtp = await startSmtp(pki);
const apns = await startApns(pki, publicKey);
const config = {
    app_link: "https://clinic.example/app",
    ca_file: pki.caFile,
    total_timeout_ms: 60000,
    email: { url: `smtp://127.0.0.1:${smtp.port}`, from: "no-reply@clinic.example" },
    apns: { key_file: writeSecret(path.join(dir, "apns.p8"), privateKey.export({ type: "pkcs8", format: "pem" })),
        key_id: "KEYID12345", team_id: "TEAMID6789", topic: "example.clinic.carechat", base_url: `https://127.0.0.1:${apns.port}` },
};
const cfgFile = path.join(dir, "bench.json");
writeFileSync(cfgFile, JSON.stringify(config));

// The bench runs as a child while this process serves the peers: spawnSync
// would block the event loop, so run it asynchronously.
function run(args) {
    return new Promise((resolve) => {
        const c = spawn(bench, args, { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        c.stdout.on("data", (d) => (out += d));
        c.stderr.on("data", (d) => (err += d));
        c.on("close", (code) => resolve({ out, err, code }));
    });
}
let failed = false;
for (const [channel, dest] of [["email", "pat@example.org"], ["apns", "a1".repeat(32)]]) {
    const r = await run([cfgFile, channel, String(jobs), dest]);
    process.stdout.write(r.out);
    if (r.code !== 0) {
        failed = true;
        process.stderr.write(r.err);
    }
}
console.log(`peers saw: ${smtp.log.messages.length} mails over ${smtp.log.connections} SMTP connections; ` +
    `${apns.log.requests.length} APNs requests over ${apns.log.sessions} HTTP/2 connection(s)`);
await Promise.all([smtp.close(), apns.close()]);
process.exit(failed ? 1 : 0);
