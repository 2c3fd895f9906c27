// Starts `ferry sandbox` for one vendor on free loopback ports and reads back what it printed:
// the emulator's URL, what it seeded and the sandbox-only credentials.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The ferry binary the test command built (`FERRY_BIN` overrides it). */
export function ferryBin() {
  if (process.env.FERRY_BIN) return process.env.FERRY_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? resolve(repo, process.env.CARGO_TARGET_DIR)
    : join(repo, "target");
  const bin = join(target, "debug", "ferry");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build --bin ferry\` (or ./scripts/test) first`);
  }
  return bin;
}

/**
 * Runs `ferry sandbox --only VENDOR --any-port` with extra flags and waits for "Ready.".
 * Resolves to { url, seeded: {companies, contacts, deals, notes} | null, env: {VAR: value}, stop() }.
 */
export function startSandbox(vendor, { records = 200, seed = 42, clean = false, empty = false, flags = [] } = {}) {
  const args = ["sandbox", "--quiet", "--only", vendor, "--any-port", "--records", String(records), "--seed", String(seed)];
  if (clean) args.push("--clean");
  if (empty) args.push("--empty", vendor);
  args.push(...flags);
  const child = spawn(ferryBin(), args, { stdio: ["ignore", "pipe", "pipe"] });
  // Never leave a sandbox behind, even when a test file dies early.
  const reap = () => child.exitCode === null && child.kill("SIGTERM");
  process.once("exit", reap);
  child.once("exit", () => process.removeListener("exit", reap));
  let out = "";
  let err = "";
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`ferry sandbox did not get ready in 30 s\n${out}\n${err}`));
    }, 30_000);
    child.stderr.on("data", (d) => (err += d));
    const early = (code) => {
      clearTimeout(timer);
      reject(new Error(`ferry sandbox exited (${code}) before it was ready\n${out}\n${err}`));
    };
    child.on("exit", early);
    let ready = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (ready || !out.includes("\nReady.")) return;
      ready = true;
      clearTimeout(timer);
      child.removeListener("exit", early);
      const line = out.split("\n").find((l) => l.startsWith(`emulator ${vendor} `));
      const m = line && line.match(/(http:\/\/127\.0\.0\.1:\d+)\s+\((?:seeded: (\d+) compan(?:y|ies), (\d+) contacts?(?:, (\d+) deals?)?(?:, (\d+) notes?)?|empty)\)/);
      if (!m) {
        child.kill("SIGTERM");
        reject(new Error(`cannot find ${vendor}'s URL in:\n${out}`));
        return;
      }
      const env = {};
      for (const [, k, v] of out.matchAll(/^\s+export (\w+)=(\S+)$/gm)) env[k] = v;
      const exited = new Promise((r) => child.on("exit", r));
      resolvePromise({
        url: m[1],
        seeded: m[2] === undefined
          ? null
          : { companies: Number(m[2]), contacts: Number(m[3]), deals: Number(m[4] ?? 0), notes: Number(m[5] ?? 0) },
        env,
        async stop() {
          if (child.exitCode === null) child.kill("SIGTERM");
          await exited;
        },
      });
    });
  });
}

/** Calls `fn` and returns what it threw (fails if it did not throw). */
export async function thrown(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, got none");
}
