// Builds image archives from scratch (tar-stream, node:zlib, node:crypto) and returns what the
// cache must report for them: digests, diff_ids, sizes, config fields. Nothing here depends on
// the library under test.
//
// Kinds built:
// - docker-save legacy tar: manifest.json (Config, RepoTags, Layers), <hex>.json, <id>/layer.tar
// - OCI image layout, as a tar or a folder: oci-layout, index.json (ref.name / containerd name
//   annotations), blobs/sha256/<hex>

import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";

import * as tar from "tar-stream";

export const MEDIA = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

/** Fixed member mtime so archives are byte-for-byte reproducible. */
const MTIME = new Date("2024-01-02T03:04:05Z");

/** The architecture the host's platform selection picks. */
export const HOST_ARCH = process.arch === "arm64" ? "arm64" : "amd64";

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export function hexOf(digest: string): string {
  return digest.slice("sha256:".length);
}

/** One member of a tar archive. */
export interface TarMember {
  name: string;
  data?: Buffer | string;
  type?: "file" | "directory" | "symlink";
  linkname?: string;
}

/** A tar archive of `members`, in order. */
export async function tarOf(members: readonly TarMember[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", () => resolve(Buffer.concat(chunks)));
    pack.on("error", reject);
  });
  for (const m of members) {
    const type = m.type ?? "file";
    if (type === "file") {
      const data = Buffer.from(m.data ?? "");
      await new Promise<void>((resolve, reject) =>
        pack.entry({ name: m.name, size: data.length, mtime: MTIME, mode: 0o644, uid: 0, gid: 0 }, data, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } else if (type === "directory") {
      pack.entry({ name: m.name, type: "directory", mtime: MTIME, mode: 0o755, uid: 0, gid: 0 });
    } else {
      pack.entry({ name: m.name, type: "symlink", linkname: m.linkname ?? "", mtime: MTIME, mode: 0o777 });
    }
  }
  pack.finalize();
  return done;
}

/** A layer: its uncompressed tar, its blob as distributed and their digests. */
export interface LayerFixture {
  /** Files in the layer (path to content). */
  files: Record<string, string>;
  /** Uncompressed tar. */
  tar: Buffer;
  /** sha256 of `tar`: the config's rootfs.diff_ids entry. */
  diffId: string;
  /** The blob as stored in the archive (gzip or the plain tar). */
  blob: Buffer;
  blobDigest: string;
  mediaType: string;
  size: number;
}

export async function makeLayer(
  files: Record<string, string>,
  opts: { gzip?: boolean; mediaType?: string } = {},
): Promise<LayerFixture> {
  const members: TarMember[] = [];
  const dirs = new Set<string>();
  for (const path of Object.keys(files).sort()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = `${parts.slice(0, i).join("/")}/`;
      if (!dirs.has(dir)) {
        dirs.add(dir);
        members.push({ name: dir, type: "directory" });
      }
    }
    members.push({ name: path, data: files[path] ?? "" });
  }
  const layerTar = await tarOf(members);
  const gzip = opts.gzip ?? false;
  const blob = gzip ? gzipSync(layerTar, { level: 6 }) : layerTar;
  return {
    files,
    tar: layerTar,
    diffId: sha256(layerTar),
    blob,
    blobDigest: sha256(blob),
    mediaType: opts.mediaType ?? (gzip ? MEDIA.ociLayerGzip : MEDIA.ociLayer),
    size: blob.length,
  };
}

/** Config fields an image fixture sets (and inspect must report). */
export interface ConfigFields {
  env: string[];
  cmd: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  labels: Record<string, string>;
  stopSignal?: string;
}

/** A complete image: config and manifest blobs plus layers. */
export interface ImageFixture {
  fields: ConfigFields;
  architecture: string;
  os: string;
  configBytes: Buffer;
  configDigest: string;
  manifestBytes: Buffer;
  manifestDigest: string;
  layers: LayerFixture[];
  /**
   * Bytes of the manifest and config blobs, the part of the image the cache keeps as
   * distributed. Layers are kept as EROFS images whose size depends on the writer, so tests
   * measure those on disk.
   */
  blobBytes: number;
}

