// Issue 10's "done when", end to end: a fresh gateway; the admin made as the first-run page
// says; sign in; create a key; call Sluice with it through a real client (the official OpenAI
// Python SDK from the suite's venv, else Node's fetch); the request with its cost appears in the
// Requests list's live tail and the key's meters move on the Keys page — neither page reloaded.
// Then Usage, Users and Me (a user reaches only Me) are visited.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../lib/processes.mjs";
import { context } from "../lib/browser.mjs";
import { createAdminAsThePageSays, signIn } from "../lib/ui.mjs";

export const title = "done when: first run → admin → key → OpenAI SDK call → request, cost and meters live";

/** The suite's Python with the OpenAI SDK (scripts/test.sh makes .venv), if there is one. */
function python() {
  const candidates = [process.env.SLUICE_PYTHON, join(REPO, ".venv/bin/python")].filter(Boolean);
  return candidates.find((p) => existsSync(p)) || null;
}

/** One chat completion with `key` through the OpenAI SDK (or fetch); the client's name. */
async function callWithClient(gw, key) {
  const py = python();
  if (py) {
    const script = [
      "import sys",
      "from openai import OpenAI",
      "client = OpenAI(base_url=sys.argv[1] + '/v1', api_key=sys.argv[2])",
      "reply = client.chat.completions.create(model='mock-model', messages=[{'role': 'user', 'content': 'hello from the SDK'}])",
      "assert reply.choices[0].message.content, reply",
      "print(reply.usage.total_tokens)",
    ].join("\n");
    const out = execFileSync(py, ["-c", script, gw.url, key], { stdio: "pipe" }).toString().trim();
    assert.ok(Number(out) > 0, `the SDK saw a usage block: ${out}`);
    return "openai-python";
  }
  console.log("  (no Python venv with the OpenAI SDK: calling with Node's fetch; scripts/test.sh makes .venv)");
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "mock-model", messages: [{ role: "user", content: "hello from fetch" }] }),
  });
  assert.equal(r.status, 200, await r.text());
  return "fetch";
}

export default async function ({ ctx, problems, mock, sluice, screenshot }) {
  // The suite's config prices mock-model, so the request has a cost to show.
  const gw = await sluice(await mock());
  const page = await ctx.newPage();
  await page.goto(`${gw.url}/ui`);
  const password = await createAdminAsThePageSays(page, gw);
  await page.reload();
  await signIn(page, gw, "admin", password);

  // Create a key on the Keys page; read it once from the dialog.
  await page.getByRole("link", { name: "Keys" }).click();
  await page.waitForURL(/\/ui\/keys$/);
  const form = page.locator("form.keyform");
  await form.getByLabel("Name").fill("sdk");
  await form.getByLabel("Per day").fill("100");
  await form.getByLabel(/Monthly quota/).fill("5");
  await form.getByRole("button", { name: "Create key" }).click();
  const dialog = page.locator("dialog#new-key");
  await dialog.waitFor();
  const secret = (await dialog.locator("#new-key-secret").textContent()).trim();
  await dialog.getByLabel(/I have saved this key/).check();
  await Promise.all([page.waitForURL(/\/ui\/keys\?saved=on$/), dialog.getByRole("button", { name: "Done" }).click()]);
  const row = page.locator("#keys-live tr", { hasText: "sdk" });
  await row.waitFor();
  assert.match(await row.textContent(), /0 \/ 100/);
  const keyId = (await row.getAttribute("id")).replace("key-", "");

  // The Requests list in a second tab, its live tail on.
  const requests = await ctx.newPage();
  await requests.goto(`${gw.url}/ui/requests`);
  await requests.locator("#tail[data-tail]").waitFor();
  assert.equal(await requests.locator("#tail-on").isChecked(), true);
  // Both streams are connected before the call (EventSource opens on load).
  await page.waitForTimeout(500);

  const client = await callWithClient(gw, secret);

  // No reload: the live tail brings the request (its key, a cost), and the key's row moves.
  const tailed = requests.locator("#requests-rows tr[data-request-id]", { hasText: `key:${keyId}` });
  await tailed.first().waitFor({ timeout: 15_000 });
  const text = await tailed.first().textContent();
  assert.match(text, /mock-model/);
  assert.match(text, /\$0\.\d*[1-9]/, `the request's cost shows: ${text}`);
  await screenshot(requests, "requests-live");
  const deadline = Date.now() + 15_000;
  while ((await page.locator(`#key-${keyId} [data-figure=requests]`).textContent()).trim() !== "1") {
    assert.ok(Date.now() < deadline, "the key's row moved without a reload");
    await page.waitForTimeout(200);
  }
  const moved = await page.locator(`#key-${keyId}`).textContent();
  assert.match(moved, /1 \/ 100/, "the daily meter moved");
  assert.match(moved, /\$0\.\d*[1-9]\d* \/ \$5\.00/, `the monthly meter moved: ${moved}`);
  assert.equal(new URL(page.url()).pathname, "/ui/keys", "still the same page");
  console.log(`  (called with ${client})`);

  // Usage shows it by key, with the cost against the key's quota.
  await page.getByRole("link", { name: "Usage" }).click();
  await page.waitForURL(/\/ui\/usage$/);
  const group = page.locator("#usage-groups tr", { hasText: "sdk" });
  await group.waitFor();
  assert.match(await group.textContent(), /\/ \$5\.00/);
  await screenshot(page, "usage");

  // Users: make a user; they reach only Me.
  await page.getByRole("link", { name: "Users" }).click();
  await page.waitForURL(/\/ui\/users$/);
  const create = page.locator("form#user-create");
  await create.getByLabel("User name").fill("kim");
  await create.getByLabel("Password").fill("kim password 1");
  await Promise.all([page.waitForURL(/\/ui\/users$/), create.getByRole("button", { name: "Create user" }).click()]);
  await page.locator("tr[data-username=kim]").waitFor();
  await screenshot(page, "users");

  // Kim's own browser context, watched for console errors and CSP violations like the rest.
  const kim = await context(ctx.browser(), problems);
  try {
    const kp = await kim.newPage();
    await signIn(kp, gw, "kim", "kim password 1");
    assert.match(new URL(kp.url()).pathname, /\/ui\/me$/);
    const nav = await kp.locator("nav[aria-label=main]").textContent();
    assert.doesNotMatch(nav, /Keys|Usage|Users|Requests|Overview|System/, "a user's nav is Me only");
    for (const path of ["/ui/usage", "/ui/users", "/ui/keys", "/ui/requests", "/ui/live/requests"]) {
      const r = await kim.request.get(`${gw.url}${path}`, { maxRedirects: 0 });
      assert.equal(r.status(), 403, path);
    }
    await kp.goto(`${gw.url}/ui/me`);
    const mine = kp.locator("form.keyform");
    await mine.getByLabel("Name").fill("kim laptop");
    await mine.getByRole("button", { name: "Create key" }).click();
    const d = kp.locator("dialog#new-key");
    await d.waitFor();
    assert.match((await d.locator("#new-key-secret").textContent()).trim(), /^sk-[A-Za-z0-9]{64}$/);
    await d.getByLabel(/I have saved this key/).check();
    await Promise.all([kp.waitForURL(/\/ui\/me\?saved=on$/), d.getByRole("button", { name: "Done" }).click()]);
    await kp.locator("#me-keys tr", { hasText: "kim laptop" }).waitFor();
    await screenshot(kp, "me");
  } finally {
    await kim.close();
  }
}
