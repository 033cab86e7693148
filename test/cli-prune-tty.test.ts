// The interactive `ocicache prune` on a pseudo-terminal: util-linux `script` runs the command
// with a pty as its terminal, and the test types the answer once the prompt is shown. The plan
// (what a dry run of the same prune removes) is printed before the question; `n` leaves the
// cache exactly as it was, `y` removes exactly the plan.

import { spawn } from "node:child_process";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { ImageCache } from "../src/index";
import { corpus, ociLayoutTar, type Corpus } from "./fixtures";
import { CLI, filesUnder, freshRoot, haveTools, tempFile } from "./helpers";

const tools = haveTools(["script"], "the pseudo-terminal prune tests");

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

/** A cache holding alpha, beta and legacy; alpha is in use by a sandbox. */
async function loaded(): Promise<string> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  for (const [image, reference] of [
    [c.alpha, "example.com/alpha:1"],
    [c.beta, "docker.io/library/beta:2"],
    [c.legacy, "example.com/legacy:3"],
  ] as const) {
    await cache.load(
      await tempFile("i.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": reference } }])),
    );
  }
  await cache.acquire("example.com/alpha:1", { sandbox: "sb-1" });
  return root;
}

/** The artifact files and their sizes (the index files are compared through the API). */
async function artifacts(root: string): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const dir of ["blobs", "layers", "fsmeta", "vmdk", "tmp"]) {
    for (const [path, size] of await filesUnder(join(root, dir))) out.push([join(dir, path), size]);
  }
  return out.sort(([a], [b]) => a.localeCompare(b));
}

/** What the index says: every reference with its manifest and times, and the uses. */
async function indexState(root: string): Promise<unknown> {
  const cache = ImageCache.open({ root });
  const refs = (await cache.list({ all: true })).map((h) => [h.reference, h.manifestDigest, h.createdAt, h.lastUsedAt]);
  const uses = (await cache.uses()).map((u) => [u.id, u.reference, u.holder]);
  return { refs, uses };
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * Runs `ocicache --root ROOT prune` on a pseudo-terminal (`script -q -e -c ... /dev/null`),
 * types `answer` and Enter once the prompt is shown, and returns the terminal's output (line
 * ends normalised, terminal control sequences taken out) and the command's exit status.
 */
async function prunePty(root: string, answer: string): Promise<{ status: number | null; output: string }> {
  const command = [process.execPath, CLI, "--root", root, "prune"].map(quote).join(" ");
  const child = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  let typed = false;
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (!typed && output.includes("[y/N] ")) {
      typed = true;
      child.stdin.write(`${answer}\r`);
    }
  });
  // A command that never asks (or never ends) fails the test rather than hanging it.
  const stuck = setTimeout(() => child.kill(), 30_000);
  const status = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(stuck);
  child.stdin.destroy();
  expect(typed, `no prompt in ${JSON.stringify(output)}`).toBe(true);
  // readline redraws its line with CSI sequences (cursor moves, erase); the text is what counts.
  return { status, output: output.replace(/\r+\n/g, "\n").replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "") };
}

/** The references the printed plan lists (`  REFERENCE   DIGEST   SIZE` lines after its header). */
function planned(output: string): string[] {
  const lines = output.split("\n");
  const start = lines.findIndex((l) => /^prune would remove \d+ references?:$/.test(l));
  expect(start, output).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^ {2}(\S+) {3}\S+ {3}.+$/.exec(line);
    if (!m) break;
    out.push(m[1] as string);
  }
  return out;
}

describe("ocicache prune on a terminal", () => {
  it.skipIf(!tools)("shows the plan, and n leaves the files and the index as they were", async () => {
    const root = await loaded();
    const files = await artifacts(root);
    const index = await indexState(root);
    const { status, output } = await prunePty(root, "n");
    expect(planned(output).sort()).toEqual(["beta:2", "example.com/legacy:3"]);
    expect(output).toMatch(/^and reclaim .+ \(cache .+ -> .+\)$/m);
    expect(output).toMatch(/Remove every image no sandbox or snapshot uses\? \[y\/N\] n\n/);
    expect(output).toContain("ocicache: prune cancelled");
    expect(status).toBe(1);
    expect(await artifacts(root)).toEqual(files);
    expect(await indexState(root)).toEqual(index);
  });

  it.skipIf(!tools)("y removes exactly the plan", async () => {
    const root = await loaded();
    const before = (await ImageCache.open({ root }).list()).map((h) => h.reference);
    const dry = await ImageCache.open({ root }).prune({ dryRun: true });
    const files = await artifacts(root);
    const { status, output } = await prunePty(root, "y");
    expect(status, output).toBe(0);
    const plan = planned(output);
    expect(plan.sort()).toEqual(dry.removed.map((r) => r.reference).sort());
    const after = (await ImageCache.open({ root }).list()).map((h) => h.reference);
    expect(before.filter((r) => !after.includes(r)).sort()).toEqual(plan);
    expect(after).toEqual(["example.com/alpha:1"]);
    expect(output).toMatch(/^removed 2 references, /m);
    // The bytes the plan said it would reclaim are the bytes that went.
    const left = await artifacts(root);
    const gone = files.filter(([f]) => !left.some(([g]) => g === f));
    expect(gone.reduce((sum, [, size]) => sum + size, 0)).toBe(dry.bytesReclaimed);
    expect(left.every(([f]) => files.some(([g]) => g === f))).toBe(true);
  });
});
