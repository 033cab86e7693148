// A real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1 for the pull
// tests, with its storage in a temporary folder it owns; images are pushed to it with
// `skopeo copy`. One registry serves a whole test file: start it in `beforeAll`, stop it in
// `afterAll`.
//
// Its folder is made here, not with helpers' `tempDir`: that one removes its folders after each
// test, and a registry started in `beforeAll` then loses its storage after the file's first
// test, so every later pull of a pushed tag answers MANIFEST_UNKNOWN (what a CLI pull test
// placed after an API test met).
//
// The registry binds port 0 itself and the harness reads the port from its log line
// `listening on 127.0.0.1:PORT`: a port picked first and handed over (bind, close, start) could
// be taken in between by another process's registry, which would then answer for this one.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** How long the registry may take to report its address. */
const START_TIMEOUT_MS = 20_000;

/** Whether the registry tests can run: throws under CI when a tool is missing, warns elsewhere. */
export function haveRegistryTools(): boolean {
  const missing = ["docker-registry", "skopeo"].filter((t) => spawnSync("which", [t]).status !== 0);
  if (process.env["OCICACHE_TEST_TIER"] === "fast") return false;
  if (missing.length > 0 && process.env["CI"] === "true") throw new Error(`${missing.join(", ")} required on CI`);
  if (missing.length > 0) console.warn(`SKIP: ${missing.join(", ")} not installed`);
  return missing.length === 0;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** The registry process. */
  readonly child: ChildProcess;
  /** Pushes `source` (a skopeo transport such as `oci:DIR:TAG`) as `HOST/<name>`. */
  push(source: string, name: string): void;
  /** Stops the registry (by its own PID) and removes its storage. */
  stop(): Promise<void>;
}

/** How often the harness looks for the address line in the registry's log. */
const POLL_MS = 50;

/**
 * Starts a registry and resolves once it listens. Rejects when it exits first or does not report
 * its address within START_TIMEOUT_MS. Its log goes to a file (a pipe would stall the registry
 * while a test blocks the event loop in `spawnSync`); `PULL_TEST_DEBUG=1` prints the file's path.
 */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "ocicache-registry-"));
  const config = join(dir, "config.yml");
  const logFile = join(dir, "registry.log");
  // Log level info: the address line is an info message; the access log stays off.
  await writeFile(
    config,
    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /unused\nhttp:\n  addr: 127.0.0.1:0\n",
  );
  const log = openSync(logFile, "w");
  const child = spawn("docker-registry", ["serve", config], {
    env: { ...process.env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, "data"), REGISTRY_HTTP_SECRET: "test" },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  if (process.env["PULL_TEST_DEBUG"]) console.warn(`docker-registry log: ${logFile}`);
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = String(code ?? signal);
  });
  child.once("error", (err) => {
    exited = err.message;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  let host: string | undefined;
  while (host === undefined) {
    const text = readFileSync(logFile, "utf8");
    host = /listening on (127\.0\.0\.1:\d+)/.exec(text)?.[1];
    if (host !== undefined) break;
    if (exited !== undefined) throw new Error(`docker-registry exited (${exited}) before listening:\n${text}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`docker-registry reported no address in ${START_TIMEOUT_MS} ms:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const found = host;
  return {
    host: found,
    child,
    push(source, name) {
      const r = spawnSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", source, `docker://${found}/${name}`]);
      if (r.status !== 0) throw new Error(`skopeo copy ${source}: ${r.stderr.toString()}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill();
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
