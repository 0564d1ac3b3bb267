// Requests: a request whose first upstream attempt failed (the mock answers 500 once) and was
// served by the other credential shows up with an attempts badge; its detail page shows the
// failover timeline with the cooldown the failure opened.

import assert from "node:assert/strict";
import { signIn, chat, ADMIN, CLIENT_KEY } from "../lib/ui.mjs";

export const title = "requests: a request that failed over shows its timeline";

export default async function ({ ctx, mock, sluice, screenshot }) {
  const gw = await sluice(await mock(), `api-keys: [${CLIENT_KEY}]\nauth: {admin: {username: ${ADMIN.username}, password: '${ADMIN.password}'}}\n`);
  await chat(gw, CLIENT_KEY, "mock-model", "a plain one");
  const reply = await chat(gw, CLIENT_KEY, "mock-model", "this one fails over mock:cycle=500.200");
  assert.ok(reply.choices[0].message.content.length > 0);

  const page = await ctx.newPage();
  await signIn(page, gw, ADMIN.username, ADMIN.password);
  await page.getByRole("link", { name: "Requests" }).click();
  await page.waitForURL(/\/ui\/requests$/);
  const deadline = Date.now() + 15_000;
  while ((await page.locator("#requests-table tbody tr[data-request-id]").count()) < 2) {
    assert.ok(Date.now() < deadline, "both requests listed");
    await page.waitForTimeout(300);
    await page.reload();
  }
  await screenshot(page, "requests");
  await page.getByLabel("had failover").check();
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/failover=1/);
  const rows = page.locator("#requests-table tbody tr[data-request-id]");
  assert.equal(await rows.count(), 1, "only the request that failed over");
  await rows.first().locator("a.attempts").click();
  await page.waitForURL(/\/ui\/requests\/\d+\//);
  const steps = page.locator("#timeline li");
  assert.equal(await steps.count(), 2);
  const first = await steps.nth(0).textContent();
  const second = await steps.nth(1).textContent();
  assert.match(first, /500[\s\S]*mock#\d[\s\S]*opened a cooldown until/);
  assert.match(second, /200[\s\S]*mock#\d/);
  assert.notEqual(first.match(/mock#\d/)[0], second.match(/mock#\d/)[0], "served by the other credential");
  await screenshot(page, "request-timeline");

  // The CSV of the current filter.
  const csv = await page.evaluate(async () => (await fetch("/ui/requests.csv?failover=1")).text());
  assert.equal(csv.trim().split("\n").length, 2, csv);
}
