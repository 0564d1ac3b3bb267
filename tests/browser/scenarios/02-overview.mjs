// The Overview moves without a reload: a request through the gateway with a client key shows
// up in the tiles (pushed over Server-Sent Events when the usage batch is written), and the
// charts draw from the rollups.

import assert from "node:assert/strict";
import { signIn, chat, ADMIN, CLIENT_KEY } from "../lib/ui.mjs";

export const title = "overview: a request moves the tiles and charts without a reload";

export default async function ({ ctx, mock, sluice, screenshot }) {
  const gw = await sluice(await mock(), `api-keys: [${CLIENT_KEY}]\nauth: {admin: {username: ${ADMIN.username}, password: '${ADMIN.password}'}}\n`);
  const page = await ctx.newPage();
  await signIn(page, gw, ADMIN.username, ADMIN.password);
  assert.match(new URL(page.url()).pathname, /\/ui\/overview$/, "admins land on the Overview");
  const requests = page.locator("[data-figure=requests]");
  assert.equal((await requests.textContent()).trim(), "0");
  assert.match(await page.locator("#verdict").textContent(), /All steady/);
  await page.locator("#traffic-chart canvas").waitFor();
  // A marker a reload would lose.
  await page.evaluate(() => { window.__sluiceNoReload = true; });

  for (let i = 0; i < 3; i++) await chat(gw, CLIENT_KEY, "mock-model", `hello ${i}`);
  await page.waitForFunction(() => document.querySelector("[data-figure=requests]")?.textContent.trim() === "3", null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.__sluiceNoReload), true, "the page was not reloaded");
  assert.notEqual((await page.locator("[data-figure=tokens-today]").textContent()).trim(), "0");
  await page.waitForFunction(() => Number(document.querySelector("#traffic-chart")?.dataset.requests) >= 3, null, { timeout: 10_000 });
  assert.match(await page.locator(".tops").textContent(), /mock-model/);
  await screenshot(page, "overview");
}
