// tests/interop/envelope_interop.mjs: libcarechat's message envelope and
// device-list statement against a rebuild from their written layouts
// (client/envelope.h, protocol/transcript.h, client/statement.h) on
// implementations we did not write: @hpke/core (HPKE), @noble/curves
// (Ed25519, verifying strictly: zip215 off, as libsodium does), @noble/ciphers
// (XChaCha20-Poly1305) and node:crypto (SHA-256).
//
//   node tests/interop/envelope_interop.mjs PATH/TO/envelope_tool
//
// 1. The C tool seals messages of several sizes, urgent or not, with a sender
//    clock and counter. This script rebuilds the recipient hash and binding B
//    by hand, verifies Envelope.signature over the transcript, opens every
//    wrap with @hpke/core (info and aad as documented), decrypts the body,
//    checks the length prefix and the zero padding to a power-of-two bucket,
//    and verifies the inner signature; a binding with the urgent flag, the
//    counter or the recipient set changed must not open a wrap. It verifies
//    the version-2 device list signature (prev_list_hash at the end).
// 2. This script seals a message the same way (its own Ed25519 key and
//    @hpke/core); the C tool opens it, and refuses copies whose urgent flag or
//    recipient list differ from what was signed.
// Exits 1 on any mismatch and prints "N passed, N failed" last.

import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

