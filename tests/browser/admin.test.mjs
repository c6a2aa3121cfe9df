// The web admin in a real browser: Debian's chromium driven by
// playwright-core, against a real `herald serve` (HERALD_BIN) and a real
// HTTP receiver on 127.0.0.1. Run by tests/it/browser.rs; screenshots of
// each tab go to SCREENSHOTS (default: target/screenshots).
//
// Every step waits for what the admin would see; nothing is timed.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BIN = process.env.TEST_HERALD_BIN;
assert.ok(BIN, "TEST_HERALD_BIN must name the herald binary");
const SHOTS = process.env.SCREENSHOTS || "target/screenshots";
mkdirSync(SHOTS, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), "herald-browser-"));
const TIMEOUT = 20_000;

// The receiver: records every request; answers 500 while `failing`.
const received = [];
let failing = false;
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ method: req.method, url: req.url, headers: req.headers, body });
    res.writeHead(failing ? 500 : 200, { "content-type": "text/plain" });
    res.end(failing ? "down for the test" : "ok");
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const sink = `http://127.0.0.1:${receiver.address().port}/hook`;

// herald, with a long read interval (the test shortens it in the UI).
const config = join(dir, "herald.toml");
writeFileSync(
  config,
  `[server]\nlisten = "127.0.0.1:0"\n[database]\npath = "${join(dir, "herald.db")}"\n[router]\nread_interval = 3600\n` +
    // The receiver is on loopback, which the SSRF guard refuses by default.
    `[delivery]\nallow_networks = ["127.0.0.1/32"]\n`,
);
const herald = spawn(BIN, ["--config", config, "serve"], { stdio: ["ignore", "ignore", "pipe"] });
let stderr = "";
const base = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`herald did not start:\n${stderr}`)), TIMEOUT);
  herald.stderr.on("data", (d) => {
    stderr += d;
    const m = stderr.match(/herald ready listen=(\S+)/);
    if (m) {
      clearTimeout(t);
      resolve(`http://${m[1]}`);
    }
  });
  herald.on("exit", (code) => reject(new Error(`herald exited ${code}:\n${stderr}`)));
});
const password = readFileSync(join(dir, "initial-admin-password"), "utf8").trim();
const emit = (type, ticket) => {
  const uuid = crypto.randomUUID();
  execFileSync(BIN, ["--config", config, "emit", type, "--ticket", ticket, "--uuid", uuid, "--data", '{"volume_used": 42}']);
  return { uuid };
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
// Every page must work under its Content-Security-Policy: a violation or a
// script error on any page fails the test.
const violations = [];
context.on("page", (p) => {
  p.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  p.on("pageerror", (e) => violations.push(String(e)));
});
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const shot = (name, p = page) => p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const step = (name) => console.log(`- ${name}`);

try {
  step("a page without a session goes to the login; a wrong password is refused");
  const loginPage = await page.goto(`${base}/webhooks`);
  assert.match(page.url(), /\/login\?next=%2Fwebhooks$/);
  const policy = loginPage.headers()["content-security-policy"] || "";
  assert.match(policy, /script-src 'self'/, "the login page has its CSP");
  assert.match(policy, /frame-ancestors 'none'/);
  assert.equal(loginPage.headers()["x-frame-options"], "DENY");
  await shot("login");
  await page.fill("#password", "not the password");
  await page.click("button[type=submit]");
  await page.getByText("Wrong password.").waitFor();

  step("log in with the keyboard only");
  await page.focus("#password");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/webhooks`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "herald_session");
  assert.ok(session.httpOnly, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict");

  step("create a webhook from a preset");
  await page.selectOption("#preset", "generic.json");
  await page.click("text=New webhook");
  await page.waitForURL(/\/webhooks\/new\?preset=generic.json/);
  assert.match(await page.inputValue("#f-body_template"), /<<event.uuid>>/);
  await page.fill("#f-name", "PMS");
  await page.fill("#f-url", sink);
  await page.check("input[name=events][value='ticket.login']");
  await page.check("#f-log_bodies");
  await page.selectOption("#f-retry_kind", "once");

  step("the preview follows the typing; a broken template shows its line");
  await page.selectOption("#sample_type", "ticket.login");
  await page.locator("#preview").filter({ hasText: `POST ${sink}` }).waitFor();
  const body = await page.inputValue("#f-body_template");
  await page.fill("#f-body_template", `{\n  "room": "<<backend_data.pms.room>>",\n  "who": "browser-typed-<<event.ticket_id>>"\n}`);
  await page.locator("#preview").filter({ hasText: "browser-typed-" }).waitFor();
  await page.fill("#f-body_template", `{\n  "a": 1,\n  "b": "<% if %>"\n}`);
  const error = page.locator("#preview-error");
  await error.filter({ hasText: "line 3" }).waitFor();
  assert.match(await error.textContent(), /body_template line 3, column \d+/);
  step("the appliance guide's example pasted verbatim previews like the preset");
  const guide = readFileSync(new URL("../data/iacbox-guide-example.txt", import.meta.url), "utf8");
  await page.fill("#f-body_template", guide);
  await page.locator("#preview").filter({ hasText: '"id":"0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10"' }).waitFor();
  assert.doesNotMatch(await page.textContent("#preview"), /\{\{/);
  await page.locator("#preview-warning").filter({ hasText: "volume_limit" }).waitFor();
  await shot("webhook-form-guide-paste");
  await page.fill("#f-body_template", body);
  await error.waitFor({ state: "hidden" });
  await shot("webhook-form");
  await page.click("button[name=action][value=save]");
  await page.waitForURL(/\/webhooks\/\d+\?notice=created/);
  const id = page.url().match(/webhooks\/(\d+)/)[1];

  step("send a test event and see its result inline");
  await page.fill("#test-type", "ticket.logout");
  await page.click("#test-send");
  const outcome = page.locator("#test-outcome");
  await outcome.filter({ hasText: "delivered" }).waitFor();
  assert.match(await outcome.textContent(), /HTTP 200/);
  assert.match(await outcome.textContent(), /from templates\/samples\/ticket\.logout\.json/);
  assert.equal(received.length, 1);
  assert.equal(JSON.parse(received[0].body).type, "ticket.logout");

  step("a test event of a type herald has no sample of");
  await page.fill("#test-type", "vehicle.created");
  await page.click("#test-send");
  await outcome.filter({ hasText: "vehicle.created from a generic sample" }).waitFor();
  assert.equal(received.length, 2);
  assert.equal(JSON.parse(received[1].body).type, "vehicle.created");

  step("an emitted event appears in the event log without a reload");
  await page.goto(`${base}/log`);
  await page.locator("#live").filter({ hasText: "Live" }).waitFor();
  await page.evaluate(() => (window.notReloaded = true));
  const first = emit("ticket.login", "T-100");
  const row = page.locator("#log-rows tr", { hasText: "ticket.login" }).filter({ hasText: "delivered" });
  await row.first().waitFor();
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was not reloaded");
  // The per-hour histogram above the table (drawn when the page loaded).
  await page.reload();
  await page.locator("#log-rows tr", { hasText: "ticket.login" }).first().waitFor();
  const histogram = page.locator("#log-histogram svg.chart");
  assert.match(await histogram.getAttribute("aria-label"), /Event log: [1-9]\d* delivered/);
  await shot("event-log");

  step("open its detail");
  await row.first().locator("a").click();
  await page.waitForURL(/\/log\/\d+$/);
  await page.locator("#event-data").filter({ hasText: "volume_used" }).waitFor();
  assert.match(await page.textContent("main"), new RegExp(first.uuid));
  assert.match(await page.textContent(".attempt"), /Attempt 1: delivered, HTTP 200/);
  await shot("event-detail");

  step("the receiver fails; retry from the log");
  failing = true;
  const second = emit("ticket.login", "T-200");
  await page.goto(`${base}/log?q=${second.uuid}`);
  const failedRow = page.locator("#log-rows tr", { hasText: "failed" });
  await failedRow.first().waitFor();
  await failedRow.first().locator("a").click();
  await page.waitForURL(/\/log\/\d+$/);
  failing = false;
  await page.click("#retry-delivery");
  await page.getByText("1 delivery queued to be sent again.").waitFor();
  const detail = page.url();
  let delivered = false;
  for (let i = 0; i < 100 && !delivered; i++) {
    await page.goto(detail);
    delivered = /Attempt 2: delivered/.test(await page.textContent("main"));
    if (!delivered) await page.waitForTimeout(200);
  }
  assert.ok(delivered, "the retried delivery was delivered");
  assert.ok(received.some((r) => r.body.includes(second.uuid) && r.method === "POST"));

  step("save a webhook as a copy");
  await page.goto(`${base}/webhooks/${id}`);
  await page.click("button[name=action][value=copy]");
  await page.waitForURL(/\/webhooks\/\d+\?notice=copied/);
  assert.notEqual(page.url().match(/webhooks\/(\d+)/)[1], id);
  await page.goto(`${base}/webhooks`);
  await page.getByRole("link", { name: "PMS (copy)" }).waitFor();
  // Each webhook's last 24 hours: the first one has delivered and failed attempts.
  const chart = page.locator(`#webhooks tr[data-webhook="${id}"] svg.chart`);
  assert.match(await chart.getAttribute("aria-label"), /[1-9]\d* delivered, [1-9]\d* failed in 24 hours/);
  assert.ok((await chart.locator("title").count()) === 24, "a bar per hour");
  await shot("webhooks");

  step("change the read interval: saved, applied, and shown as from this page");
  await page.goto(`${base}/settings`);
  assert.match(await page.textContent("[data-source='router.read_interval']"), /config file/);
  await page.fill("#s-router\\.read_interval", "0.2");
  await page.click("text=Save settings");
  await page.getByText("Settings saved and applied.").waitFor();
  assert.equal(await page.inputValue("#s-router\\.read_interval"), "0.2");
  assert.match(await page.textContent("[data-source='router.read_interval']"), /saved here/);
  await page.fill("#s-router\\.read_interval", "0");
  await page.click("text=Save settings");
  await page.locator("#settings-error").filter({ hasText: "router.read_interval" }).waitFor();
  assert.equal(await page.inputValue("#s-router\\.read_interval"), "0", "the typed value is kept");

  step("the global switch: off is shown on every page, on again sends what waited");
  const before = received.length;
  await page.fill("#s-router\\.read_interval", "0.2");
  await page.fill("#s-delivery\\.enabled", "false");
  await page.click("text=Save settings");
  await page.getByText("Settings saved and applied.").waitFor();
  await page.locator("#sending-off").waitFor();
  await page.goto(`${base}/webhooks`);
  await page.locator("#sending-off").waitFor();
  await shot("sending-off");
  emit("ticket.login", "T-held");
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(received.length, before, "nothing is sent while sending is off");
  await page.goto(`${base}/settings`);
  await page.fill("#s-delivery\\.enabled", "true");
  await page.click("text=Save settings");
  await page.getByText("Settings saved and applied.").waitFor();
  assert.equal(await page.locator("#sending-off").count(), 0);
  for (let i = 0; i < 100 && received.length === before; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(received.length > before, "the held event was sent once sending was on again");

  step("create an API key, use it, revoke it");
  await page.goto(`${base}/settings`);
  await page.fill("#key-name", "monitoring");
  await page.selectOption("#key-scope", "read");
  await page.click("text=Create API key");
  const key = (await page.textContent("#new-key")).trim();
  assert.match(key, /^hk_/);
  await shot("settings");
  const api = (k) => fetch(`${base}/api/v1/webhooks`, { headers: { authorization: `Bearer ${k}` } });
  assert.equal((await api(key)).status, 200);
  await page.getByRole("button", { name: "Revoke key monitoring" }).click();
  await page.getByText("API key revoked").waitFor();
  assert.equal((await api(key)).status, 401);

  step("phone-sized screen");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/webhooks/${id}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const wide = await phone.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => e.children.length === 0 && e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5)
      .map((e) => `${e.tagName}#${e.id}`),
  );
  await shot("webhook-form-phone", phone);
  assert.ok(overflow <= 1, `the form fits a phone's width (overflow ${overflow}px: ${wide})`);
  await phone.goto(`${base}/webhooks`);
  const listOverflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const urlWidth = await phone.evaluate(() => document.querySelector("#webhooks td.url").getBoundingClientRect().width);
  await shot("webhooks-phone", phone);
  assert.ok(listOverflow <= 1, `the webhooks list fits a phone's width (overflow ${listOverflow}px)`);
  assert.ok(urlWidth > 250, `the URL has room on a phone (${urlWidth}px)`);
  await phone.close();

  assert.deepEqual(violations, [], "no page broke its Content-Security-Policy");

  step("log out");
  await page.click("text=Log out");
  await page.waitForURL(`${base}/login`);
  await page.goto(`${base}/settings`);
  assert.match(page.url(), /\/login\?next=/);
  console.log(`browser test passed; screenshots in ${SHOTS}`);
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`herald's log:\n${stderr}`);
  throw e;
} finally {
  await browser.close();
  herald.kill("SIGTERM");
  receiver.close();
}
