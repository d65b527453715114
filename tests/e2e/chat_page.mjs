// Browser test of the ragd chat page: headless Debian chromium driven by playwright-core.
//   node chat_page.mjs BASE_URL SCREENSHOT.png
// Loads the page, checks the index list, asks a question, waits for the streamed answer and
// the sources, checks the stage timings, and saves a phone-sized screenshot.
// Exit status 0 on success; failures print the reason on stderr.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error("usage: node chat_page.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const question = process.env.RAGD_E2E_QUESTION || "范廷颂是什么时候被任为主教的？";
const wantSource = process.env.RAGD_E2E_SOURCE || "";
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ragd-chromium-"));

function fail(msg) { throw new Error(msg); }

// A fresh profile directory each run (playwright passes it as --user-data-dir). A phone
// screen: the page must be usable at 390 px wide.
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: process.env.RAGD_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
});
let rc = 0;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  // Only our own origin is ever contacted (no external assets).
  const origin = new URL(base).origin;
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) foreign.push(r.url()); });

  await page.goto(base + "/", { waitUntil: "load" });
  // Index list comes from GET /v1/indexes.
  await page.click("#settings-toggle");
  await page.waitForSelector("#indexes input[name=index]", { timeout: 15000 });
  const indexes = await page.$$eval("#indexes input[name=index]", (l) => l.map((c) => c.value));
  if (!indexes.length) fail("no index checkboxes");
  await page.fill("#topk", "3");
  await page.fill("#maxtok", "40");
  await page.click("#settings-toggle");

  // Count how the answer grows: streamed text arrives in several DOM updates.
  await page.evaluate(() => {
    window.__growth = 0;
    new MutationObserver(() => { window.__growth++; })
      .observe(document.getElementById("log"), { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#question", question);
  await page.click("#send");
  await page.waitForSelector(".turn[data-done='1']", { timeout: 120000 });

  const res = await page.evaluate(() => {
    const t = document.querySelector(".turn");
    return {
      answer: t.querySelector(".a").textContent,
      err: t.querySelector(".a").classList.contains("err"),
      sources: [...t.querySelectorAll(".sources li .text")].map((e) => e.textContent),
      meta: [...t.querySelectorAll(".sources li .meta")].map((e) => e.textContent),
      stats: t.querySelector(".stats").textContent,
      growth: window.__growth,
      width: document.documentElement.scrollWidth,
    };
  });
  if (res.err) fail("the page shows an error: " + res.answer);
  // (the random-weight test models may answer in whitespace: check length, not content)
  if (!res.answer.length) fail("empty answer");
  if (res.sources.length < 1 || res.sources.length > 3) fail("want 1..3 sources, got " + res.sources.length);
  if (res.sources.some((s) => !s.trim())) fail("a source has no text");
  if (wantSource && !res.sources.some((s) => s.includes(wantSource)))
    fail("the expected passage is not among the sources: " + JSON.stringify(res.meta));
  if (!/TTFT/.test(res.stats) || !/tok\/s/.test(res.stats) || !/search/.test(res.stats))
    fail("stage timings / tokens per second missing: " + res.stats);
  if (res.growth < 3) fail("the answer did not stream (" + res.growth + " DOM updates)");
  if (res.width > 390) fail("the page is wider than the phone screen: " + res.width + " px");
  if (errors.length) fail("page errors: " + errors.join("; "));
  if (foreign.length) fail("requests to other origins: " + foreign.join(", "));
  await page.evaluate(() => document.querySelector(".turn").scrollIntoView({ block: "start" }));
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ indexes, sources: res.sources.length, answer_chars: res.answer.length,
                               updates: res.growth, stats: res.stats }));
} catch (e) {
  console.error("e2e: " + e.message);
  rc = 1;
} finally {
  await browser.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}
process.exit(rc);
