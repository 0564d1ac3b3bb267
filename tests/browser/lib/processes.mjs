// The real binaries on loopback ports: sluice-mock as the upstream and sluice in front of it.
// Binaries come from $CARGO_TARGET_DIR/debug/ (default target/debug/), or SLUICE_BIN /
// SLUICE_MOCK_BIN. Nothing here talks to anything but 127.0.0.1.

import { spawn, execFileSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const UPSTREAM_KEY = "sk-upstream-browser";
export const MODELS = ["mock-model", "mock-second"];

export function binary(envVar, name) {
  const target = process.env.CARGO_TARGET_DIR
    ? resolve(REPO, process.env.CARGO_TARGET_DIR)
    : join(REPO, "target");
  const path = process.env[envVar] || join(target, "debug", name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${name} not found at ${path}: build it first (cargo build -p sluice -p sluice-mock --bins)`);
  }
  return path;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export function tempDir(prefix = "sluice-browser-") {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A child process whose output is kept (in memory and in a file) for failure messages. */
class Child {
  constructor(name, argv, dir) {
    this.name = name;
    this.output = "";
    this.log = join(dir, `${name}.log`);
    this.proc = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_PROXY: "127.0.0.1,localhost", no_proxy: "127.0.0.1,localhost" },
    });
    this.exited = new Promise((ok) => this.proc.once("exit", (code, signal) => ok({ code, signal })));
    const keep = (chunk) => {
      this.output += chunk.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
  }

  tail(n = 3000) {
    return this.output.slice(-n) || "<no output>";
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
    writeFileSync(this.log, this.output);
  }
}

export async function startMock(dir) {
  const argv = [binary("SLUICE_MOCK_BIN", "sluice-mock"), "--listen", "127.0.0.1:0"];
  for (const m of MODELS) argv.push("--model", m);
  argv.push("--api-key", UPSTREAM_KEY, "--api-key", `${UPSTREAM_KEY}-second`);
  const child = new Child("sluice-mock", argv, dir);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const m = child.output.match(/sluice-mock listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) {
      child.port = Number(m[1]);
      child.url = `http://127.0.0.1:${child.port}`;
      return child;
    }
    if (child.proc.exitCode !== null) break;
    await sleep(50);
  }
  await child.stop();
  throw new Error(`sluice-mock did not start:\n${child.tail()}`);
}

/**
 * sluice with `extra` YAML after a config that listens on a free port, keeps its data in `dir`
 * and routes `mock-model` / `mock-second` to the mock. `extra` may be a function of the mock.
 */
export async function startSluice(dir, mock, extra = "") {
  const port = await freePort();
  const config = join(dir, "sluice.yaml");
  const yaml = `listen: 127.0.0.1:${port}
data-dir: ${join(dir, "data")}
cooldown: {quota-backoff: 20s, quota-backoff-max: 20s, server-error-threshold: 1, server-error: 20s}
prices: {mock-model: {input: 2.5, output: 10.0}, mock-second: {input: 0.15, output: 0.6}}
providers:
  - name: mock
    kind: openai-compatible
    platform: openai
    base-url: ${mock.url}/v1
    api-keys: [${UPSTREAM_KEY}, ${UPSTREAM_KEY}-second]
    models:
      - name: mock-model
      - name: mock-second
${extra}`;
  writeFileSync(config, yaml);
  const child = new Child("sluice", [binary("SLUICE_BIN", "sluice"), "serve", "--config", config], dir);
  child.port = port;
  child.url = `http://127.0.0.1:${port}`;
  child.config = config;
  const deadline = Date.now() + 20_000;
  let last = "no attempt";
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) break;
    try {
      const r = await fetch(`${child.url}/readyz`);
      if (r.status === 200) return child;
      last = `GET /readyz -> ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(100);
  }
  await child.stop();
  throw new Error(`sluice did not become ready (${last}):\nconfig:\n${yaml}\n${child.tail()}`);
}

/** Runs `sluice <args>` to completion (stdin optional); its output, or an error with it. */
export function sluiceCli(args, input) {
  return execFileSync(binary("SLUICE_BIN", "sluice"), args, {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 30_000,
  });
}

export function sleep(ms) {
  return new Promise((ok) => setTimeout(ok, ms));
}

export function read(path) {
  return readFileSync(path, "utf8");
}
