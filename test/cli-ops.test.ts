// The operator commands of the `ocicache` bin: check (verify and repair), per-command help,
// usage errors, pipes, read-only commands on a missing root, digest prefixes, tag, uses and
// release, ls -a / --filter / --format, and the API they call.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { CorruptCacheError, ImageCache, InvalidArgumentError } from "../src/index";
import { corpus, ociLayoutTar, type Corpus } from "./fixtures";
import { CLI, freshRoot, fsmetaPath, rejectsWith, tempDir, tempFile } from "./helpers";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { input: "", encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

async function loaded(): Promise<string> {
  const root = await freshRoot();
  const archive = await tempFile(
    "ops.tar",
    await ociLayoutTar([
      { image: c.alpha, annotations: { "io.containerd.image.name": "example.com/alpha:1" } },
      { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:2" } },
    ]),
  );
  const r = run(["--root", root, "load", "-i", archive]);
  expect(r.status, r.stderr).toBe(0);
  return root;
}

describe("ocicache check", () => {
  it("finds a corrupt fsmeta, boot-disk refuses it, and --repair restores it byte for byte", async () => {
    const root = await loaded();
    expect(run(["--root", root, "check"])).toMatchObject({ status: 0 });
    const fsmeta = fsmetaPath(root, c.alpha.manifestDigest);
    const before = readFileSync(fsmeta);
    // The case: fsmeta overwritten with 8 bytes.
    writeFileSync(fsmeta, "garbage!");
    const quick = run(["--root", root, "check", "--json"]);
    expect(quick.status).toBe(1);
    const report = JSON.parse(quick.stdout) as { problems: number; images: { problems: { kind: string; artifact: string; path: string }[] }[] };
    expect(report.problems).toBe(1);
    const problem = report.images.flatMap((i) => i.problems)[0];
    expect(problem).toMatchObject({ kind: "size", artifact: "fsmeta", path: fsmeta });
    const boot = run(["--root", root, "boot-disk", "example.com/alpha:1"]);
    expect(boot.status).toBe(1);
    expect(boot.stderr).toMatch(/^ocicache: .* \[CORRUPT_CACHE\]\n$/);
    const cache = ImageCache.open({ root });
    await rejectsWith(cache.bootDisk("example.com/alpha:1"), CorruptCacheError, "CORRUPT_CACHE");
    const repaired = run(["--root", root, "check", "--repair"]);
    expect(repaired.status, repaired.stdout).toBe(0);
    expect(repaired.stdout).toContain("repaired fsmeta size");
    expect(readFileSync(fsmeta).equals(before)).toBe(true);
    expect(run(["--root", root, "check", "--full"]).status).toBe(0);
    const disk = await cache.bootDisk("example.com/alpha:1");
    expect(disk.fsmeta).toBe(fsmeta);
  });

  it("verify and repair through the API, with strict options", async () => {
    const root = await loaded();
    const cache = ImageCache.open({ root });
    const all = await cache.verify(undefined, { full: true });
    expect(all.images).toHaveLength(2);
    expect(all.problems).toBe(0);
    expect(all.full).toBe(true);
    expect(Object.isFrozen(all.images[0])).toBe(true);
    await rejectsWith(cache.verify("beta:2", { fast: true } as never), InvalidArgumentError, "INVALID_ARGUMENT");
    const dry = await cache.repair("beta:2", { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, problems: 0 });
  });
});

describe("ocicache as a new user tries it", () => {
  it("prints per-command help for 'help CMD' and 'CMD --help'", () => {
    for (const args of [["help", "prune"], ["prune", "--help"], ["prune", "-h"]]) {
      const r = run(args);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^Usage: ocicache prune/);
      expect(r.stdout).toContain("Examples:");
    }
    expect(run(["help", "check"]).stdout).toMatch(/^Usage: ocicache check/);
    expect(run(["help", "nope"]).status).toBe(2);
  });

  it("words unknown options itself and points at the command's help", () => {
    const r = run(["ls", "--bogus"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("ocicache: unknown option '--bogus' for ls\nRun 'ocicache help ls' for its usage.\n");
  });

  it("ends quietly with status 0 when the reader of its output goes away", async () => {
    const root = await loaded();
    // Enough references that the output outlives `head -1`.
    const cache = ImageCache.open({ root });
    for (let i = 0; i < 200; i++) await cache.tag("beta:2", `example.com/many:${i}`);
    for (const command of ["ls", "df -v", "inspect beta:2"]) {
      const r = spawnSync("bash", ["-c", `set -o pipefail; "${process.execPath}" "${CLI}" --root "${root}" ${command} | head -1`], {
        encoding: "utf8",
      });
      expect(r.stderr, command).toBe("");
      expect(r.status, command).toBe(0);
      expect(r.stdout.split("\n")).toHaveLength(2);
    }
  });

  it("ls, df, inspect, uses and check on a root that does not exist create nothing", async () => {
    const root = join(await tempDir(), "never-created");
    expect(JSON.parse(run(["--root", root, "ls", "--json"]).stdout)).toEqual([]);
    expect(run(["--root", root, "df"]).status).toBe(0);
    expect(run(["--root", root, "uses"]).status).toBe(0);
    expect(run(["--root", root, "check"]).status).toBe(0);
    expect(run(["--root", root, "inspect", "busybox"]).stderr).toMatch(/\[IMAGE_NOT_FOUND\]\n$/);
    expect(existsSync(root)).toBe(false);
  });

  it("resolves the 12-digit DIGEST ls prints and bare digests for inspect and rm", async () => {
    const root = await loaded();
    const short = c.alpha.manifestDigest.slice(7, 19);
    const inspect = run(["--root", root, "inspect", short, "--json"]);
    expect(inspect.status, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ manifestDigest: c.alpha.manifestDigest });
    expect(run(["--root", root, "inspect", c.beta.manifestDigest]).status).toBe(0);
    const rm = run(["--root", root, "rm", short, "nope:1"]);
    expect(rm.status).toBe(1);
    expect(rm.stdout).toBe(`${short}\n`);
    expect(rm.stderr).toContain("removed 1 of 2 references, 1 failed");
    expect(run(["--root", root, "ls", "-q"]).stdout).toBe("beta:2\n");
  });

  it("tag, uses and release; a pinned manifest whose tag moved is listed by ls -a and boots", async () => {
    const root = await loaded();
    const cache = ImageCache.open({ root });
    expect(run(["--root", root, "tag", "beta:2", "app:latest"])).toMatchObject({ status: 0, stdout: "app:latest\n" });
    const use = await cache.acquire("app:latest", { sandbox: "sb-42" });
    const pinned = await use.bootDisk();
    // The tag moves on; the sandbox keeps what it pinned.
    expect(run(["--root", root, "tag", "example.com/alpha:1", "app:latest"]).status).toBe(0);
    expect((await use.bootDisk()).fsmeta).toBe(pinned.fsmeta);
    await cache.remove("beta:2", { force: true });
    const plain = (await cache.list()).map((h) => h.reference);
    expect(plain).not.toContain(`app@${c.beta.manifestDigest}`);
    const all = await cache.list({ all: true });
    const untagged = all.find((h) => !h.tagged);
    expect(untagged?.reference).toBe(`app@${c.beta.manifestDigest}`);
    expect((await cache.bootDisk(`app@${c.beta.manifestDigest}`)).fsmeta).toBe(pinned.fsmeta);
    const table = run(["--root", root, "ls", "-a"]).stdout;
    expect(table).toContain("app:<none>");
    const dangling = run(["--root", root, "ls", "--filter", "dangling=true", "--format", "{{.Reference}} {{.Digest}}"]);
    expect(dangling.stdout).toBe(`app:<none> ${c.beta.manifestDigest}\n`);
    // df -v has its row too: its bytes, nothing reclaimable while sb-42 holds it.
    const usage = await cache.diskUsage();
    const held = usage.images.find((i) => !i.tagged);
    expect(held).toMatchObject({ reference: `app@${c.beta.manifestDigest}`, reclaimableBytes: 0 });
    expect(held?.exclusiveBytes).toBeGreaterThan(0);
    const df = run(["--root", root, "df", "-v"]).stdout.split("\n");
    const row = df.find((l) => l.startsWith("app:<none> "));
    expect(row?.split(/\s{2,}/)).toEqual(["app:<none>", c.beta.manifestDigest.slice(7, 19), expect.any(String), expect.any(String), "0 B"]);
    const uses = run(["--root", root, "uses"]);
    expect(uses.stdout).toContain("sandbox:sb-42");
    expect(uses.stdout).toContain(use.id);
    expect(run(["--root", root, "release", "sandbox:sb-42"]).stdout).toBe("sandbox:sb-42: released 1 use\n");
    expect(await cache.uses()).toEqual([]);
  });

  it("ls --filter reference= and --no-trunc", async () => {
    const root = await loaded();
    const r = run(["--root", root, "ls", "--filter", "reference=example.com/*", "--no-trunc"]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(c.alpha.manifestDigest);
    expect(run(["--root", root, "ls", "--filter", "colour=red"]).status).toBe(2);
  });

  it("prune warns about --keep entries that name nothing cached", async () => {
    const root = await loaded();
    const r = run(["--root", root, "prune", "--dry-run", "--keep", "debian"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("ocicache: warning: --keep debian: no cached image is named debian:latest");
  });
});
