#!/usr/bin/env node
// Builds a small but real `docker save` style image archive from host folders, one gzip layer
// per folder, with a proper config (diff_ids, Env, Cmd) and RepoTags. Used by the demo and the
// benchmarks; no container engine needed.
//
//   node scripts/make-archive.mjs OUT.tar REFERENCE DIR [DIR...]
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, lstatSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import tar from "tar-stream";

const [out, reference, ...dirs] = process.argv.slice(2);
if (!out || !reference || dirs.length === 0) {
  console.error("usage: make-archive.mjs OUT.tar REFERENCE DIR [DIR...]");
  process.exit(2);
}

function walk(root, dir, acc) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    acc.push({ path, name: relative(root, path), st });
    if (st.isDirectory()) walk(root, path, acc);
  }
  return acc;
}

async function packLayer(dir, work, index) {
  const pack = tar.pack();
  const raw = join(work, `layer${index}.tar`);
  const gz = join(work, `layer${index}.tar.gz`);
  const diff = createHash("sha256");
  const done = pipeline(pack, async function* (source) {
    for await (const chunk of source) {
      diff.update(chunk);
      yield chunk;
    }
  }, createWriteStream(raw));
  for (const { path, name, st } of walk(dir, dir, [])) {
    const header = { name, mode: st.mode & 0o7777, uid: 0, gid: 0, mtime: st.mtime };
    if (st.isDirectory()) pack.entry({ ...header, type: "directory" });
    else if (st.isSymbolicLink()) pack.entry({ ...header, type: "symlink", linkname: readlinkSync(path) });
    else if (st.isFile()) {
      await new Promise((resolve, reject) => {
        const entry = pack.entry({ ...header, size: st.size }, (err) => (err ? reject(err) : resolve()));
        createReadStream(path).pipe(entry);
      });
    }
  }
  pack.finalize();
  await done;
  await pipeline(createReadStream(raw), createGzip(), createWriteStream(gz));
  const blob = createHash("sha256").update(await readFile(gz)).digest("hex");
  return { gz, diffId: `sha256:${diff.digest("hex")}`, blob, size: (await stat(gz)).size };
}

const work = await mkdtemp(join(tmpdir(), "make-archive-"));
try {
  const layers = [];
  for (const [i, dir] of dirs.entries()) layers.push(await packLayer(dir, work, i));
  const config = JSON.stringify({
    architecture: process.arch === "arm64" ? "arm64" : "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  });
  const configHex = createHash("sha256").update(config).digest("hex");
  const archive = tar.pack();
  const written = pipeline(archive, createWriteStream(out));
  archive.entry({ name: `${configHex}.json` }, config);
  for (const l of layers) {
    await new Promise((resolve, reject) => {
      const entry = archive.entry({ name: `${l.blob}/layer.tar`, size: l.size }, (e) => (e ? reject(e) : resolve()));
      createReadStream(l.gz).pipe(entry);
    });
  }
  const manifest = [{ Config: `${configHex}.json`, RepoTags: [reference], Layers: layers.map((l) => `${l.blob}/layer.tar`) }];
  archive.entry({ name: "manifest.json" }, JSON.stringify(manifest));
  archive.finalize();
  await written;
  writeFileSync(1, `${out}: ${reference}, ${layers.length} layer(s)\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}
