// The browser suite: each scenario in scenarios/ runs against a fresh sluice-mock and a fresh
// sluice (its own data directory), in a fresh browser context. A scenario fails on its own
// assertions and on any console error, uncaught exception or CSP violation on any page it
// visited. Usage: node run.mjs [name-filter]   (tests/browser/run.sh checks the prerequisites)
//
// SLUICE_SCREENSHOTS=<dir> saves the screenshots scenarios take there (docs/screenshots/ is
// refreshed with: SLUICE_SCREENSHOTS=docs/screenshots tests/browser/run.sh).

import { readdirSync, rmSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { launch, context } from "./lib/browser.mjs";
import { REPO, startMock, startSluice, tempDir } from "./lib/processes.mjs";

const filter = process.argv[2] || "";
const here = new URL(".", import.meta.url).pathname;
const files = readdirSync(join(here, "scenarios"))
  .filter((f) => f.endsWith(".mjs") && f.includes(filter))
  .sort();
const shots = process.env.SLUICE_SCREENSHOTS ? resolve(REPO, process.env.SLUICE_SCREENSHOTS) : null;
if (shots) mkdirSync(shots, { recursive: true });

const SCENARIO_TIMEOUT_MS = 120_000;
const browser = await launch();
let failed = 0;
const started = Date.now();
for (const file of files) {
  const { default: scenario, title = file } = await import(join(here, "scenarios", file));
  const dir = tempDir();
  const problems = [];
  const children = [];
  let error = null;
  const t0 = Date.now();
  const ctx = await context(browser, problems);
  try {
    const env = {
      dir,
      ctx,
      problems,
      async mock() {
        const m = await startMock(dir);
        children.push(m);
        return m;
      },
      async sluice(mock, extra) {
        const s = await startSluice(dir, mock, extra);
        children.push(s);
        return s;
      },
      async screenshot(page, name) {
        if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
      },
    };
    await Promise.race([
      scenario(env),
      new Promise((_, fail) => setTimeout(() => fail(new Error(`timed out after ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS)),
    ]);
  } catch (e) {
    error = e;
  }
  await ctx.close().catch(() => {});
  for (const c of children.reverse()) await c.stop();
  if (!error && problems.length) error = new Error(problems.join("\n"));
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (error) {
    failed += 1;
    console.log(`FAIL ${title} (${secs}s)\n  ${String(error.stack || error).replaceAll("\n", "\n  ")}`);
    for (const c of children) console.log(`  --- ${c.name} output (tail) ---\n${c.tail()}`);
    console.log(`  (files kept in ${dir})`);
  } else {
    console.log(`ok   ${title} (${secs}s)`);
    rmSync(dir, { recursive: true, force: true });
  }
}
await browser.close();
const total = ((Date.now() - started) / 1000).toFixed(1);
console.log(`${files.length - failed} passed, ${failed} failed (${total}s)`);
process.exit(failed ? 1 : 0);