export function makeImage(
  layers: LayerFixture[],
  fields: ConfigFields,
  opts: { diffIds?: string[]; architecture?: string } = {},
): ImageFixture {
  const architecture = opts.architecture ?? HOST_ARCH;
  const config = {
    architecture,
    os: "linux",
    config: {
      Env: fields.env,
      Cmd: fields.cmd,
      ...(fields.entrypoint ? { Entrypoint: fields.entrypoint } : {}),
      ...(fields.workingDir ? { WorkingDir: fields.workingDir } : {}),
      ...(fields.user ? { User: fields.user } : {}),
      Labels: fields.labels,
      ...(fields.stopSignal ? { StopSignal: fields.stopSignal } : {}),
    },
    rootfs: { type: "layers", diff_ids: opts.diffIds ?? layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: MTIME.toISOString(), created_by: "fixture" })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.blobDigest, size: l.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    fields,
    architecture,
    os: "linux",
    configBytes,
    configDigest: sha256(configBytes),
    manifestBytes,
    manifestDigest: sha256(manifestBytes),
    layers,
    blobBytes: manifestBytes.length + configBytes.length,
  };
}

/** An image of an OCI layout and the annotations of its index.json entry. */
export interface LayoutEntry {
  image: ImageFixture;
  annotations?: Record<string, string>;
}

/** Overrides for building broken layouts. */
export interface LayoutTweaks {
  /** Replace the bytes stored under a digest (the name stays). */
  replaceBlob?: Map<string, Buffer>;
  /** Extra members appended after the layout's own. */
  extra?: TarMember[];
  /** index.json bytes to use instead of the generated ones. */
  indexJson?: string;
}

/** The members of an OCI image layout holding `entries`. */
export function ociLayoutMembers(entries: readonly LayoutEntry[], tweaks: LayoutTweaks = {}): TarMember[] {
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: entries.map((e) => ({
      mediaType: MEDIA.ociManifest,
      digest: e.image.manifestDigest,
      size: e.image.manifestBytes.length,
      ...(e.annotations ? { annotations: e.annotations } : {}),
    })),
  };
  const blobs = new Map<string, Buffer>();
  for (const { image } of entries) {
    blobs.set(image.manifestDigest, image.manifestBytes);
    blobs.set(image.configDigest, image.configBytes);
    for (const l of image.layers) blobs.set(l.blobDigest, l.blob);
  }
  const members: TarMember[] = [
    { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", data: tweaks.indexJson ?? JSON.stringify(index) },
    { name: "blobs/", type: "directory" },
    { name: "blobs/sha256/", type: "directory" },
  ];
  for (const [digest, data] of blobs) {
    members.push({ name: `blobs/sha256/${hexOf(digest)}`, data: tweaks.replaceBlob?.get(digest) ?? data });
  }
  return [...members, ...(tweaks.extra ?? [])];
}

/** An OCI image layout as a tar archive. */
export async function ociLayoutTar(entries: readonly LayoutEntry[], tweaks: LayoutTweaks = {}): Promise<Buffer> {
  return tarOf(ociLayoutMembers(entries, tweaks));
}

/** Writes an OCI image layout folder at `dir`. */
export async function writeOciLayoutDir(
  dir: string,
  entries: readonly LayoutEntry[],
  tweaks: LayoutTweaks = {},
): Promise<void> {
  await writeMembers(dir, ociLayoutMembers(entries, tweaks));
}

/** Writes tar members as files and folders under `dir`. */
export async function writeMembers(dir: string, members: readonly TarMember[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const m of members) {
    const path = join(dir, m.name);
    if (m.type === "directory") {
      await mkdir(path, { recursive: true });
    } else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, m.data ?? "");
    }
  }
}

