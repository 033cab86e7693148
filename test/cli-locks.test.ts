// Waiting for another process's lock: with `locks/gc.lock` held by another process (util-linux
// `flock`, the same `flock(2)` lock the core takes), `ocicache prune`, `rm` and `load` print one
// line to stderr, keep waiting, and complete once the lock is let go; `onLockWait` tells the API
// the same. (`pull` is covered in test/pull.test.ts, which has a registry.)

import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { ImageCache, InvalidArgumentError, type LockWaitEvent } from "../src/index";
import { corpus, ociLayoutTar, type Corpus } from "./fixtures";
import { freshRoot, haveTools, holdLock, startCli, tempFile, type Running } from "./helpers";

const WAIT_LINE = /^ocicache: waiting for another ocicache process \(lock: (.+)\)$/m;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const tools = haveTools(["flock"], "the lock-wait tests");

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

async function archive(reference: string): Promise<string> {
  return tempFile("i.tar", await ociLayoutTar([{ image: c.alpha, annotations: { "io.containerd.image.name": reference } }]));
}

/** A cache holding example.com/alpha:1. */
async function loaded(): Promise<string> {
  const root = await freshRoot();
  await ImageCache.open({ root }).load(await archive("example.com/alpha:1"));
  return root;
}

async function refs(root: string): Promise<string[]> {
  return (await ImageCache.open({ root }).list()).map((h) => h.reference);
}

/**
 * Runs `args` while another process holds the GC lock in `mode`: the command prints the wait
 * line naming the lock once, is still running a while later, and exits 0 after the release.
 */
async function waitsForLock(root: string, mode: "shared" | "exclusive", args: string[]): Promise<Running> {
  const lock = join(root, "locks", "gc.lock");
  const held = await holdLock(lock, mode);
  const run = startCli(["--root", root, ...args]);
  try {
    await run.stderrMatches(WAIT_LINE);
    expect(WAIT_LINE.exec(run.stderr())?.[1]).toBe(lock);
    await sleep(300);
    expect(run.exitedYet(), "the command must wait while the lock is held").toBe(false);
  } finally {
    await held.release();
  }
  expect(await run.exited, run.stderr()).toBe(0);
  expect(run.stderr().match(new RegExp(WAIT_LINE.source, "gm"))).toHaveLength(1);
  return run;
}

describe("waiting for another process's lock", () => {
  it.skipIf(!tools)("prune prints a line while a load holds the GC lock, then prunes", async () => {
    const root = await loaded();
    await waitsForLock(root, "shared", ["prune", "--yes"]);
    expect(await refs(root)).toEqual([]);
  });

  it.skipIf(!tools)("rm prints a line while a load holds the GC lock, then removes", async () => {
    const root = await loaded();
    const run = await waitsForLock(root, "shared", ["rm", "example.com/alpha:1"]);
    expect(run.stdout()).toContain("example.com/alpha:1");
    expect(await refs(root)).toEqual([]);
  });

  it.skipIf(!tools)("load prints a line while a prune holds the GC lock, then loads", async () => {
    const root = await loaded();
    await waitsForLock(root, "exclusive", ["load", "-i", await archive("example.com/again:2")]);
    expect((await refs(root)).sort()).toEqual(["example.com/again:2", "example.com/alpha:1"]);
  });

  it.skipIf(!tools)("a free lock prints nothing", async () => {
    const root = await loaded();
    const run = startCli(["--root", root, "prune", "--yes"]);
    expect(await run.exited).toBe(0);
    expect(run.stderr()).not.toMatch(WAIT_LINE);
  });

  it.skipIf(!tools)("onLockWait tells the API which lock an operation waits for", async () => {
    const root = await loaded();
    const events: LockWaitEvent[] = [];
    const cache = ImageCache.open({ root, onLockWait: (e) => events.push(e) });
    const held = await holdLock(join(root, "locks", "gc.lock"), "shared");
    const pruned = cache.prune();
    try {
      for (let i = 0; i < 200 && events.length === 0; i++) await sleep(25);
    } finally {
      await held.release();
    }
    expect((await pruned).imageRefsRemoved).toBe(1);
    expect(events).toEqual([{ lock: join(root, "locks", "gc.lock"), mode: "exclusive" }]);
    expect(Object.isFrozen(events[0])).toBe(true);
    // A listener that throws does not stop the operation.
    const throwing = ImageCache.open({
      root,
      onLockWait: () => {
        throw new Error("listener failure");
      },
    });
    const again = await holdLock(join(root, "locks", "gc.lock"), "shared");
    const second = throwing.prune();
    await sleep(300);
    await again.release();
    expect((await second).imageRefsRemoved).toBe(0);
  });

  it("onLockWait must be a function", () => {
    let caught: unknown;
    try {
      ImageCache.open({ onLockWait: "x" } as never);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).argument).toBe("onLockWait");
  });
});
