// tests/interop/filecrypt_interop.mjs: libcarechat's file encryption
// (client/filecrypt.h) against an implementation of the same format written
// here from its description, on libsodium-wrappers (secretstream) and
// node:crypto (SHA-256), in both directions.
//
//   node tests/interop/filecrypt_interop.mjs PATH/TO/filecrypt_tool
//
// The npm packages come from $CARECHAT_NODE_MODULES (as for hpke_interop.mjs);
// without it the test fails, it does not skip.
//
// 1. For each size (chunk edges, 3 MiB, random) the C tool encrypts a random
//    file; this script checks the stored size against its own padding
//    (Padme, 64 KiB minimum), the digest against SHA-256 of the file, and
//    decrypts it to the same bytes; a copy with one flipped bit is refused.
// 2. This script encrypts random files; the C tool decrypts each to the same
//    bytes and refuses a copy with a flipped bit, one without its last chunk,
//    and the right file under a wrong digest ("corrupt data").
// Prints "N passed, N failed" last; exits 1 on any failure.

import { spawnSync } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const CHUNK = 64 * 1024;
const TAG = 17;
const HEADER = 24;
const VERSION = 1;
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 3 * 1024 * 1024];
const TOOL_TIMEOUT_MS = 60_000;

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
    console.error(`filecrypt_interop: ${msg}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
}

const hex = (u8) => Buffer.from(u8).toString("hex");
const sha256 = (u8) => new Uint8Array(createHash("sha256").update(u8).digest());
const equal = (a, b) => Buffer.from(a).equals(Buffer.from(b));

// Padme above one chunk, one 64 KiB bucket below (filecrypt.h "Padding").
function paddedSize(size) {
    if (size <= CHUNK) return CHUNK;
    const e = Math.floor(Math.log2(size));
    const s = Math.floor(Math.log2(e)) + 1;
    const step = 2 ** (e - s);
    return Math.ceil(size / step) * step;
}
const chunkCount = (size) => Math.ceil(paddedSize(size) / CHUNK);
const cipherSize = (size) => HEADER + paddedSize(size) + chunkCount(size) * TAG;

function additionalData(fileId) {
    const ad = new Uint8Array(36);
    ad.set(new TextEncoder().encode("carechat.v1 file"), 0);
    new DataView(ad.buffer).setUint32(16, VERSION);
    ad.set(fileId, 20);
    return ad;
}

function encrypt(sodium, fileId, plain) {
    const key = sodium.crypto_secretstream_xchacha20poly1305_keygen();
    const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
    const padded = new Uint8Array(paddedSize(plain.length));
    padded.set(plain);
    const ad = additionalData(fileId);
    const parts = [header];
    const n = chunkCount(plain.length);
    for (let i = 0; i < n; i++) {
        const tag =
            i === n - 1
                ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
                : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
        const m = padded.subarray(i * CHUNK, Math.min((i + 1) * CHUNK, padded.length));
        parts.push(sodium.crypto_secretstream_xchacha20poly1305_push(state, m, ad, tag));
    }
    const ct = new Uint8Array(Buffer.concat(parts));
    return { key, ct, digest: sha256(ct) };
}

// The plaintext, or null when anything does not check out.
function decrypt(sodium, fileId, key, digest, size, ct) {
    if (ct.length !== cipherSize(size) || !equal(sha256(ct), digest)) return null;
    try {
        const state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            ct.subarray(0, HEADER),
            key,
        );
        const ad = additionalData(fileId);
        const n = chunkCount(size);
        const out = new Uint8Array(paddedSize(size));
        let off = HEADER;
        for (let i = 0; i < n; i++) {
            const len = Math.min(CHUNK, out.length - i * CHUNK) + TAG;
            const r = sodium.crypto_secretstream_xchacha20poly1305_pull(
                state,
                ct.subarray(off, off + len),
                ad,
            );
            const want =
                i === n - 1
                    ? sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
                    : sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
            if (!r || r.tag !== want) return null;
            out.set(r.message, i * CHUNK);
            off += len;
        }
        if (out.subarray(size).some((b) => b !== 0)) return null;
        return out.subarray(0, size);
    } catch {
        return null;
    }
}

function flipOneBit(u8) {
    const copy = new Uint8Array(u8);
    copy[randomInt(copy.length)] ^= 1 << randomInt(8);
    return copy;
}

function runTool(tool, args) {
    const r = spawnSync(tool, args, { encoding: "utf8", timeout: TOOL_TIMEOUT_MS });
    if (r.error) fatal(`running ${tool}: ${r.error.message}`);
    if (r.status === 2 || r.stdout.trim() === "") fatal(`${tool} ${args[0]}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim());
}

