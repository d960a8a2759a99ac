// tests/interop/hpke_interop.mjs: libcarechat's HPKE against @hpke/core, an
// implementation we did not write, in both directions.
//
//   node tests/interop/hpke_interop.mjs PATH/TO/hpke_tool
//
// The npm packages come from $CARECHAT_NODE_MODULES (an absolute path to the
// node_modules that `npm ci` made in tests/); without it the test fails, it
// does not skip. Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305, base mode, single-shot seal/open.
//
// 1. @hpke/core makes a key pair; the C tool seals MESSAGES messages to it (random
//    sizes, info and aad); @hpke/core opens each and must get the plaintext back,
//    and must refuse a copy with one flipped bit.
// 2. @hpke/core seals MESSAGES messages to the same key; the C tool opens each
//    with the serialized private key, and refuses a flipped copy.
// 3. The C tool makes a key pair; @hpke/core seals to its public key and the C
//    tool opens with its private key (key serialization both ways).
// Every run of the C tool has a deadline; the script exits 1 on any mismatch
// and prints "N passed, N failed" last.

import { spawnSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const MESSAGES = 24;
const TOOL_TIMEOUT_MS = 60_000;
// Sizes every run covers (block and tag edges, 64 KiB); the rest are random.
const FIXED_SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1000, 4096, 65536];

let passed = 0;
let failed = 0;

function check(ok, what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        console.error(`FAIL: ${what}`);
    }
}

