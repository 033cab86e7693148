// Pulls through the public API and the CLI from a real CNCF distribution registry
// (`docker-registry`, test/registry.ts) on 127.0.0.1, with images pushed by `skopeo copy`:
// progress events, cancellation, strict options, error classes, and `ocicache pull`'s output,
// exit codes and Ctrl-C. The core's tests (crates/core/tests/pull.rs, pull_token.rs) cover the
// protocol, auth, TLS, mirrors and faults.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  AbortError,
  CorruptCacheError,
  ImageCache,
  ImageNotFoundError,
  InvalidArgumentError,
  type PullProgress,
} from "../src/index";
import {
  CLI,
  freshRoot,
  haveTools as haveToolsNamed,
  holdLock,
  namesIn,
  rejectsWith,
  startCli,
  tempDir,
  tmpFiles,
} from "./helpers";
import { HOST_ARCH, makeImage, makeLayer, writeOciLayoutDir, type ImageFixture } from "./fixtures";
import { haveRegistryTools, startRegistry, type TestRegistry } from "./registry";

const tools = haveRegistryTools();
const flock = tools && haveToolsNamed(["flock"], "the pull lock-wait test");
let registry: TestRegistry | undefined;
let host = "";

/** Pushes `image` as `name` from an OCI layout folder. */
async function push(image: ImageFixture, name: string): Promise<void> {
  const layout = await tempDir("ocicache-layout-");
  await writeOciLayoutDir(layout, [{ image, annotations: { "org.opencontainers.image.ref.name": "t" } }]);
  registry?.push(`oci:${layout}:t`, name);
}

beforeAll(async () => {
  if (!tools) return;
  registry = await startRegistry();
  host = registry.host;
  const layer = await makeLayer({ "etc/pulled": "pulled\n" }, { gzip: true });
  await push(makeImage([layer], { env: [], cmd: ["sh"], labels: {} }, { architecture: HOST_ARCH }), "api/app:1");
  // A layer of about 1 MB (0.75 MB once skopeo gzips it): the download the Ctrl-C test stalls.
  const bigLayer = await makeLayer({ "srv/big.txt": randomBytes(768 * 1024).toString("base64") });
  await push(makeImage([bigLayer], { env: [], cmd: ["sh"], labels: {} }, { architecture: HOST_ARCH }), "api/big:1");
}, 60_000);

afterAll(async () => {
  await registry?.stop();
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

  it.skipIf(!tools)("repair fetches a damaged layer again from the registry the image came from", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const ref = `${host}/api/app:1`;
    await cache.pull(ref, { insecure: true });
    const detail = await cache.inspect(ref);
    expect(detail.origin).toBe(`${host}/api/app`);
    expect(cli(["--root", root, "inspect", ref]).stdout).toMatch(new RegExp(`^Origin: +${host.replaceAll(".", "\\.")}/api/app$`, "m"));
    expect((JSON.parse(cli(["--root", root, "inspect", ref, "--json"]).stdout) as { origin: string }).origin).toBe(`${host}/api/app`);
    const diffId = detail.layers[0]?.diffId ?? "";
    const layer = join(root, "layers", "sha256", `${diffId.slice("sha256:".length)}.erofs`);
    const good = await readFile(layer);
    const damage = async () => {
      const bytes = Buffer.from(good);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0x5a;
      await writeFile(layer, bytes);
    };

    await damage();
    const report = await cache.repair(ref, { pull: { insecure: true } });
    const [image] = report.images;
    expect(image).toMatchObject({ origin: `${host}/api/app`, fetchError: null, broken: null, problems: [] });
    expect(image?.repaired.map((p) => [p.artifact, p.path])).toEqual([["layer", layer]]);
    expect(Object.isFrozen(image)).toBe(true);
    expect(Buffer.compare(await readFile(layer), good)).toBe(0);
    expect((await cache.list()).map((h) => h.reference)).toEqual([ref]);
    await cache.bootDisk(ref);

    // Without registry access: marked broken, the remedy named.
    await damage();
    const offline = await cache.repair(ref, { pull: false });
    expect(offline.images[0]?.broken).toMatch(/pull the image again/);
    await rejectsWith(cache.bootDisk(ref), CorruptCacheError, "CORRUPT_CACHE");
    // The CLI repairs it through the registry (plain HTTP here).
    const r = cli(["--root", root, "check", "--repair", "--insecure"]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`repaired layer missing: ${layer}`);
    expect(Buffer.compare(await readFile(layer), good)).toBe(0);
    await cache.bootDisk(ref);

    // Strict options: `pull` takes only the registry part of a pull's options.
    await rejectsWith(cache.repair(ref, { pull: { platform: "linux/arm64" } } as never), InvalidArgumentError, "INVALID_ARGUMENT");
    await rejectsWith(cache.repair(ref, { pull: true } as never), InvalidArgumentError, "INVALID_ARGUMENT");
    await rejectsWith(cache.repair(ref, { pull: { auth: { token: "" } } }), InvalidArgumentError, "INVALID_ARGUMENT");
    for (const args of [["check", "--insecure"], ["check", "--repair", "--no-pull", "--insecure"]]) {
      const usage = cli(["--root", root, ...args]);
      expect(usage.status, args.join(" ")).toBe(2);
    }
  });

  // Regression: the registry's storage was a helpers.tempDir folder, which is removed after each
  // test, so from the second test of the file on every pull of a pushed tag answered
  // MANIFEST_UNKNOWN (the CLI pull test met it, placed after the API test).
  it.skipIf(!tools)("the registry keeps what beforeAll pushed after the first test", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const handle = await cache.pull(`${host}/api/app:1`, { insecure: true });
    expect(handle.layerCount).toBe(1);
  });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end (the registry is another process, so blocking here is fine). */