async function main() {
    const tool = process.argv[2];
    if (!tool || !existsSync(tool)) fatal(`usage: filecrypt_interop.mjs PATH/TO/filecrypt_tool`);
    const nodeModules = process.env.CARECHAT_NODE_MODULES;
    if (!nodeModules || !path.isAbsolute(nodeModules) || !existsSync(nodeModules)) {
        fatal(
            "CARECHAT_NODE_MODULES is not an existing absolute path: run `npm ci` in tests/ " +
                "and pass --test_env=CARECHAT_NODE_MODULES=/abs/path/to/tests/node_modules",
        );
    }
    const pkgDir = path.join(nodeModules, "libsodium-wrappers");
    if (!existsSync(path.join(pkgDir, "package.json"))) {
        fatal(`libsodium-wrappers is not installed in ${nodeModules} (run npm ci in tests/)`);
    }
    const pkg = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8"));
    const mod = await import(pathToFileURL(path.join(pkgDir, pkg.main)).href);
    const sodium = mod.default ?? mod;
    await sodium.ready;

    const dir = mkdtempSync(path.join(process.env.TEST_TMPDIR ?? tmpdir(), "filecrypt-"));
    const file = (name) => path.join(dir, name);
    const sizes = [...SIZES, randomInt(1, 1_000_000)];

    // 1. C encrypts, this script decrypts.
    for (const size of sizes) {
        const plain = new Uint8Array(randomBytes(size));
        const fileId = new Uint8Array(randomBytes(16));
        writeFileSync(file("plain"), plain);
        const r = runTool(tool, ["encrypt", hex(fileId), file("plain"), file("ct")]);
        if (r.error) {
            check(false, `C encrypt of ${size} bytes: ${r.error}`);
            continue;
        }
        const ct = new Uint8Array(readFileSync(file("ct")));
        check(r.size === size && r.version === VERSION, `C metadata for ${size} bytes`);
        check(ct.length === cipherSize(size), `C ciphertext of ${size} bytes is ${ct.length}`);
        const key = new Uint8Array(Buffer.from(r.key, "hex"));
        const digest = new Uint8Array(Buffer.from(r.sha256, "hex"));
        check(equal(sha256(ct), digest), `C digest of ${size} bytes`);
        const back = decrypt(sodium, fileId, key, digest, size, ct);
        check(back !== null && equal(back, plain), `JS decrypt of C's ${size} bytes`);
        const bad = decrypt(sodium, fileId, key, sha256(flipOneBit(ct)), size, flipOneBit(ct));
        check(bad === null, `JS decrypted a tampered C file of ${size} bytes`);
    }

    // 2. This script encrypts, C decrypts (and refuses tampered copies).
    for (const size of sizes) {
        const plain = new Uint8Array(randomBytes(size));
        const fileId = new Uint8Array(randomBytes(16));
        const { key, ct, digest } = encrypt(sodium, fileId, plain);
        const dec = (bytes, dg) => {
            writeFileSync(file("ct"), bytes);
            return runTool(tool, [
                "decrypt", hex(fileId), hex(key), hex(dg), String(size), String(VERSION),
                file("ct"), file("plain"),
            ]);
        };
        const ok = dec(ct, digest);
        check(
            !ok.error && ok.size === size && equal(readFileSync(file("plain")), plain),
            `C decrypt of JS's ${size} bytes: ${ok.error ?? "different bytes"}`,
        );
        const flipped = flipOneBit(ct);
        check(dec(flipped, sha256(flipped)).error === "corrupt data", `C took a flipped bit (${size})`);
        const cut = ct.subarray(0, ct.length - Math.min(CHUNK, paddedSize(size)) - TAG);
        check(dec(cut, sha256(cut)).error === "corrupt data", `C took a truncated file (${size})`);
        check(dec(ct, sha256(flipped)).error === "corrupt data", `C took a wrong digest (${size})`);
    }

    console.log(`filecrypt interop checked: ${sizes.length} sizes each way, 4 tamperings each`);
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => fatal(e.stack ?? String(e)));
