// Debian's Chromium driven by playwright-core, with every page watched: a console error, an
// uncaught exception or a Content-Security-Policy violation on any page fails the scenario.

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.SLUICE_CHROMIUM || "/usr/bin/chromium";

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

/**
 * A fresh browser context (its own cookies) whose pages report problems into `problems`.
 * CSP violations are caught twice over: Chromium logs each as a console error, and a listener
 * installed before any page script (through the DevTools protocol, so the page's CSP does not
 * apply to it) reports every `securitypolicyviolation` event.
 */
export async function context(browser, problems, options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  await ctx.exposeBinding("__sluiceReportViolation", ({ page }, v) => {
    problems.push(`CSP violation on ${page.url()}: ${v}`);
  });
  await ctx.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__sluiceReportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile || ""}:${e.lineNumber || 0})`);
    });
  });
  ctx.on("page", (page) => watch(page, problems));
  return ctx;
}

function watch(page, problems) {
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error on ${page.url()}: ${msg.text()} (${msg.location().url || "?"})`);
  });
  page.on("pageerror", (err) => problems.push(`uncaught exception on ${page.url()}: ${err.message}`));
}