function cli(args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { input: "", encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** How many bytes of the stalled blob the proxy passes before it stops sending. */
const STALL_AFTER = 64 * 1024;

/**
 * An HTTP proxy in front of the registry that passes every request through, except that a blob
 * GET whose answer is longer than STALL_AFTER (the layer; skopeo recompressed it on push, so
 * its digest is not the fixture's) gets its head and first STALL_AFTER bytes, then nothing (the
 * connection stays open). `stalled` resolves when that happened.
 */
async function stallingProxy(upstream: string) {
  let onStall = () => {};
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  const [upHost, upPort] = upstream.split(":");
  const server = createServer((req, res) => {
    const up = request(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const length = Number(answer.headers["content-length"] ?? 0);
        if (req.method !== "GET" || !req.url?.includes("/blobs/") || length <= STALL_AFTER) {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on("data", (chunk: Buffer) => {
          if (sent >= STALL_AFTER) return;
          const part = chunk.subarray(0, STALL_AFTER - sent);
          res.write(part);
          sent += part.length;
          if (sent >= STALL_AFTER) {
            answer.pause();
            onStall();
          }
        });
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stalled,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("ocicache pull", () => {
  it.skipIf(!tools)("prints a line per layer when not a terminal, then the reference", async () => {
    const root = await freshRoot();
    const ref = `${host}/api/app:1`;
    const r = cli(["--root", root, "pull", ref, "--insecure"]);
    expect(r.stderr).not.toContain("ocicache:");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${ref}\n`);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${ref.replaceAll(".", "\\.")}: sha256:[0-9a-f]{64} \\(linux/${HOST_ARCH}\\), 1 layers, `));
    expect(lines[1]).toMatch(/^layer 0 [0-9a-f]{12}: .+ downloaded, .+ EROFS$/);
    // Re-resolved with every layer cached: the layer's line says so.
    const again = cli(["--root", root, "pull", ref, "--insecure", "--policy", "always"]);
    expect(again.status).toBe(0);
    expect(again.stderr.trimEnd().split("\n")[1]).toMatch(/^layer 0 [0-9a-f]{12}: cached$/);
  });

  it.skipIf(!tools)("--json prints the handle, --quiet only the reference", async () => {
    const root = await freshRoot();
    const ref = `${host}/api/app:1`;
    const json = cli(["--root", root, "pull", "--json", "--insecure", ref]);
    expect(json.status).toBe(0);
    const handle = JSON.parse(json.stdout) as { reference: string; manifestDigest: string; layerCount: number; lastUsedAt: string };
    const [listed] = await ImageCache.open({ root }).list();
    expect(handle).toMatchObject({ reference: ref, layerCount: 1, manifestDigest: listed?.manifestDigest });
    expect(new Date(handle.lastUsedAt).getTime()).toBeGreaterThan(0);
    const quietRoot = await freshRoot();
    const quiet = cli(["--root", quietRoot, "pull", "-q", "--insecure", ref]);
    expect(quiet).toEqual({ status: 0, stdout: `${ref}\n`, stderr: "" });
  });

  it.skipIf(!tools)("fails with exit code 1 and the error's code, leaving the cache as it was", async () => {
    const root = await freshRoot();
    const r = cli(["--root", root, "pull", `${host}/api/app:nope`, "--insecure"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^ocicache: .+ \[IMAGE_NOT_FOUND\]$/m);
    expect(cli(["--root", root, "pull", `${host}/api/app:1`, "--policy", "sometimes"]).status).toBe(2);
    expect(await ImageCache.open({ root }).list()).toEqual([]);
    expect(await namesIn(root, "layers")).toEqual([]);
  });

  it.skipIf(!tools)("Ctrl-C during a stalled download aborts with exit code 130 and publishes nothing", async () => {
    const proxy = await stallingProxy(host);
    try {
      const root = await freshRoot();
      const child = spawn(process.execPath, [CLI, "--root", root, "pull", `${proxy.host}/api/big:1`, "--insecure"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      let stdout = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the download never stalled; stderr: ${stderr}`)), 30_000),
      );
      await Promise.race([proxy.stalled, timeout]);
      child.kill("SIGINT");
      const code = await Promise.race([exited, timeout]);
      expect(code).toBe(130);
      expect(stdout).toBe("");
      expect(stderr).toContain("ocicache: pull interrupted; nothing was changed\n");
      expect(await ImageCache.open({ root }).list()).toEqual([]);
      expect(await namesIn(root, "layers")).toEqual([]);
      // What an interrupted pull leaves is the stalled layer's partial download, which the next
      // pull resumes (docs/cache-layout.md, "Pulls"): nothing else.
      const left = await tmpFiles(root);
      expect(left.length).toBeLessThanOrEqual(1);
      for (const name of left) expect(name).toMatch(/^partial-sha256-[0-9a-f]{64}$/);
      // The next pull (straight from the registry) completes and takes the partial with it.
      const again = await ImageCache.open({ root }).pull(`${host}/api/big:1`, { insecure: true });
      expect(again.reference).toBe(`${host}/api/big:1`);
      expect(await tmpFiles(root)).toEqual([]);
    } finally {
      proxy.close();
    }
  });
});
