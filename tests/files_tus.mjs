// tests/files_tus.mjs: tus-js-client (npm, pinned by tests/package-lock.json)
// as an independent tus 1.0.0 client of carechatd's /files/ endpoint, for
// tests/files_tus_test.sh.
//
//   node files_tus.mjs BASE TOKEN CONV FILE SHA256HEX STOP_AT [LOCATION]
//
// Creates an upload of FILE for conversation CONV (Upload-Metadata
// conversation and sha256), or resumes the one at LOCATION (tus-js-client
// asks HEAD for the offset), in 1 MiB PATCH requests. With STOP_AT > 0 it
// aborts the PATCH in flight (a connection cut mid-request) once that many
// bytes were sent. Prints one JSON line: location, acked (the last offset
// the server answered), complete, resumed_from (the offset a resumed upload
// started at, -1 when new).
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function fatal(msg) {
    console.error(`files_tus.mjs: ${msg}`);
    process.exit(2);
}

const [base, token, conv, file, sha, stopAtText, location] = process.argv.slice(2);
if (!file || !existsSync(file)) fatal("usage: BASE TOKEN CONV FILE SHA256HEX STOP_AT [LOCATION]");
const nodeModules = process.env.CARECHAT_NODE_MODULES;
if (!nodeModules || !existsSync(path.join(nodeModules, "tus-js-client", "package.json")))
    fatal("tus-js-client is not in CARECHAT_NODE_MODULES (run npm ci in tests/)");
const pkgDir = path.join(nodeModules, "tus-js-client");
const pkg = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const tus = await import(pathToFileURL(path.join(pkgDir, pkg.main)).href);
const Upload = tus.Upload ?? tus.default.Upload;

const data = readFileSync(file);
const stopAt = Number(stopAtText);
let acked = 0;
let resumedFrom = -1;
let aborted = false;

const result = await new Promise((resolve) => {
    const options = {
        endpoint: `${base}/files/`,
        chunkSize: 1 << 20,
        retryDelays: null,
        headers: { Authorization: `Bearer ${token}` },
        metadata: { conversation: conv, sha256: sha, filename: "scan.bin" },
        removeFingerprintOnSuccess: true,
        onProgress(sent) {
            if (stopAt > 0 && sent >= stopAt && !aborted) {
                aborted = true;
                upload.abort(false).then(() =>
                    resolve({ location: upload.url, acked, complete: false }),
                );
            }
        },
        onChunkComplete(_size, accepted) {
            if (resumedFrom < 0 && location && acked === 0) resumedFrom = accepted - _size;
            acked = accepted;
        },
        onSuccess() {
            resolve({ location: upload.url, acked, complete: true });
        },
        onError(err) {
            resolve({ location: upload.url, acked, complete: false, error: String(err) });
        },
    };
    if (location) options.uploadUrl = location;
    const upload = new Upload(data, options);
    upload.start();
});
result.resumed_from = resumedFrom;
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