let passed = 0;
let failed = 0;
function check(ok, what) {
    if (ok) passed++;
    else {
        failed++;
        console.error(`FAIL: ${what}`);
    }
}
function fatal(msg) {
    console.error(`envelope_interop: ${msg}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
}

// The package `name` of nodeModules; `file`: one of its files instead of its
// main entry (the @noble packages export one module per algorithm).
async function importPackage(nodeModules, name, file) {
    const dir = path.join(nodeModules, ...name.split("/"));
    const pkgFile = path.join(dir, "package.json");
    if (!existsSync(pkgFile)) fatal(`${name} is not installed in ${nodeModules} (run npm ci in tests/)`);
    const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
    const entry = file ?? pkg.exports?.["."]?.import ?? pkg.module ?? pkg.main;
    return import(pathToFileURL(path.join(dir, entry)).href);
}

const hex = (u8) => Buffer.from(u8).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const utf8 = (s) => new TextEncoder().encode(s);
const cat = (...parts) => new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p))));
const equal = (a, b) => Buffer.from(a).equals(Buffer.from(b));
function u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
}
function u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(v)));
    return b;
}

function runTool(tool, lines) {
    const r = spawnSync(tool, [], { input: lines.join("\n") + "\n", encoding: "utf8", timeout: 60_000 });
    if (r.error) fatal(`running ${tool}: ${r.error.message}`);
    if (r.status !== 0) fatal(`${tool} exited ${r.status}: ${r.stderr}`);
    return r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
}

// protocol/transcript.h, rebuilt from its comment.
const sha256 = (u8) => new Uint8Array(createHash("sha256").update(u8).digest());
function recipientHash(refs) {
    const sorted = [...refs].sort((a, b) => Buffer.compare(Buffer.from(a.device), Buffer.from(b.device)));
    const parts = [utf8("carechat.v2 recipients"), u32(sorted.length)];
    for (const r of sorted) parts.push(r.device, u32(r.key_id));
    return sha256(cat(...parts));
}
function binding(ctx, refs) {
    return cat(u32(2), ctx.conv, ctx.cmid, ctx.sender_device, [ctx.urgent ? 1 : 0], u64(ctx.sent_at),
        u64(ctx.counter), recipientHash(refs));
}
function padded(len) {
    const cap = 64 * 1024 - 64 - 16;
    let bucket = 256;
    while (bucket < 4 + len && bucket < cap) bucket *= 2;
    return Math.min(bucket, cap);
}

async function main() {
    const tool = process.argv[2];
    if (!tool || !existsSync(tool)) fatal(`usage: envelope_interop.mjs PATH/TO/envelope_tool`);
    const nodeModules = process.env.CARECHAT_NODE_MODULES;
    if (!nodeModules || !path.isAbsolute(nodeModules) || !existsSync(nodeModules))
        fatal("CARECHAT_NODE_MODULES is not an existing absolute path (npm ci in tests/)");
    const { CipherSuite } = await importPackage(nodeModules, "@hpke/core");
    const { DhkemX25519HkdfSha256, HkdfSha256 } = await importPackage(nodeModules, "@hpke/dhkem-x25519");
    const { Chacha20Poly1305 } = await importPackage(nodeModules, "@hpke/chacha20poly1305");
    const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });
    const { ed25519 } = await importPackage(nodeModules, "@noble/curves", "ed25519.js");
    const { xchacha20poly1305 } = await importPackage(nodeModules, "@noble/ciphers", "chacha.js");
    // Strict RFC 8032 verification (zip215 off): non-canonical encodings and
    // small-order keys are refused, as libsodium refuses them.
    const verify = (sig, msg, pk) => {
        try {
            return ed25519.verify(sig, msg, pk, { zip215: false });
        } catch {
            return false;
        }
    };

    const wrapInfo = (device, keyId) => cat(utf8("carechat.v1 wrap"), device, u32(keyId));
    async function hpkeOpen(sk, enc, info, aad, ct) {
        const key = await suite.kem.deserializePrivateKey(sk);
        return new Uint8Array(await suite.open({ recipientKey: key, enc, info }, ct, aad));
    }

    // 1. C seals, this script checks everything.
    const cases = [
        { text: "", urgent: 0, sent_at: 1, counter: 1 },
        { text: "take 2 tablets", urgent: 1, sent_at: 1796000000123, counter: 2 },
        { text: "x".repeat(252), urgent: 0, sent_at: 5, counter: 3 },
        { text: "y".repeat(253), urgent: 1, sent_at: 6, counter: 4 },
        { text: "z".repeat(5000), urgent: 0, sent_at: 7, counter: 2 ** 40 },
    ];
    const sealed = runTool(tool, cases.map((c) => `seal ${c.text.length ? hex(utf8(c.text)) : "-"} ${c.urgent} ${c.sent_at} ${c.counter}`));
    for (const [i, c] of cases.entries()) {
        const r = sealed[i];
        if (r.error) {
            check(false, `C seal #${i}: ${r.error}`);
            continue;
        }
        const ctx = { conv: unhex(r.conv), cmid: unhex(r.cmid), sender_device: unhex(r.sender_device),
            urgent: c.urgent === 1, sent_at: c.sent_at, counter: c.counter };
        const wraps = r.wraps.map((w) => ({ device: unhex(w.device), key_id: w.key_id, enc: unhex(w.enc),
            wrapped: unhex(w.wrapped), sk: unhex(w.sk) }));
        const B = binding(ctx, wraps);
        const nonce = unhex(r.nonce), body = unhex(r.body), senderPk = unhex(r.sender_pk);
        // Envelope.signature
        const transcript = cat(utf8("carechat.v2 envelope"), B, sha256(new Uint8Array(0)),
            sha256(cat(nonce, body)), u32(wraps.length),
            ...wraps.map((w) => cat(w.device, u32(w.key_id), w.enc, w.wrapped)));
        check(verify(unhex(r.sig), transcript, senderPk), `#${i}: Envelope.signature`);
        check(wraps.length === 2 && Buffer.compare(Buffer.from(wraps[0].device), Buffer.from(wraps[1].device)) < 0,
            `#${i}: wraps sorted by device id`);
        for (const w of wraps) {
            let bodyKey = null;
            try {
                bodyKey = await hpkeOpen(w.sk, w.enc, wrapInfo(w.device, w.key_id), B, w.wrapped);
            } catch (e) {
                check(false, `#${i}: @hpke/core opens the wrap: ${e}`);
                continue;
            }
            check(true, "wrap opened");
            let pt = new Uint8Array(0);
            try {
                pt = xchacha20poly1305(bodyKey, nonce, B).decrypt(body);
                check(true, "body opened");
            } catch (e) {
                check(false, `#${i}: @noble/ciphers opens the body: ${e}`);
                continue;
            }
            const len = Buffer.from(pt.subarray(64, 68)).readUInt32BE();
            const msg = pt.subarray(68, 68 + len);
            check(equal(msg, utf8(c.text)), `#${i}: the message`);
            check(pt.length - 64 === padded(len), `#${i}: padded to ${padded(len)}, got ${pt.length - 64}`);
            check(pt.subarray(68 + len).every((b) => b === 0), `#${i}: zero padding`);
            const inner = cat(utf8("carechat.v2 message"), B, sha256(new Uint8Array(0)),
                sha256(msg));
            check(verify(pt.subarray(0, 64), inner, senderPk), `#${i}: inner signature`);
            // The context is bound: another urgent flag, counter or recipient set opens nothing.
            for (const [what, B2] of [
                ["urgent", binding({ ...ctx, urgent: !ctx.urgent }, wraps)],
                ["counter", binding({ ...ctx, counter: ctx.counter + 1 }, wraps)],
                ["recipients", binding(ctx, [wraps[0]])],
            ]) {
                let refused = false;
                try {
                    await hpkeOpen(w.sk, w.enc, wrapInfo(w.device, w.key_id), B2, w.wrapped);
                } catch {
                    refused = true;
                }
                check(refused, `#${i}: a wrap opened with the ${what} changed`);
            }
        }
        // The device list, version 2: prev_list_hash last.
        const devs = r.list_devices.map((d) => ({ device: unhex(d.device), key: unhex(d.key) }))
            .sort((a, b) => Buffer.compare(Buffer.from(a.device), Buffer.from(b.device)));
        const list = cat(utf8("carechat.v1 device list"), unhex(r.list_account), u64(2), u32(devs.length),
            ...devs.map((d) => cat(d.device, d.key)), unhex(r.list_prev));
        check(verify(unhex(r.list_sig), list, senderPk), `#${i}: device list signature`);
        const listNoPrev = list.subarray(0, list.length - 32);
        check(!verify(unhex(r.list_sig), listNoPrev, senderPk),
            `#${i}: the list signature must cover prev_list_hash`);
    }

    // 2. This script seals, C opens.
    const sender = ed25519.keygen();
    const rkp = await suite.kem.generateKeyPair();
    const rpk = await suite.kem.serializePublicKey(rkp.publicKey);
    const rsk = new Uint8Array(await suite.kem.serializePrivateKey(rkp.privateKey));
    void rpk;
    const me = { device: new Uint8Array(randomBytes(16)), key_id: 3 };
    const other = { device: new Uint8Array(randomBytes(16)), key_id: 9 };
    const refs = [me, other];
    const ctx = { conv: new Uint8Array(randomBytes(16)), cmid: new Uint8Array(randomBytes(16)),
        sender_device: new Uint8Array(randomBytes(16)), urgent: true, sent_at: 1796000000999, counter: 42 };
    const B = binding(ctx, refs);
    const msg = utf8("from a peer we did not write");
    const inner = cat(utf8("carechat.v2 message"), B, sha256(new Uint8Array(0)),
        sha256(msg));
    const sig = ed25519.sign(inner, sender.secretKey);
    const plain = new Uint8Array(64 + padded(msg.length));
    plain.set(sig, 0);
    plain.set(u32(msg.length), 64);
    plain.set(msg, 68);
    const bodyKey = new Uint8Array(randomBytes(32));
    const nonce = new Uint8Array(randomBytes(24));
    const body = xchacha20poly1305(bodyKey, nonce, B).encrypt(plain);
    const { ct, enc } = await suite.seal({ recipientPublicKey: rkp.publicKey, info: wrapInfo(me.device, me.key_id) }, bodyKey, B);
    // As the server delivers them: sorted by device id.
    const refsText = [...refs].sort((a, b) => Buffer.compare(Buffer.from(a.device), Buffer.from(b.device)))
        .map((r) => `${hex(r.device)}:${r.key_id}`).join(",");
    const line = (urgent, refText) => ["open", hex(sender.publicKey), hex(rsk), hex(me.device), me.key_id,
        hex(ctx.conv), hex(ctx.cmid), hex(ctx.sender_device), urgent, ctx.sent_at, ctx.counter, hex(nonce),
        hex(body), hex(new Uint8Array(enc)), hex(new Uint8Array(ct)), refText].join(" ");
    const [good, flipped, fewer] = runTool(tool, [
        line(1, refsText),
        line(0, refsText),
        line(1, `${hex(me.device)}:${me.key_id}`),
    ]);
    check(!good.error && equal(unhex(good.pt), msg), `C opens the peer's envelope: ${good.error ?? "different bytes"}`);
    check(flipped.error === "corrupt data", `C refuses the urgent flag flipped: ${JSON.stringify(flipped)}`);
    check(fewer.error === "corrupt data", `C refuses another recipient list: ${JSON.stringify(fewer)}`);

    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => fatal(e.stack ?? String(e)));
