// Pulls through the public API and the CLI from a real CNCF distribution registry
// (`docker-registry`) on 127.0.0.1, with images pushed by `skopeo copy`: progress events,
// cancellation, strict options, error classes. The core's tests (crates/core/tests/pull.rs)
// cover the protocol, auth, TLS, mirrors and faults.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ImageCache, ImageNotFoundError, InvalidArgumentError, AbortError, type PullProgress } from "../src/index";
import { freshRoot, rejectsWith, tempDir } from "./helpers";
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
let registry: ChildProcess | undefined;
let host = "";

beforeAll(async () => {
  if (!tools) return;
  const dir = await tempDir("ocicache-registry-");
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

afterAll(() => {
  registry?.kill();
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
