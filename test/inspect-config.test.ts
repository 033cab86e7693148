// What inspect reads from the config blob beside the index's fields: ExposedPorts, Volumes,
// the image's own `created` and `author`, and its history, through the API (Dates) and the CLI
// (text and --json). An image built by umoci (`umoci config --config.exposedports ...`), and a
// hostile config whose fields have the wrong types (left out, never an error; its text is
// printed with control characters escaped).

import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { ImageCache } from "../src/index";
import { MEDIA, makeImage, makeLayer, ociLayoutTar, sha256, type ImageFixture } from "./fixtures";
import { CLI, freshRoot, haveTools, tempDir, tempFile } from "./helpers";

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { input: "", encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function sh(program: string, args: string[]): void {
  const r = spawnSync(program, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${program} ${args.join(" ")}: ${r.stderr}`);
}

/** `image` with `extra` merged into its config JSON (digests recomputed). */
function withConfig(image: ImageFixture, extra: (config: Record<string, unknown>) => void): ImageFixture {
  const config = JSON.parse(image.configBytes.toString()) as Record<string, unknown>;
  extra(config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest = JSON.parse(image.manifestBytes.toString()) as { config: { mediaType: string; digest: string; size: number } };
  manifest.config = { mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    ...image,
    configBytes,
    configDigest: sha256(configBytes),
    manifestBytes,
    manifestDigest: sha256(manifestBytes),
    blobBytes: configBytes.length + manifestBytes.length,
  };
}

const umoci = haveTools(["umoci"], "the umoci inspect fixture");

describe("inspect shows what the config says", () => {
  it.skipIf(!umoci)("ports, volumes, the build's date and author, and history of an umoci image", async () => {
    const dir = await tempDir();
    const src = join(dir, "src");
    await mkdir(join(src, "etc"), { recursive: true });
    await writeFile(join(src, "etc", "app.conf"), "port=8080\n");
    const layout = join(dir, "layout");
    sh("umoci", ["init", "--layout", layout]);
    sh("umoci", ["new", "--image", `${layout}:1`]);
    sh("umoci", ["insert", "--image", `${layout}:1`, src, "/"]);
    sh("umoci", [
      "config",
      "--image",
      `${layout}:1`,
      "--config.exposedports=8080/tcp",
      "--config.exposedports=53/udp",
      "--config.volume=/data",
      "--config.volume=/cache",
      "--config.cmd=/bin/app",
      "--author=Ann <ann@example.com>",
      "--created=2024-05-01T12:00:00Z",
      "--history.created_by=/bin/sh -c make install",
      "--history.author=Bob",
      "--history.comment=build step",
      "--history.created=2024-05-01T14:30:00.250+02:00",
    ]);
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await cache.load(layout, { tag: "example.com/described:1" });
    const d = await cache.inspect("example.com/described:1");
    const c = d.config;
    expect(c).not.toBeNull();
    if (c === null) return;
    expect(c.cmd).toEqual(["/bin/app"]);
    expect(c.exposedPorts).toEqual(["53/udp", "8080/tcp"]);
    expect(c.volumes).toEqual(["/cache", "/data"]);
    expect(c.author).toBe("Ann <ann@example.com>");
    expect(c.created).toBeInstanceOf(Date);
    expect(c.created?.toISOString()).toBe("2024-05-01T12:00:00.000Z");
    // The image's own date is not the load's.
    expect(d.handle.createdAt?.getTime()).not.toBe(c.created?.getTime());
    const history = c.history ?? [];
    expect(history.filter((h) => !h.emptyLayer)).toHaveLength(d.layers.length);
    expect(history.at(-1)).toEqual({
      created: new Date("2024-05-01T12:30:00.250Z"),
      createdBy: "/bin/sh -c make install",
      author: "Bob",
      comment: "build step",
      emptyLayer: true,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.history)).toBe(true);
    expect(Object.isFrozen(history[0])).toBe(true);

    const text = run(["--root", root, "inspect", "example.com/described:1"]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^Built: +2024-05-01T12:00:00\.000Z$/m);
    expect(text.stdout).toMatch(/^Author: +Ann <ann@example\.com>$/m);
    expect(text.stdout).toMatch(/^ExposedPorts: 53\/udp, 8080\/tcp$/m);
    expect(text.stdout).toMatch(/^Volumes: +\/cache, \/data$/m);
    expect(text.stdout).toMatch(
      /^History:\n(?: {2}.+\n)* {2}2024-05-01T12:30:00\.250Z {2}\/bin\/sh -c make install {2}\(no layer; by Bob; build step\)$/m,
    );

    const json = run(["--root", root, "inspect", "example.com/described:1", "--json"]);
    expect(json.status, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as { createdAt: string; config: Record<string, unknown> & { history: Record<string, unknown>[] } };
    expect(parsed.config["created"]).toBe("2024-05-01T12:00:00.000Z");
    expect(parsed.config["exposedPorts"]).toEqual(["53/udp", "8080/tcp"]);
    expect(parsed.config["volumes"]).toEqual(["/cache", "/data"]);
    expect(parsed.config["author"]).toBe("Ann <ann@example.com>");
    expect(parsed.config.history.at(-1)).toEqual({
      created: "2024-05-01T12:30:00.250Z",
      createdBy: "/bin/sh -c make install",
      author: "Bob",
      comment: "build step",
      emptyLayer: true,
    });
  });

  it("a hostile config: fields of the wrong type are left out, its text is escaped on a terminal", async () => {
    const layer = await makeLayer({ "etc/x": "x\n" });
    const base = makeImage([layer], { env: ["A=1"], cmd: ["sh"], labels: {} });
    const image = withConfig(base, (config) => {
      config["created"] = 5;
      config["author"] = { name: "x" };
      const runtime = config["config"] as Record<string, unknown>;
      runtime["ExposedPorts"] = ["80/tcp"];
      runtime["Volumes"] = { "/v": {} };
      config["history"] = [
        { created: "not a date", created_by: "evil\u001b[2J\nnext", empty_layer: "yes", comment: 7 },
      ];
    });
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await cache.load(await tempFile("h.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "example.com/hostile:1" } }])));
    const c = (await cache.inspect("example.com/hostile:1")).config;
    expect(c).toMatchObject({
      env: ["A=1"],
      cmd: ["sh"],
      created: null,
      author: null,
      exposedPorts: null,
      volumes: ["/v"],
      history: [{ created: null, createdBy: "evil\u001b[2J\nnext", author: null, comment: null, emptyLayer: false }],
    });
    const text = run(["--root", root, "inspect", "example.com/hostile:1"]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).not.toContain("\u001b");
    expect(text.stdout).toMatch(/^ {2}- {2}evil\\u001b\[2J\\nnext$/m);
    expect(text.stdout).toMatch(/^Built: +-$/m);
    expect(text.stdout).toMatch(/^ExposedPorts: -$/m);

    // A history element that is not an object: no history at all (its entries line up with
    // the layers, so a partial one would mislead).
    const skewed = withConfig(base, (config) => {
      config["history"] = [{ created_by: "ok" }, "not an entry"];
    });
    await cache.load(await tempFile("s.tar", await ociLayoutTar([{ image: skewed, annotations: { "io.containerd.image.name": "example.com/skewed:1" } }])));
    expect((await cache.inspect("example.com/skewed:1")).config?.history).toBeNull();
  });
});