/** An image of a docker-save archive and its RepoTags. */
export interface DockerEntry {
  image: ImageFixture;
  repoTags: string[];
}

/**
 * A legacy `docker save` archive: manifest.json, `<config hex>.json`, `<id>/layer.tar`. Its
 * layers must be plain tars (`makeLayer` without gzip); the cache synthesizes the manifest.
 */
export function dockerSaveMembers(entries: readonly DockerEntry[], opts: { manifestJson?: string } = {}): TarMember[] {
  const manifest = entries.map(({ image, repoTags }) => ({
    Config: `${hexOf(image.configDigest)}.json`,
    RepoTags: repoTags,
    Layers: image.layers.map((l) => `${hexOf(l.diffId)}/layer.tar`),
  }));
  const members: TarMember[] = [];
  const seen = new Set<string>();
  for (const { image } of entries) {
    for (const l of image.layers) {
      const id = hexOf(l.diffId);
      if (seen.has(id)) continue;
      seen.add(id);
      members.push({ name: `${id}/`, type: "directory" });
      members.push({ name: `${id}/VERSION`, data: "1.0" });
      members.push({ name: `${id}/json`, data: JSON.stringify({ id }) });
      members.push({ name: `${id}/layer.tar`, data: l.blob });
    }
    members.push({ name: `${hexOf(image.configDigest)}.json`, data: image.configBytes });
  }
  members.push({ name: "manifest.json", data: opts.manifestJson ?? JSON.stringify(manifest) });
  return members;
}

export async function dockerSaveTar(
  entries: readonly DockerEntry[],
  opts: { manifestJson?: string; extra?: TarMember[] } = {},
): Promise<Buffer> {
  return tarOf([...dockerSaveMembers(entries, opts), ...(opts.extra ?? [])]);
}

/** The standard set of fixtures most tests use. */
export interface Corpus {
  /** Layer shared by `alpha` and `beta` (gzip, OCI). */
  base: LayerFixture;
  /** An OCI image with two gzip layers: base + alpha's own. */
  alpha: ImageFixture;
  /** An OCI image sharing `base` with alpha, plus its own layer. */
  beta: ImageFixture;
  /** A docker-save image with two plain-tar layers. */
  legacy: ImageFixture;
}

export async function corpus(): Promise<Corpus> {
  const base = await makeLayer(
    { "etc/os-release": "ID=fixture\nVERSION_ID=1\n", "bin/hello": "#!/bin/sh\necho hello\n" },
    { gzip: true },
  );
  const alphaTop = await makeLayer({ "app/alpha.txt": "alpha layer contents\n".repeat(50) }, { gzip: true });
  const betaTop = await makeLayer({ "app/beta.txt": "beta layer contents\n".repeat(80) }, { gzip: true });
  const alpha = makeImage([base, alphaTop], {
    env: ["PATH=/usr/local/bin:/usr/bin:/bin", "ALPHA=1"],
    cmd: ["/bin/sh", "-c", "cat /app/alpha.txt"],
    entrypoint: ["/bin/entry"],
    workingDir: "/app",
    user: "1000:1000",
    labels: { "org.example.name": "alpha", "org.example.tier": "test" },
    stopSignal: "SIGTERM",
  });
  const beta = makeImage([base, betaTop], {
    env: ["PATH=/usr/bin:/bin"],
    cmd: ["/bin/beta"],
    labels: { "org.example.name": "beta" },
  });
  const legacyBase = await makeLayer({ "etc/legacy": "legacy base\n" });
  const legacyTop = await makeLayer({ "srv/data.bin": "0123456789".repeat(300) });
  const legacy = makeImage([legacyBase, legacyTop], {
    env: ["LEGACY=yes"],
    cmd: ["/srv/run"],
    labels: { "org.example.name": "legacy" },
  });
  return { base, alpha, beta, legacy };
}
