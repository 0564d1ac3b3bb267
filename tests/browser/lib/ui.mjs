// Steps several scenarios share.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { binary, sluiceCli } from "./processes.mjs";

/** Signs in through the form; the page it lands on. */
export async function signIn(page, sluice, username, password) {
  await page.goto(`${sluice.url}/ui/login`);
  await page.getByLabel(/User name|用户名/).fill(username);
  await page.getByLabel(/^Password|^密码/).fill(password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/login") && r.request().method() === "POST"),
    page.getByRole("button", { name: /^Sign in$|^登录$/ }).click(),
  ]);
  await page.waitForLoadState();
  if (response.status() !== 303) {
    throw new Error(`sign-in as ${username} answered ${response.status()}: ${(await response.text()).slice(0, 400)}`);
  }
  await page.waitForURL((u) => !u.pathname.endsWith("/ui/login"));
  assert.ok(await page.getByRole("button", { name: /Sign out|退出登录/ }).isVisible(), "signed in");
}

/**
 * On a fresh gateway's sign-in page: reads the first-run notice, runs exactly the command it
 * shows (with this run's binary and config file) and returns the admin's password it set.
 */
export async function createAdminAsThePageSays(page, gw) {
  const firstRun = page.locator("#first-run");
  await firstRun.waitFor();
  const command = (await firstRun.locator("pre code").first().textContent()).trim();
  assert.match(command, /sluice users create .*--admin .*--password-stdin/);
  const runnable = command
    .replace(/\bsluice users create/, `'${binary("SLUICE_BIN", "sluice")}' users create`)
    .replace("sluice.yaml", `'${gw.config}'`);
  execFileSync("bash", ["-c", runnable], { stdio: "pipe" });
  // The password the command pipes in (its second quoted word).
  return [...command.matchAll(/'([^']*)'/g)][1][1];
}

/** An admin made with the CLI, as the first-run screen says. */
export function createAdmin(sluice, username, password) {
  sluiceCli(["users", "create", "--config", sluice.config, "--username", username, "--admin", "--password-stdin"], `${password}\n`);
}

/** A user (role `user`) made with the CLI. */
export function createUser(sluice, username, password) {
  sluiceCli(["users", "create", "--config", sluice.config, "--username", username, "--password-stdin"], `${password}\n`);
}

export const ADMIN = { username: "admin", password: "correct horse battery" };
export const CLIENT_KEY = "sk-browser-client-key-0001";

/** One chat completion through the gateway (what an OpenAI SDK sends); its JSON answer. */
export async function chat(gw, key, model, text, extra = {}) {
  const r = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: text }], ...extra }),
  });
  const body = await r.text();
  if (!r.ok) throw new Error(`chat through the gateway answered ${r.status}: ${body}`);
  return JSON.parse(body);
}
