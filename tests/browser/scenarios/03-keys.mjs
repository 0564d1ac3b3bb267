// Keys: create a key in the dashboard, read it from the dialog (copied to the clipboard), which
// cannot be dismissed until the user confirms; the secret never appears again; the key works
// through the gateway, and its request shows on its row.

import assert from "node:assert/strict";
import { signIn, chat, ADMIN } from "../lib/ui.mjs";

export const title = "keys: create one, copy it once, use it, see its request";

export default async function ({ ctx, mock, sluice, screenshot }) {
  const gw = await sluice(await mock(), `auth: {admin: {username: ${ADMIN.username}, password: '${ADMIN.password}'}}\n`);
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: gw.url });
  const page = await ctx.newPage();
  await signIn(page, gw, ADMIN.username, ADMIN.password);
  await page.getByRole("link", { name: "Keys" }).click();
  await page.waitForURL(/\/ui\/keys$/);

  const form = page.locator("form.keyform");
  await form.getByLabel("Name").fill("laptop");
  await form.getByLabel("Per day").fill("100");
  await form.getByLabel(/Monthly quota/).fill("5");
  await form.getByRole("button", { name: "Create key" }).click();
  const dialog = page.locator("dialog#new-key");
  await dialog.waitFor();
  const secret = (await dialog.locator("#new-key-secret").textContent()).trim();
  assert.match(secret, /^sk-[A-Za-z0-9]{64}$/);
  assert.match(await dialog.locator("#snippet-openai").textContent(), new RegExp(`api_key="${secret}"`));
  assert.match(await dialog.locator("#snippet-anthropic").textContent(), /ANTHROPIC_BASE_URL=http:\/\/127\.0\.0\.1/);
  await screenshot(page, "keys-created");

  await dialog.getByRole("button", { name: "Copy" }).first().click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, "the copy button copied the key");

  // Not dismissable: Escape leaves it open, and Done needs the confirmation.
  await page.keyboard.press("Escape");
  assert.ok(await dialog.isVisible(), "Escape does not close the dialog");
  await dialog.getByRole("button", { name: "Done" }).click();
  assert.ok(await dialog.isVisible(), "Done without the confirmation keeps it open");
  await dialog.getByLabel(/I have saved this key/).check();
  await Promise.all([page.waitForURL(/\/ui\/keys\?saved=on$/), dialog.getByRole("button", { name: "Done" }).click()]);
  assert.equal(await page.locator("dialog#new-key").count(), 0);
  assert.ok(!(await page.content()).includes(secret), "the secret never appears again");
  const row = page.locator("tr", { hasText: "laptop" });
  await row.waitFor();
  assert.match(await row.textContent(), /0 \/ 100/);

  // The key works through the gateway, and its request shows up on its row.
  const reply = await chat(gw, secret, "mock-model", "hello from the dashboard's key");
  assert.ok(reply.choices[0].message.content.length > 0);
  const deadline = Date.now() + 15_000;
  while ((await row.locator("[data-figure=requests]").textContent()).trim() !== "1") {
    assert.ok(Date.now() < deadline, "the request reached the key's row");
    await page.waitForTimeout(300);
    await page.reload();
  }
  assert.match(await row.textContent(), /1 \/ 100/, "the daily meter moved");
  assert.ok(!(await page.content()).includes(secret), "still never shown again");
  await screenshot(page, "keys");

  // Disable it: the gateway refuses it at once.
  await row.getByRole("button", { name: "Disable" }).click();
  await page.waitForURL(/\/ui\/keys$/);
  assert.match(await page.locator("tr", { hasText: "laptop" }).textContent(), /disabled/);
  await assert.rejects(chat(gw, secret, "mock-model", "again"), /401|403/);
}
