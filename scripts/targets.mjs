// The release targets (package.json `napi.targets`, Rust triples) and where each one's addon
// goes: the prebuildify layout `prebuilds/<platform>-<arch>/node.napi[.<libc>].node` that
// node-gyp-build-optional-packages reads (it wants the `node` runtime and `napi` tags, and
// `glibc`/`musl` tell the two Linux builds apart), and the per-platform npm package that carries
// it (`@ocicache/ocicache-<platform>-<arch>`, whose root is that `<platform>-<arch>` folder).
// Shared by place-native.mjs, platform-packages.mjs and check-package.mjs.
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
export const BINARY = PKG.napi.binaryName;

/** Node's `process.platform` / `process.arch` / libc tag of a Rust triple. */
export function describe(triple) {
  const [cpu, , os, abi] = triple.split("-");
  const arch = { x86_64: "x64", aarch64: "arm64" }[cpu];
  const platform = { linux: "linux", darwin: "darwin", windows: "win32" }[os];
  if (arch === undefined || platform === undefined) {
    throw new Error(`unsupported target triple ${triple}`);
  }
  // prebuildify's libc tags: `glibc` for linux-gnu, `musl` for linux-musl, none elsewhere.
  const libc = platform === "linux" ? (abi === "musl" ? "musl" : "glibc") : null;
  // napi's `--platform` file name part: linux-x64-gnu, darwin-arm64, win32-x64-msvc.
  const napi = platform === "linux" ? `linux-${arch}-${abi}` : platform === "darwin" ? `darwin-${arch}` : `win32-${arch}-${abi}`;
  const dir = `${platform}-${arch}`;
  return {
    triple,
    platform,
    arch,
    libc,
    napi,
    dir,
    file: libc === null ? "node.napi.node" : `node.napi.${libc}.node`,
    packageName: `@${PKG.name}/${PKG.name}-${dir}`,
  };
}

/** Every release target, or those `$OCICACHE_PACK_TARGETS` names (comma-separated triples). */
export function targets() {
  const all = PKG.napi.targets.map(describe);
  const only = process.env.OCICACHE_PACK_TARGETS;
  if (only === undefined || only === "") {
    return all;
  }
  const wanted = only.split(",").map((t) => t.trim());
  for (const t of wanted) {
    if (!PKG.napi.targets.includes(t)) {
      throw new Error(`OCICACHE_PACK_TARGETS: ${t} is not in package.json napi.targets`);
    }
  }
  return all.filter((t) => wanted.includes(t.triple));
}

/** The `<platform>-<arch>` folders (one npm package each) of `list`, in order. */
export function platformDirs(list) {
  return [...new Set(list.map((t) => t.dir))];
}

/**
 * Why `path` is not a native addon built for `target` (its object format and CPU from the file
 * header, and for Linux which C library it links), or null when it is.
 */
export function binaryMismatch(path, target) {
  let head;
  try {
    const fd = openSync(path, "r");
    head = Buffer.alloc(4096);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
  } catch (err) {
    return `cannot read ${path}: ${err.message}`;
  }
  if (target.platform === "linux") {
    // ELF: magic, e_machine at 18 (little-endian): 62 x86-64, 183 AArch64.
    if (head.readUInt32BE(0) !== 0x7f454c46) return `${path} is not an ELF file`;
    const machine = { x64: 62, arm64: 183 }[target.arch];
    if (head.readUInt16LE(18) !== machine) return `${path} is not an ELF file for ${target.arch}`;
    // A glibc build needs libc.so.6 (its DT_NEEDED name); a musl build links musl statically
    // or needs libc.so / ld-musl, never libc.so.6.
    const gnu = readFileSync(path).includes("libc.so.6\0");
    if (gnu !== (target.libc === "glibc")) return `${path} is not linked against ${target.libc}`;
    return null;
  }
  if (target.platform === "darwin") {
    // Mach-O 64-bit (MH_MAGIC_64, little-endian), cputype at 4: x86_64 0x01000007, arm64 0x0100000c.
    if (head.readUInt32LE(0) !== 0xfeedfacf) return `${path} is not a 64-bit Mach-O file`;
    const cpu = { x64: 0x01000007, arm64: 0x0100000c }[target.arch];
    if (head.readUInt32LE(4) !== cpu) return `${path} is not a Mach-O file for ${target.arch}`;
    return null;
  }
  // PE: "MZ", e_lfanew at 0x3c, "PE\0\0", then the machine: 0x8664 x64, 0xaa64 arm64.
  if (head.toString("latin1", 0, 2) !== "MZ") return `${path} is not a PE file`;
  const pe = head.readUInt32LE(0x3c);
  if (pe + 6 > head.length || head.readUInt32BE(pe) !== 0x50450000) return `${path} is not a PE file`;
  const machine = { x64: 0x8664, arm64: 0xaa64 }[target.arch];
  if (head.readUInt16LE(pe + 4) !== machine) return `${path} is not a PE file for ${target.arch}`;
  return null;
}
