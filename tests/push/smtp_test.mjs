// tests/push/smtp_test.mjs: the notifier's email against smtp-server, parsed
// by mailparser.
//
//   node tests/push/smtp_test.mjs PATH/TO/push_tool
//
// 1. STARTTLS + AUTH: a new-message notice arrives over TLS with Date,
//    Message-ID (<32 hex>@domain), From, To, Subject, Auto-Submitted:
//    auto-generated, text/plain UTF-8, and exactly the fixed text.
// 2. An invitation carries the code and link and nothing else variable; a
//    password reset carries its code.
// 3. A relay without STARTTLS gets no MAIL FROM and no message body (RETRY, tls).
// 4. 451 after DATA, then success: RETRY (temporary, 451) then DELIVERED;
//    exactly one message kept, the same Message-ID in both attempts.
// 5. 550 at RCPT: PERMANENT (rejected, 550), no body.
// 6. An address with CR/LF: PERMANENT (bad_job), no connection at all.
// 7. A password file readable by others: email disabled (not_configured).
// 8. smtps:// (implicit TLS) delivers too.

import path from "node:path";
import { check, finish, fatal, load, makePki, newId, runTool, startSmtp, watchdog, workdir, writeSecret } from "./peers.mjs";

watchdog();
const tool = process.argv[2];
if (!tool) fatal("usage: smtp_test.mjs PUSH_TOOL");
const { simpleParser } = await load("mailparser");
const dir = workdir("smtp-");
const pki = makePki(dir);
const APP = "https://clinic.example/app";
const FOOTER = "This message was sent automatically. Please do not reply to it.";

const NEW_MESSAGE_TEXT =
    "You have a new secure message in CareChat.\r\n\r\n" +
    "Open the app or sign in to read it:\r\n" + APP + "\r\n\r\n" + FOOTER + "\r\n";

function config(port, extra = {}) {
    return {
        app_link: APP,
        ca_file: pki.caFile,
        total_timeout_ms: 10000,
        email: { url: `smtp://127.0.0.1:${port}`, from: "no-reply@clinic.example", ...extra },
    };
}

// 1 + 2: STARTTLS with AUTH
{
    const pwFile = writeSecret(path.join(dir, "smtp.pw"), "s3cret-pw\n");
    const smtp = await startSmtp(pki, { auth: { user: "carechat", pass: "s3cret-pw" } });
    const ids = [newId(), newId(), newId()];
    const r = await runTool(tool, dir, config(smtp.port, { username: "carechat", password_file: pwFile }), [
        { id: ids[0], channel: "email", kind: "new_message", email: "pat@example.org" },
        { id: ids[1], channel: "email", kind: "invitation", email: "new.patient@example.org", code: "K7QX-2M9P", link: "https://clinic.example/join" },
        { id: ids[2], channel: "email", kind: "password_reset", email: "pat@example.org", code: "RST-4411" },
    ]);
    check(r.code === 0, `push_tool exit ${r.code}: ${r.stderr}`);
    check(r.results.length === 3 && r.results.every((x) => x.outcome === "delivered" && x.reply_code === 250),
        `three delivered: ${JSON.stringify(r.results)}`);
    check(smtp.log.messages.length === 3, "three messages arrived");
    check(smtp.log.messages.every((m) => m.secure), "every message went over TLS (STARTTLS)");
    check(smtp.log.auths.length >= 1 && smtp.log.auths.every((a) => a.user === "carechat" && a.secure),
        "AUTH with the configured user, only after STARTTLS");
    const byRcpt = (a) => smtp.log.messages.filter((m) => m.rcpt[0] === a);
    check(smtp.log.messages.every((m) => m.rcpt.length === 1), "one recipient per message");

    // the three go out concurrently: find the new-message notice by its bytes
    const first = smtp.log.messages.find((m) => m.rcpt[0] === "pat@example.org" && !m.raw.toString().includes("RST-"));
    if (!first) fatal("no new-message notice arrived");
    const m1 = await simpleParser(first.raw);
    check(m1.from?.value[0]?.address === "no-reply@clinic.example", "From");
    check(m1.to?.value.length === 1 && m1.to.value[0].address === "pat@example.org", "To");
    check(m1.subject === "You have a new secure message", `Subject: ${m1.subject}`);
    check(m1.headers.get("auto-submitted") === "auto-generated", "Auto-Submitted: auto-generated");
    check(/^<[0-9a-f]{32}@clinic\.example>$/.test(m1.messageId), `Message-ID ${m1.messageId}`);
    check(!m1.messageId.includes(ids[0]), "Message-ID does not show the job id");
    check(m1.date instanceof Date && Math.abs(m1.date - Date.now()) < 120000, "Date is now");
    const ct = m1.headers.get("content-type");
    check(ct?.value === "text/plain" && ct?.params?.charset?.toLowerCase() === "utf-8", "text/plain; charset=UTF-8");
    const body1 = first.raw.toString("utf8").split("\r\n\r\n").slice(1).join("\r\n\r\n");
    check(body1 === NEW_MESSAGE_TEXT, `exactly the fixed text, got ${JSON.stringify(body1)}`);
    const headerNames = first.raw.toString("utf8").split("\r\n\r\n")[0].split("\r\n").map((l) => l.split(":")[0].toLowerCase());
    check(JSON.stringify(headerNames.sort()) === JSON.stringify(["auto-submitted", "content-transfer-encoding", "content-type", "date", "from", "message-id", "mime-version", "subject", "to"]),
        `only the expected headers: ${headerNames}`);

    const inv = await simpleParser(byRcpt("new.patient@example.org")[0].raw);
    check(inv.subject === "Your invitation to CareChat", `invitation subject ${inv.subject}`);
    check(inv.text.includes("Your invitation code: K7QX-2M9P") && inv.text.includes("https://clinic.example/join"),
        "invitation carries the code and link");
    const reset = smtp.log.messages.find((m) => m.raw.toString().includes("RST-4411"));
    check(!!reset && !reset.raw.toString().includes("K7QX"), "the reset mail carries its own code only");
    await smtp.close();
}

