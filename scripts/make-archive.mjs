#!/usr/bin/env node
// Builds a small but real `docker save` style image archive from host folders, one gzip layer
// per folder, with a proper config (diff_ids, Env, Cmd) and RepoTags. Used by the demo and the
// benchmarks; no container engine needed. With `--oci` it writes an OCI image layout archive
// instead (blobs first, then `index.json` naming the reference and `oci-layout`, the order
// Docker 25's `docker save` uses), whose manifest names every layer blob by digest.
//
//   node scripts/make-archive.mjs [--oci] [--cmd WORD] OUT.tar REFERENCE DIR [DIR...]
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, lstatSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import tar from "tar-stream";

const args = process.argv.slice(2);
let oci = false;
let cmd = "/bin/sh";
while (args[0]?.startsWith("--")) {
  const flag = args.shift();
  if (flag === "--oci") oci = true;
  else if (flag === "--cmd") cmd = args.shift();
  else {
    console.error(`make-archive.mjs: unknown option ${flag}`);
    process.exit(2);
  }
}
const [out, reference, ...dirs] = args;
if (!out || !reference || dirs.length === 0) {
  console.error("usage: make-archive.mjs [--oci] [--cmd WORD] OUT.tar REFERENCE DIR [DIR...]");
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
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: [cmd] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  });
  const configHex = createHash("sha256").update(config).digest("hex");
  const archive = tar.pack();
  const written = pipeline(archive, createWriteStream(out));
  const addFile = (name, path, size) =>
    new Promise((resolve, reject) => {
      const entry = archive.entry({ name, size }, (e) => (e ? reject(e) : resolve()));
      createReadStream(path).pipe(entry);
    });
  if (oci) {
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${configHex}`, size: Buffer.byteLength(config) },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${l.blob}`, size: l.size })),
    });
    const manifestHex = createHash("sha256").update(manifest).digest("hex");
    archive.entry({ name: "blobs/sha256/", type: "directory" });
    for (const l of layers) await addFile(`blobs/sha256/${l.blob}`, l.gz, l.size);
    archive.entry({ name: `blobs/sha256/${configHex}` }, config);
    archive.entry({ name: `blobs/sha256/${manifestHex}` }, manifest);
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: `sha256:${manifestHex}`,
          size: Buffer.byteLength(manifest),
          annotations: { "io.containerd.image.name": reference, "org.opencontainers.image.ref.name": reference },
        },
      ],
    };
    archive.entry({ name: "index.json" }, JSON.stringify(index));
    archive.entry({ name: "oci-layout" }, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  } else {
    archive.entry({ name: `${configHex}.json` }, config);
    for (const l of layers) await addFile(`${l.blob}/layer.tar`, l.gz, l.size);
    const manifest = [{ Config: `${configHex}.json`, RepoTags: [reference], Layers: layers.map((l) => `${l.blob}/layer.tar`) }];
    archive.entry({ name: "manifest.json" }, JSON.stringify(manifest));
  }
  archive.finalize();
  await written;
  writeFileSync(1, `${out}: ${reference}, ${layers.length} layer(s)\n`);
} finally {
  await rm(work, { recursive: true, force: true });
}
