// The `ocicache` bin, run as a child process from dist/cli.cjs (test/global-setup.ts builds it).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { corpus, dockerSaveTar, ociLayoutTar, type Corpus } from "./fixtures";
import { CLI, PACKAGE_ROOT, bytesOf, freshRoot, imageFiles, storedBytes, tempFile } from "./helpers";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { input?: Buffer | string; env?: Record<string, string> } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    input: opts.input ?? "",
    env: { ...process.env, ...opts.env },
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

describe("ocicache CLI without images", () => {
  it("prints --version from package.json and --help", () => {
    const pkg = JSON.parse(readFileSync(`${PACKAGE_ROOT}/package.json`, "utf8")) as { version: string };
    expect(run(["--version"])).toMatchObject({ status: 0, stdout: `${pkg.version}\n` });
    const help = run(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("Usage: ocicache");
  });

  it("exits 2 on usage errors", async () => {
    const root = await freshRoot();
    expect(run([]).status).toBe(2);
    expect(run(["frobnicate"]).status).toBe(2);
    expect(run(["--root", root, "ls", "--bogus"]).status).toBe(2);
    expect(run(["--root", root, "inspect"]).status).toBe(2);
    expect(run(["--root", root, "rm"]).status).toBe(2);
  });

  it("lists an empty cache", async () => {
    const root = await freshRoot();
    const json = run(["--root", root, "ls", "--json"]);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([]);
    expect(run(["ls", "-q", "--root", root])).toMatchObject({ status: 0, stdout: "" });
    const table = run(["--root", root, "ls"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^REFERENCE\s+DIGEST\s+ARCH\s+LAYERS\s+SIZE\s+CREATED$/);
  });

  it("uses $OCICACHE_HOME without --root", async () => {
    const home = await freshRoot();
    expect(run(["ls", "--json"], { env: { OCICACHE_HOME: home } })).toMatchObject({ status: 0 });
  });

  it("reports failures as 'ocicache: <message> [<CODE>]' with exit 1", async () => {
    const root = await freshRoot();
    const r = run(["--root", root, "inspect", "busybox"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ocicache: .* \[IMAGE_NOT_FOUND\]\n$/);
    expect(run(["--root", root, "inspect", "Bad Ref"]).stderr).toMatch(/\[INVALID_REFERENCE\]\n$/);
  });

  it("refuses prune without --yes when stdin is not a terminal", async () => {
    const root = await freshRoot();
    const r = run(["--root", root, "prune"]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
  });

  it("prunes an empty cache with --yes --json", async () => {
    const root = await freshRoot();
    const r = run(["--root", root, "prune", "--yes", "--json"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      imageRefsRemoved: 0,
      manifestsRemoved: 0,
      layersRemoved: 0,
      fsmetaRemoved: 0,
      vmdkRemoved: 0,
      bytesReclaimed: 0,
    });
    const human = run(["--root", root, "prune", "-y"]);
    expect(human.status).toBe(0);
    expect(human.stdout).toContain("0 B");
  });
});

describe("ocicache CLI with images", () => {
  async function loaded(): Promise<string> {
    const root = await freshRoot();
    const archive = await tempFile(
      "l.tar",
      await ociLayoutTar([
        { image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/alpha:1" } },
        { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:2" } },
      ]),
    );
    const r = run(["--root", root, "load", "-i", archive]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual(["beta:2", "example.com/alpha:1"]);
    return root;
  }

  it("ls --json, -q and the table", async () => {
    const root = await loaded();
    const json = JSON.parse(run(["--root", root, "ls", "--json"]).stdout) as Record<string, unknown>[];
    expect(json.map((h) => h["reference"]).sort()).toEqual(["beta:2", "example.com/alpha:1"]);
    const alpha = json.find((h) => h["reference"] === "example.com/alpha:1");
    expect(alpha).toEqual({
      reference: "example.com/alpha:1",
      manifestDigest: c.alpha.manifestDigest,
      architecture: c.alpha.architecture,
      os: "linux",
      variant: null,
      layerCount: 2,
      sizeBytes: await bytesOf(imageFiles(root, c.alpha)),
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      // A fresh load is a use (issue 12): lastUsedAt is the load time.
      lastUsedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      tagged: true,
    });
    expect(run(["--root", root, "ls", "-q"]).stdout.trim().split("\n").sort()).toEqual(["beta:2", "example.com/alpha:1"]);
    const table = run(["--root", root, "ls"]).stdout.trim().split("\n");
    expect(table).toHaveLength(3);
    const row = table.find((l) => l.startsWith("example.com/alpha:1"));
    expect(row).toContain(c.alpha.manifestDigest.slice(7, 19));
    expect(row).toMatch(/ (B|KiB|MiB) /);
  });

  it("inspect --json", async () => {
    const root = await loaded();
    const r = run(["--root", root, "inspect", "beta:2", "--json"]);
    expect(r.status).toBe(0);
    const d = JSON.parse(r.stdout) as { reference: string; config: { digest: string; env: string[] }; layers: { diffId: string; position: number }[] };
    expect(d.reference).toBe("beta:2");
    expect((d as { origin?: unknown }).origin, "a loaded image has no origin").toBeNull();
    expect(d.config.digest).toBe(c.beta.configDigest);
    expect(d.config.env).toEqual(c.beta.fields.env);
    expect(d.layers.map((l) => [l.position, l.diffId])).toEqual(c.beta.layers.map((l, i) => [i, l.diffId]));
    expect(run(["--root", root, "inspect", "beta:2"]).stdout).toContain(c.beta.configDigest);
  });

  it("rm continues past failures and exits 1 if any failed", async () => {
    const root = await loaded();
    const r = run(["--root", root, "rm", "missing:1", "beta:2", "Bad Ref"]);
    expect(r.status).toBe(1);
    expect(r.stdout.trim()).toBe("beta:2");
    expect(r.stderr).toMatch(/\[IMAGE_NOT_FOUND\]/);
    expect(r.stderr).toMatch(/\[INVALID_REFERENCE\]/);
    expect(JSON.parse(run(["--root", root, "ls", "--json"]).stdout)).toHaveLength(1);
    expect(run(["--root", root, "rm", "example.com/alpha:1", "--force"]).status).toBe(0);
    expect(run(["--root", root, "ls", "-q"]).stdout).toBe("");
  });

  it("prune --yes --json reports what it removed", async () => {
    const root = await loaded();
    // Both images' files: manifests, configs, fsmeta and VMDK files, and three distinct layer
    // images (base is shared).
    const files = [...new Set([...imageFiles(root, c.alpha), ...imageFiles(root, c.beta)])];
    expect(files).toHaveLength(11);
    const expected = await bytesOf(files);
    expect(await storedBytes(root)).toBe(expected);
    const r = run(["--root", root, "prune", "--yes", "--json"]);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, number>;
    expect(report).toMatchObject({
      imageRefsRemoved: 2,
      manifestsRemoved: 2,
      layersRemoved: 3,
      fsmetaRemoved: 2,
      vmdkRemoved: 2,
      bytesReclaimed: expected,
    });
    for (const p of files) expect(existsSync(p), p).toBe(false);
    expect(await storedBytes(root)).toBe(0);
  });

  it("load reads an archive from stdin and deletes its temp file", async () => {
    const root = await freshRoot();
    const tmp = await freshRoot();
    const { mkdirSync, readdirSync } = await import("node:fs");
    mkdirSync(tmp, { recursive: true });
    const archive = await dockerSaveTar([{ image: c.legacy, repoTags: ["fromstdin:1"] }]);
    const r = run(["--root", root, "load", "--tag", "example.com/stdin:tagged"], {
      input: archive,
      env: { TMPDIR: tmp },
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual(["example.com/stdin:tagged", "fromstdin:1"]);
    expect(readdirSync(tmp)).toEqual([]);
    const bad = run(["--root", root, "load"], { input: "not an archive", env: { TMPDIR: tmp } });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/\[INVALID_ARCHIVE\]\n$/);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe("ocicache load --max-uncompressed", () => {
  it("fails with LIMIT_EXCEEDED over SIZE, loads under it, and refuses a bad SIZE", async () => {
    const root = await freshRoot();
    const archive = await tempFile(
      "a.tar",
      await ociLayoutTar([{ image: c.alpha, annotations: { "io.containerd.image.name": "example.com/alpha:1" } }]),
    );
    const over = run(["--root", root, "load", "-i", archive, "--max-uncompressed", "1K"]);
    expect(over.status).toBe(1);
    expect(over.stderr).toMatch(/\[LIMIT_EXCEEDED\]\n$/);
    expect(run(["--root", root, "ls", "-q"]).stdout).toBe("");
    const under = run(["--root", root, "load", "-i", archive, "--max-uncompressed", "64MiB"]);
    expect(under.stderr).toBe("");
    expect(under.status).toBe(0);
    expect(under.stdout.trim()).toBe("example.com/alpha:1");
    for (const bad of ["", "lots", "-1", "1X"]) {
      expect(run(["--root", root, "load", "-i", archive, "--max-uncompressed", bad]).status, bad).toBe(2);
    }
  });
});

describe("ocicache load interrupted", () => {
  /**
   * What broke: `ocicache load` copied standard input to a file under `$TMPDIR` first, and
   * Ctrl-C left that copy behind (and a load's folder under the cache's tmp/). The addon now
   * reads standard input itself, and SIGINT aborts the load, which deletes its folder before
   * the command exits with 130.
   */
  it("SIGINT while the load waits for input exits 130 and leaves nothing", async () => {
    const root = await freshRoot();
    const archive = await dockerSaveTar([{ image: c.legacy, repoTags: ["interrupted:1"] }]);
    const child = spawn(process.execPath, [CLI, "--root", root, "load"], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // Half the archive, and the pipe left open: the load waits for the rest.
    child.stdin.write(archive.subarray(0, Math.floor(archive.length / 2)));
    const tmp = join(root, "tmp");
    const deadline = Date.now() + 30_000;
    while (!(existsSync(tmp) && readdirSync(tmp).some((n) => n.startsWith("load-")))) {
      if (Date.now() > deadline) throw new Error(`the load never started: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toContain("interrupted");
    expect(readdirSync(tmp)).toEqual([]);
    child.stdin.destroy();
    expect(JSON.parse(run(["--root", root, "ls", "--json"]).stdout)).toEqual([]);
  });
});
