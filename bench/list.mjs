// Image.list() on a cache of 10,000 references, against a bare SQLite query of the same rows
// (crates/core/examples/list_floor.rs) measured in the same run.
//
//   node bench/list.mjs [references]     (default 10000; run bench/run.sh to build first)
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { ImageCache } from "../dist/index.mjs";
import { fmt, medianMs } from "./common.mjs";

const total = Number(process.argv[2] ?? 10000);
const TAGS_PER_IMAGE = 100;
const images = Math.ceil(total / TAGS_PER_IMAGE);
const work = mkdtempSync(join(tmpdir(), "ocicache-bench-list-"));
const sha = (b) => createHash("sha256").update(b).digest("hex");

function tarBytes(entries) {
  return new Promise((resolve, reject) => {
    const pack = tar.pack();
    const chunks = [];
    pack.on("data", (c) => chunks.push(c)).on("end", () => resolve(Buffer.concat(chunks))).on("error", reject);
    for (const [name, body] of entries) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body);
    pack.finalize();
  });
}

try {
  const cache = ImageCache.open({ root: join(work, "cache") });
  const baseTar = await tarBytes([["etc/base", "shared base layer\n"]]);
  const base = gzipSync(baseTar);
  for (let i = 0; i < images; i++) {
    const topTar = await tarBytes([[`app/${i}`, `image ${i}\n`]]);
    const top = gzipSync(topTar);
    const config = JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Env: [`IMAGE=${i}`] },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha(baseTar)}`, `sha256:${sha(topTar)}`] },
    });
    const tags = Array.from({ length: Math.min(TAGS_PER_IMAGE, total - i * TAGS_PER_IMAGE) }, (_, t) =>
      `bench/app${i}:t${t}`);
    const manifest = [{ Config: `${sha(config)}.json`, RepoTags: tags, Layers: [`${sha(base)}/layer.tar`, `${sha(top)}/layer.tar`] }];
    const archive = await tarBytes([
      [`${sha(config)}.json`, config],
      [`${sha(base)}/layer.tar`, base],
      [`${sha(top)}/layer.tar`, top],
      ["manifest.json", JSON.stringify(manifest)],
    ]);
    const path = join(work, "a.tar");
    writeFileSync(path, archive);
    await cache.load(path);
  }
  const rows = (await cache.list()).length;
  const listMs = await medianMs(() => cache.list(), 21);
  const floor = execFileSync("cargo", ["run", "-q", "--release", "-p", "ocicache-core", "--example", "list_floor", "--",
    join(work, "cache", "index.db"), "21"], { encoding: "utf8" });
  const floorMs = Number(/floor_ms=([\d.]+)/.exec(floor)[1]);
  console.log(`list: references=${rows} Image.list() median=${fmt(listMs)} ms, bare SQLite query median=${fmt(floorMs)} ms, ratio=${fmt(listMs / floorMs)}x (aim <= 3x)`);
} finally {
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true }); else console.log(work);
}
