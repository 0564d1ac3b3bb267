// Credentials: a 429 forced upstream (sluice-mock's directive) cools the credentials; the rows
// turn "cooling" without a reload (pushed over Server-Sent Events from the router's own state
// changes), the countdown ticks in the browser, and when it ends the row refreshes itself and
// shows the credential active again. "Test now" shows the upstream's answer; the routing
// preview lists the credentials in the order the router would try them.

import assert from "node:assert/strict";
import { signIn, ADMIN, CLIENT_KEY } from "../lib/ui.mjs";

export const title = "credentials: a 429 cools a row live, the countdown ticks and the row recovers";

export default async function ({ ctx, mock, sluice, screenshot }) {
  const gw = await sluice(await mock(), `api-keys: [${CLIENT_KEY}]\nauth: {admin: {username: ${ADMIN.username}, password: '${ADMIN.password}'}}\n`);
  const page = await ctx.newPage();
  await signIn(page, gw, ADMIN.username, ADMIN.password);
  await page.getByRole("link", { name: "Credentials" }).click();
  await page.waitForURL(/\/ui\/credentials$/);
  const rows = page.locator("tr.cred");
  assert.equal(await rows.count(), 2, "both credentials of the mock provider");
  assert.equal(await page.locator("tr.cred[data-status=active]").count(), 2);
  await page.evaluate(() => { window.__sluiceNoReload = true; });

  // Both credentials answer 429 with Retry-After: 6 (the directive rides in the prompt, so
  // every attempt of this request gets it).
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "mock-model", messages: [{ role: "user", content: "mock:status=429 mock:retry_after=6" }] }),
  });
  assert.equal(r.status, 429);

  const cooling = page.locator("tr.cred[data-status=cooling]");
  await cooling.first().waitFor({ timeout: 10_000 });
  const row = cooling.first();
  const id = await row.getAttribute("id");
  const countdown = page.locator(`#${id} time.countdown`);
  const before = Number((await countdown.textContent()).replace(/\D/g, ""));
  assert.ok(before >= 3 && before <= 6, `countdown starts near 6 s (${before})`);
  assert.match(await page.locator(`#${id}`).textContent(), /HTTP 429/, "the upstream's words");
  assert.match(await page.locator("#route-models").textContent(), /not routable now|mock-model/);
  await screenshot(page, "credentials");
  await page.waitForTimeout(1500);
  const later = Number((await countdown.textContent()).replace(/\D/g, ""));
  assert.ok(later < before, `the countdown ticks (${before} → ${later})`);

  // At zero the row fetches itself and shows the credential back in rotation.
  await page.locator(`#${id}[data-status=active]`).waitFor({ timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.__sluiceNoReload), true, "the page was not reloaded");

  // Test now: a real request to that credential, its answer shown in the row.
  await page.locator(`#${id} button[data-action=test]`).click();
  await page.locator(`#${id} [data-probe-status="200"]`).waitFor({ timeout: 15_000 });
  assert.match(await page.locator(`#${id} .probe-result`).textContent(), /first byte/);

  // Routing preview: the router's order for a model.
  await page.locator("#route-preview select[name=model]").selectOption("mock-model");
  await page.locator("#route-preview button[type=submit]").click();
  await page.waitForURL(/model=mock-model/);
  assert.equal(await page.locator("#preview-steps li").count(), 2, "both credentials, in order");

  // 简体中文 and the phone layout.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.locator("select[name=lang]").selectOption("zh-CN");
  await page.waitForLoadState();
  await page.locator("h1", { hasText: "凭据" }).waitFor();
}
