// Pulls through the public API and the CLI from a real CNCF distribution registry
// (`docker-registry`) on 127.0.0.1, with images pushed by `skopeo copy`: progress events,
// cancellation, strict options, error classes. The core's tests (crates/core/tests/pull.rs)
// cover the protocol, auth, TLS, mirrors and faults.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ImageCache, ImageNotFoundError, InvalidArgumentError, AbortError, type PullProgress } from "../src/index";
import { freshRoot, haveTools as haveToolsNamed, holdLock, rejectsWith, startCli, tempDir } from "./helpers";
import { HOST_ARCH, makeImage, makeLayer, writeOciLayoutDir } from "./fixtures";

function haveTools(): boolean {
  const missing = ["docker-registry", "skopeo"].filter((t) => spawnSync("which", [t]).status !== 0);
  if (process.env["OCICACHE_TEST_TIER"] === "fast") return false;
  if (missing.length > 0 && process.env["CI"] === "true") throw new Error(`${missing.join(", ")} required on CI`);
  if (missing.length > 0) console.warn(`SKIP: ${missing.join(", ")} not installed`);
  return missing.length === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const tools = haveTools();
const flock = tools && haveToolsNamed(["flock"], "the pull lock-wait test");
let registry: ChildProcess | undefined;
let host = "";
let registryDir: string | undefined;

beforeAll(async () => {
  if (!tools) return;
  // The registry's folder lives for the whole file (tempDir's folders go after each test,
  // which would take the pushed image away from every test after the first).
  registryDir = await mkdtemp(join(tmpdir(), "ocicache-registry-"));
  const dir = registryDir;
  host = `127.0.0.1:${await freePort()}`;
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /unused\nhttp:\n  addr: 127.0.0.1:0\n",
  );
  registry = spawn("docker-registry", ["serve", config], {
    env: {
      ...process.env,
      REGISTRY_HTTP_ADDR: host,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, "data"),
    },
    stdio: process.env["PULL_TEST_DEBUG"] ? "inherit" : "ignore",
  });
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      if (r.ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const layer = await makeLayer({ "etc/pulled": "pulled\n" }, { gzip: true });
  const image = makeImage([layer], { env: [], cmd: ["sh"], labels: {} }, { architecture: HOST_ARCH });
  const layout = await tempDir("ocicache-layout-");
  await writeOciLayoutDir(layout, [{ image, annotations: { "org.opencontainers.image.ref.name": "t" } }]);
  const push = spawnSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:t`, `docker://${host}/api/app:1`]);
  if (push.status !== 0) throw new Error(`skopeo: ${push.stderr.toString()}`);
}, 60_000);

afterAll(async () => {
  registry?.kill();
  if (registryDir) await rm(registryDir, { recursive: true, force: true });
});

describe("pull", () => {
  it.skipIf(!tools)("pulls with progress events, then answers from the cache", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const events: PullProgress[] = [];
    const handle = await cache.pull(`${host}/api/app:1`, { insecure: true, onProgress: (e) => events.push(e) });
    expect(handle.reference).toBe(`${host}/api/app:1`);
    expect(handle.layerCount).toBe(1);
    expect(handle.lastUsedAt).toBeInstanceOf(Date);
    // Events are delivered on the JS thread; give the queue a turn.
    await new Promise((r) => setTimeout(r, 50));
    const kinds = events.map((e) => e.kind);
    expect(kinds[0]).toBe("resolving");
    expect(kinds).toContain("layer-converted");
    expect(kinds.at(-1)).toBe("done");
    const converted = events.find((e) => e.kind === "layer-converted");
    expect(converted).toMatchObject({ index: 0, diffId: expect.stringMatching(/^sha256:/) });
    const again = await cache.pull(`${host}/api/app:1`, { policy: "never" });
    expect(again.manifestDigest).toBe(handle.manifestDigest);
    const use = await cache.acquire(`${host}/api/app:1`, { sandbox: "vm" }, { pull: { insecure: true } });
    expect(use.manifestDigest).toBe(handle.manifestDigest);
  });

  it.skipIf(!tools || !flock)("ocicache pull prints a line while a prune holds the GC lock, then pulls", async () => {
    const root = await freshRoot();
    const lock = join(root, "locks", "gc.lock");
    const held = await holdLock(lock, "exclusive");
    const run = startCli(["--root", root, "pull", "--insecure", "--quiet", `${host}/api/app:1`]);
    const line = /^ocicache: waiting for another ocicache process \(lock: (.+)\)$/m;
    try {
      await run.stderrMatches(line);
      expect(line.exec(run.stderr())?.[1]).toBe(lock);
      await new Promise((r) => setTimeout(r, 300));
      expect(run.exitedYet(), "the pull must wait while the lock is held").toBe(false);
    } finally {
      await held.release();
    }
    expect(await run.exited, run.stderr()).toBe(0);
    expect((await ImageCache.open({ root }).list()).map((h) => h.reference)).toEqual([`${host}/api/app:1`]);
  });

  it.skipIf(!tools)("rejects with typed errors and strict options", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const err = await rejectsWith(cache.pull(`${host}/api/app:nope`, { insecure: true }), ImageNotFoundError, "IMAGE_NOT_FOUND");
    expect(err.registryCode).toBe("MANIFEST_UNKNOWN");
    await rejectsWith(cache.pull(`${host}/api/app:1`, { insecur: true } as never), InvalidArgumentError, "INVALID_ARGUMENT");
    await rejectsWith(cache.pull(`${host}/api/app:1`, { policy: "sometimes" } as never), InvalidArgumentError, "INVALID_ARGUMENT");
    await rejectsWith(
      cache.pull(`${host}/api/app:1`, { auth: { username: "u" } } as never),
      InvalidArgumentError,
      "INVALID_ARGUMENT",
    );
    const controller = new AbortController();
    controller.abort();
    await rejectsWith(cache.pull(`${host}/api/app:1`, { signal: controller.signal }), AbortError, "ABORTED");
    expect(await cache.list()).toEqual([]);
  });
});
