// A fresh gateway without any admin: the sign-in page says how to create one; doing exactly
// what it says (the command shown, with this run's binary and config) makes the admin, who
// then signs in, lands on an admin page, and signs out.

import assert from "node:assert/strict";
import { createAdminAsThePageSays, signIn } from "../lib/ui.mjs";

export const title = "first run: create the admin as the page says, sign in, sign out";

export default async function ({ ctx, mock, sluice, screenshot }) {
  const gw = await sluice(await mock());
  const page = await ctx.newPage();
  await page.goto(`${gw.url}/ui`);
  assert.match(new URL(page.url()).pathname, /\/ui\/login$/);
  await page.locator("#first-run").waitFor();
  await screenshot(page, "first-run");
  const password = await createAdminAsThePageSays(page, gw);

  await page.reload();
  assert.equal(await page.locator("#first-run").count(), 0, "the first-run notice is gone once an admin exists");
  await signIn(page, gw, "admin", password);
  assert.doesNotMatch(new URL(page.url()).pathname, /login/);

  await Promise.all([page.waitForURL(/\/ui\/login$/), page.getByRole("button", { name: "Sign out" }).click()]);
  await page.goto(`${gw.url}/ui/system`);
  assert.match(new URL(page.url()).pathname, /\/ui\/login$/, "signed out: admin pages send to sign-in");
}