// 3: no STARTTLS offered
{
    const smtp = await startSmtp(pki, { noStarttls: true });
    const r = await runTool(tool, dir, config(smtp.port), [
        { id: newId(), channel: "email", kind: "new_message", email: "pat@example.org" },
    ]);
    check(r.results.length === 1 && r.results[0].outcome === "retry" && r.results[0].cause === "tls",
        `no STARTTLS: retry/tls, got ${JSON.stringify(r.results)}`);
    check(smtp.log.connections >= 1, "the relay was contacted");
    check(smtp.log.mailFrom.length === 0 && smtp.log.raw.length === 0, "no MAIL FROM and no message body without TLS");
    await smtp.close();
}

// 4: 451 after DATA, then delivered once with the same Message-ID
{
    const smtp = await startSmtp(pki, { dataCodes: [451] });
    const id = newId();
    const r = await runTool(tool, dir, config(smtp.port), [
        { id, channel: "email", kind: "new_message", email: "pat@example.org", retries: 3 },
    ]);
    const outs = r.results.map((x) => `${x.attempt}:${x.outcome}:${x.cause}:${x.reply_code}`);
    check(JSON.stringify(outs) === JSON.stringify(["1:retry:temporary:451", "2:delivered:none:250"]),
        `451 then delivered: ${outs}`);
    check(smtp.log.raw.length === 2 && smtp.log.messages.length === 1, "two DATA attempts, one message kept");
    const ids = await Promise.all(smtp.log.raw.map(async (raw) => (await simpleParser(raw)).messageId));
    check(ids.length === 2 && ids[0] === ids[1], `same Message-ID on the retry: ${ids}`);
    await smtp.close();
}

// 5: 550 at RCPT is permanent
{
    const smtp = await startSmtp(pki, { rcptCode: 550 });
    const r = await runTool(tool, dir, config(smtp.port), [
        { id: newId(), channel: "email", kind: "new_message", email: "gone@example.org", retries: 3 },
    ]);
    check(r.results.length === 1 && r.results[0].outcome === "permanent_failure" && r.results[0].cause === "rejected" &&
        r.results[0].reply_code === 550, `550: permanent, got ${JSON.stringify(r.results)}`);
    check(smtp.log.raw.length === 0, "no body after a refused recipient");
    await smtp.close();
}

// 6: header injection never leaves the process
{
    const smtp = await startSmtp(pki);
    const r = await runTool(tool, dir, config(smtp.port), [
        { id: newId(), channel: "email", kind: "new_message", email: "pat@example.org\r\nBcc: spy@evil.example" },
        { id: newId(), channel: "email", kind: "new_message", email: "Pat <pat@example.org>" },
        { id: newId(), channel: "email", kind: "invitation", email: "pat@example.org", code: "AB\r\nBcc: x@y.z" },
    ]);
    check(r.results.length === 3 && r.results.every((x) => x.outcome === "permanent_failure" && x.cause === "bad_job"),
        `injection refused: ${JSON.stringify(r.results)}`);
    check(smtp.log.connections === 0, "no connection for refused jobs");
    await smtp.close();
}

// 7: a password file readable by others disables email
{
    const loose = writeSecret(path.join(dir, "loose.pw"), "pw\n", 0o644);
    const smtp = await startSmtp(pki, { auth: { user: "u", pass: "pw" } });
    const r = await runTool(tool, dir, config(smtp.port, { username: "u", password_file: loose }), [
        { id: newId(), channel: "email", kind: "new_message", email: "pat@example.org" },
    ]);
    check(r.results.length === 1 && r.results[0].cause === "not_configured" && r.results[0].outcome === "permanent_failure",
        `mode 0644 password file: not_configured, got ${JSON.stringify(r.results)}`);
    check(/mode 0600/.test(r.stderr), "the log says why");
    check(smtp.log.connections === 0, "nothing sent");
    await smtp.close();
}

// 8: implicit TLS
{
    const smtp = await startSmtp(pki, { implicitTls: true });
    const cfg = config(smtp.port);
    cfg.email.url = `smtps://127.0.0.1:${smtp.port}`;
    const r = await runTool(tool, dir, cfg, [{ id: newId(), channel: "email", kind: "breach_notice", email: "pat@example.org" }]);
    check(r.results.length === 1 && r.results[0].outcome === "delivered", `smtps delivered: ${JSON.stringify(r.results)}`);
    check(smtp.log.messages.length === 1 && smtp.log.messages[0].secure, "over implicit TLS");
    await smtp.close();
}

finish();