function fatal(msg) {
    console.error(`hpke_interop: ${msg}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
}

async function importPackage(nodeModules, name) {
    const dir = path.join(nodeModules, ...name.split("/"));
    const pkgFile = path.join(dir, "package.json");
    if (!existsSync(pkgFile)) {
        fatal(`${name} is not installed in ${nodeModules} (run npm ci in tests/)`);
    }
    const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
    const entry = pkg.exports?.["."]?.import ?? pkg.module ?? pkg.main;
    return import(pathToFileURL(path.join(dir, entry)).href);
}

const hex = (u8) => Buffer.from(u8).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const field = (u8) => (u8.length === 0 ? "-" : hex(u8));
const equal = (a, b) => Buffer.from(a).equals(Buffer.from(b));

function flipOneBit(u8) {
    const copy = new Uint8Array(u8);
    copy[randomInt(copy.length)] ^= 1 << randomInt(8);
    return copy;
}

// Runs the C tool once over all `lines`; returns one parsed JSON reply per line.
function runTool(tool, lines) {
    const r = spawnSync(tool, [], {
        input: lines.join("\n") + "\n",
        encoding: "utf8",
        timeout: TOOL_TIMEOUT_MS,
        maxBuffer: 256 << 20,
    });
    if (r.error) fatal(`running ${tool}: ${r.error.message}`);
    if (r.status !== 0) fatal(`${tool} exited ${r.status}: ${r.stderr}`);
    const replies = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    if (replies.length !== lines.length) {
        fatal(`${tool} answered ${replies.length} of ${lines.length} requests`);
    }
    return replies;
}

function randomCases() {
    const cases = [];
    for (let i = 0; i < MESSAGES; i++) {
        const size = i < FIXED_SIZES.length ? FIXED_SIZES[i] : randomInt(0, 100_000);
        cases.push({
            pt: new Uint8Array(randomBytes(size)),
            info: new Uint8Array(randomBytes(randomInt(0, 65))),
            aad: new Uint8Array(randomBytes(randomInt(0, 129))),
        });
    }
    return cases;
}

async function main() {
    const tool = process.argv[2];
    if (!tool || !existsSync(tool)) fatal(`usage: hpke_interop.mjs PATH/TO/hpke_tool (got ${tool})`);
    const nodeModules = process.env.CARECHAT_NODE_MODULES;
    if (!nodeModules) {
        fatal(
            "CARECHAT_NODE_MODULES is not set: run `npm ci` in tests/ and pass " +
                "--test_env=CARECHAT_NODE_MODULES=/abs/path/to/tests/node_modules",
        );
    }
    if (!path.isAbsolute(nodeModules) || !existsSync(nodeModules)) {
        fatal(`CARECHAT_NODE_MODULES=${nodeModules} is not an existing absolute path`);
    }
    const { CipherSuite } = await importPackage(nodeModules, "@hpke/core");
    const { DhkemX25519HkdfSha256, HkdfSha256 } = await importPackage(
        nodeModules,
        "@hpke/dhkem-x25519",
    );
    const { Chacha20Poly1305 } = await importPackage(nodeModules, "@hpke/chacha20poly1305");
    const suite = new CipherSuite({
        kem: new DhkemX25519HkdfSha256(),
        kdf: new HkdfSha256(),
        aead: new Chacha20Poly1305(),
    });

    const rkp = await suite.kem.generateKeyPair();
    const pk = new Uint8Array(await suite.kem.serializePublicKey(rkp.publicKey));
    const sk = new Uint8Array(await suite.kem.serializePrivateKey(rkp.privateKey));

    // 1. C seals, @hpke/core opens.
    const toNode = randomCases();
    const sealed = runTool(
        tool,
        toNode.map((c) => `seal ${hex(pk)} ${field(c.info)} ${field(c.aad)} ${field(c.pt)}`),
    );
    for (const [i, c] of toNode.entries()) {
        const r = sealed[i];
        if (r.error) {
            check(false, `C seal #${i} (${c.pt.length} bytes): ${r.error}`);
            continue;
        }
        const enc = unhex(r.enc);
        const ct = unhex(r.ct);
        check(ct.length === c.pt.length + 16, `C ct #${i} length ${ct.length}`);
        let pt = null;
        try {
            pt = new Uint8Array(
                await suite.open({ recipientKey: rkp.privateKey, enc, info: c.info }, ct, c.aad),
            );
        } catch (e) {
            check(false, `@hpke/core open of C message #${i} (${c.pt.length} bytes): ${e}`);
            continue;
        }
        check(equal(pt, c.pt), `@hpke/core opened C message #${i} to different bytes`);
        let refused = false;
        try {
            await suite.open(
                { recipientKey: rkp.privateKey, enc, info: c.info },
                flipOneBit(ct),
                c.aad,
            );
        } catch {
            refused = true;
        }
        check(refused, `@hpke/core opened a tampered C message #${i}`);
    }

    // 2. @hpke/core seals, C opens.
    const toC = randomCases();
    const requests = [];
    for (const c of toC) {
        const { ct: ciphertext, enc } = await suite.seal(
            { recipientPublicKey: rkp.publicKey, info: c.info },
            c.pt,
            c.aad,
        );
        const ct = new Uint8Array(ciphertext);
        const e = new Uint8Array(enc);
        requests.push(`open ${hex(sk)} ${field(c.info)} ${field(c.aad)} ${hex(e)} ${field(ct)}`);
        requests.push(
            `open ${hex(sk)} ${field(c.info)} ${field(c.aad)} ${hex(e)} ${field(flipOneBit(ct))}`,
        );
    }
    const opened = runTool(tool, requests);
    for (const [i, c] of toC.entries()) {
        const good = opened[2 * i];
        const bad = opened[2 * i + 1];
        check(
            !good.error && equal(unhex(good.pt), c.pt),
            `C open of @hpke/core message #${i} (${c.pt.length} bytes): ${good.error ?? "different bytes"}`,
        );
        check(bad.error === "corrupt data", `C answered ${JSON.stringify(bad).slice(0, 80)} to a tampered message #${i}`);
    }

    // 3. C key pair, @hpke/core seals to it, C opens.
    const [kp] = runTool(tool, ["keygen"]);
    const cPublic = await suite.kem.deserializePublicKey(unhex(kp.pk));
    const msg = new Uint8Array(randomBytes(1234));
    const info = new TextEncoder().encode("carechat.v1 wrap");
    const aad = new TextEncoder().encode("header");
    const s3 = await suite.seal({ recipientPublicKey: cPublic, info }, msg, aad);
    const [o3] = runTool(tool, [
        `open ${kp.sk} ${hex(info)} ${hex(aad)} ${hex(new Uint8Array(s3.enc))} ${hex(new Uint8Array(s3.ct))}`,
    ]);
    check(!o3.error && equal(unhex(o3.pt), msg), `C key pair: ${o3.error ?? "different bytes"}`);

    console.log(
        `hpke interop checked: ${MESSAGES} messages C->@hpke/core, ${MESSAGES} @hpke/core->C, ` +
            `${2 * MESSAGES} tampered copies, 1 message to a C key pair`,
    );
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => fatal(e.stack ?? String(e)));
