#!/usr/bin/env node
// The `ocicache` command. It parses arguments, calls the public API and formats what the API
// returns; it never reads the cache itself.
//
// Exit codes: 0 success, 1 an operation failed (`ocicache: <message> [<CODE>]` on stderr),
// 2 usage error (including a flag value the API rejects as an invalid argument, and `prune`
// without `--yes` when stdin is not a terminal).

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { isatty } from "node:tty";
import { parseArgs, type ParseArgsConfig } from "node:util";

import { version } from "../package.json";
import {
  AbortError,
  ImageCache,
  InvalidArgumentError,
  OcicacheError,
  type ImageHandle,
  type LoadOptions,
  type PruneOptions,
  type PullOptions,
  type PullPolicy,
  type PullProgress,
} from "./index";

const USAGE = `Usage: ocicache [--root DIR] <command> [options]

Commands:
  ls [--json] [-q]              List cached images (-q: references only)
  inspect REF [--json]          Show an image's config and layers
  rm REF... [--force]           Remove references and the data only they use
  prune [options]               Remove images no sandbox or snapshot uses
  df [-v] [--json]              Show disk usage by kind (-v: and per image)
  load [-i FILE] [--tag REF] [--platform OS/ARCH[/VARIANT]] [--max-uncompressed SIZE]
                                Import a docker-save or OCI archive (stdin without -i); from
                                a multi-platform index take PLATFORM (default: the host's)
  pull REF [--platform P] [--policy if-missing|always|never] [--insecure] [--ca-cert FILE]
           [--quiet] [--json]   Pull an image from its registry (mirrors: OCICACHE_REGISTRIES);
                                one progress line per layer (a live bar on a terminal)

Prune options:
  --dry-run           Report what would be removed; change nothing (no confirmation)
  --older-than AGE    Only images last used (or, never used, loaded) more than AGE ago
  --keep REF          Keep this reference (any spelling; repeatable)
  --max-size SIZE     Evict least recently used images until the cache is at most SIZE
  --grace AGE         Keep images loaded or used within AGE (default 0)
  -y, --yes           Do not ask for confirmation
  -v, --verbose       List each removed reference
  --json              Print the report as JSON (always lists removed references)

Load options:
  --max-uncompressed SIZE   Fail (LIMIT_EXCEEDED) rather than write more than SIZE: the
                            archive's files as staged and the layer images (default: the
                            free space of the cache's file system less 1%, at most 1 GiB)

Global options:
  --root DIR      Cache root (default: $OCICACHE_HOME, else the platform cache folder)
  -h, --help      Show this help
  -V, --version   Show the version

AGE is a number with a unit: s, m, h, d or w (90s, 10m, 1.5h, 7d, 2w).
SIZE is a number of bytes, or a number with K, M, G or T (optionally followed by iB or B, any
case): binary units, so 20G = 20GiB = 20GB = 20 * 1024^3 bytes.
Sizes printed use binary units (1 KiB = 1024 bytes).
`;

/** A command-line mistake: exit code 2. */
class UsageError extends Error {}

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
/** What a shell reports for a command stopped by SIGINT (128 + 2). */
const EXIT_INTERRUPTED = 130;

type Options = NonNullable<ParseArgsConfig["options"]>;

const GLOBAL_OPTIONS = {
  root: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const io: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function parse<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

async function main(argv: string[]): Promise<number> {
  // Global options come before the command; `--root` is also accepted after it.
  let root: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "-h" || arg === "--help") {
      io.out(USAGE);
      return EXIT_OK;
    }
    if (arg === "-V" || arg === "--version") {
      io.out(version);
      return EXIT_OK;
    }
    if (arg === "--root") {
      root = argv[++i];
      if (root === undefined) {
        throw new UsageError("option '--root' needs a folder");
      }
    } else if (arg.startsWith("--root=")) {
      root = arg.slice("--root=".length);
    } else if (arg.startsWith("-")) {
      throw new UsageError(`unknown option '${arg}'`);
    } else {
      break;
    }
  }
  const command = argv[i];
  const rest = argv.slice(i + 1);
  if (command === undefined) {
    throw new UsageError("no command given");
  }
  const open = (values: { root?: string | undefined }) => ImageCache.open({ root: values.root ?? root });
  switch (command) {
    case "ls":
    case "list": {
      const { values, positionals } = parse(rest, {
        json: { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
      });
      if (values.help) return help();
      noPositionals(positionals);
      return ls(open(values), { json: values.json ?? false, quiet: values.quiet ?? false });
    }
    case "inspect": {
      const { values, positionals } = parse(rest, { json: { type: "boolean" } });
      if (values.help) return help();
      if (positionals.length !== 1) {
        throw new UsageError("inspect takes exactly one reference");
      }
      return inspect(open(values), positionals[0] as string, values.json ?? false);
    }
    case "rm":
    case "remove": {
      const { values, positionals } = parse(rest, { force: { type: "boolean", short: "f" } });
      if (values.help) return help();
      if (positionals.length === 0) {
        throw new UsageError("rm needs at least one reference");
      }
      return remove(open(values), positionals, values.force ?? false);
    }
    case "prune": {
      const { values, positionals } = parse(rest, {
        yes: { type: "boolean", short: "y" },
        json: { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
        "dry-run": { type: "boolean" },
        "older-than": { type: "string" },
        keep: { type: "string", multiple: true },
        "max-size": { type: "string" },
        grace: { type: "string" },
      });
      if (values.help) return help();
      noPositionals(positionals);
      const options: PruneOptions = {};
      if (values["dry-run"]) options.dryRun = true;
      if (values["older-than"] !== undefined) options.olderThan = parseDuration(values["older-than"], "--older-than");
      if (values.keep !== undefined) options.keep = values.keep;
      if (values["max-size"] !== undefined) options.maxBytes = parseSize(values["max-size"], "--max-size");
      if (values.grace !== undefined) options.gracePeriodMs = parseDuration(values.grace, "--grace");
      return prune(open(values), options, {
        yes: values.yes ?? false,
        json: values.json ?? false,
        verbose: values.verbose ?? false,
      });
    }
    case "df": {
      const { values, positionals } = parse(rest, {
        json: { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
      });
      if (values.help) return help();
      noPositionals(positionals);
      return df(open(values), { json: values.json ?? false, verbose: values.verbose ?? false });
    }
    case "load": {
      const { values, positionals } = parse(rest, {
        input: { type: "string", short: "i" },
        tag: { type: "string" },
        "max-uncompressed": { type: "string" },
        platform: { type: "string" },
      });
      if (values.help) return help();
      noPositionals(positionals);
      const options: LoadOptions = {};
      if (values.tag !== undefined) options.tag = values.tag;
      if (values["max-uncompressed"] !== undefined) {
        options.maxUncompressedBytes = parseSize(values["max-uncompressed"], "--max-uncompressed");
      }
      if (values.platform !== undefined) options.platform = values.platform;
      return load(open(values), values.input, options);
    }
    case "pull": {
      const { values, positionals } = parse(rest, {
        platform: { type: "string" },
        policy: { type: "string" },
        insecure: { type: "boolean" },
        "ca-cert": { type: "string" },
        quiet: { type: "boolean", short: "q" },
        json: { type: "boolean" },
      });
      if (values.help) return help();
      if (positionals.length !== 1) throw new UsageError("pull takes one reference");
      const options: PullOptions = {};
      if (values.platform !== undefined) options.platform = values.platform;
      if (values.policy !== undefined) {
        if (!["if-missing", "always", "never"].includes(values.policy)) {
          throw new UsageError("--policy is if-missing, always or never");
        }
        options.policy = values.policy as PullPolicy;
      }
      if (values.insecure) options.insecure = true;
      if (values["ca-cert"] !== undefined) options.caCerts = readFileSync(values["ca-cert"], "utf8");
      return pull(open(values), positionals[0] as string, options, {
        quiet: values.quiet ?? false,
        json: values.json ?? false,
      });
    }
    case "help":
      return help();
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

function help(): number {
  io.out(USAGE);
  return EXIT_OK;
}

function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`);
  }
}

async function ls(cache: ImageCache, opts: { json: boolean; quiet: boolean }): Promise<number> {
  const handles = await cache.list();
  if (opts.json) {
    io.out(jsonText(handles));
  } else if (opts.quiet) {
    for (const h of handles) io.out(h.reference);
  } else {
    const now = Date.now();
    const rows = handles.map((h) => [
      h.reference,
      shortDigest(h.manifestDigest),
      platformOf(h),
      String(h.layerCount),
      h.sizeBytes === null ? "-" : humanBytes(h.sizeBytes),
      h.createdAt === null ? "-" : relativeTime(h.createdAt, now),
    ]);
    for (const line of table(["REFERENCE", "DIGEST", "ARCH", "LAYERS", "SIZE", "CREATED"], rows)) io.out(line);
  }
  return EXIT_OK;
}

async function inspect(cache: ImageCache, reference: string, asJson: boolean): Promise<number> {
  const d = await cache.inspect(reference);
  if (asJson) {
    // The handle's fields at the top level, as `ls --json` prints them, then config and layers.
    io.out(jsonText({ ...d.handle, config: d.config, layers: d.layers }));
    return EXIT_OK;
  }
  const h = d.handle;
  const field = (name: string, value: string | null) => io.out(`${`${name}:`.padEnd(14)}${value ?? "-"}`);
  field("Reference", h.reference);
  field("Digest", h.manifestDigest);
  field("Platform", platformOf(h, true));
  field("Size", h.sizeBytes === null ? null : `${humanBytes(h.sizeBytes)} (${h.sizeBytes} bytes)`);
  field("Created", h.createdAt?.toISOString() ?? null);
  field("Last used", h.lastUsedAt?.toISOString() ?? null);
  if (d.config) {
    const c = d.config;
    field("Config", c.digest);
    field("Entrypoint", c.entrypoint ? JSON.stringify(c.entrypoint) : null);
    field("Cmd", c.cmd ? JSON.stringify(c.cmd) : null);
    field("WorkingDir", c.workingDir);
    field("User", c.user);
    field("StopSignal", c.stopSignal);
    io.out("Env:");
    for (const e of c.env ?? []) io.out(`  ${e}`);
    io.out("Labels:");
    for (const [k, v] of Object.entries(c.labels ?? {})) io.out(`  ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  io.out("Layers:");
  const rows = d.layers.map((l) => [String(l.position), l.diffId, humanBytes(l.compressedSizeBytes), l.mediaType]);
  for (const line of table(["#", "DIFF ID", "SIZE", "MEDIA TYPE"], rows)) io.out(`  ${line}`);
  return EXIT_OK;
}

async function remove(cache: ImageCache, references: string[], force: boolean): Promise<number> {
  let status = EXIT_OK;
  for (const reference of references) {
    try {
      await cache.remove(reference, { force });
      io.out(reference);
    } catch (err) {
      reportError(err);
      status = EXIT_FAILED;
    }
  }
  return status;
}

async function prune(
  cache: ImageCache,
  options: PruneOptions,
  opts: { yes: boolean; json: boolean; verbose: boolean },
): Promise<number> {
  if (!opts.yes && options.dryRun !== true) {
    const filtered = Object.keys(options).length > 0;
    const what = filtered
      ? "the images no sandbox or snapshot uses that the options select"
      : "every image no sandbox or snapshot uses";
    if (!process.stdin.isTTY) {
      io.err(`ocicache: prune removes ${what}; pass --yes to confirm (or --dry-run to preview)`);
      return EXIT_USAGE;
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await rl.question(`Remove ${what}? [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) {
      io.err("ocicache: prune cancelled");
      return EXIT_FAILED;
    }
  }
  const report = await cache.prune(options);
  for (const warning of report.warnings) io.err(`ocicache: warning: ${warning}`);
  if (opts.json) {
    io.out(jsonText(report));
    return EXIT_OK;
  }
  const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const dry = report.dryRun;
  io.out(
    `${dry ? "would remove" : "removed"} ${[
      count(report.imageRefsRemoved, "reference", "references"),
      count(report.manifestsRemoved, "manifest", "manifests"),
      count(report.layersRemoved, "layer", "layers"),
      count(report.fsmetaRemoved, "fsmeta image", "fsmeta images"),
      count(report.vmdkRemoved, "VMDK descriptor", "VMDK descriptors"),
    ].join(", ")}`,
  );
  const reclaimed = report.bytesReclaimed === null ? "an unknown number of bytes" : humanBytes(report.bytesReclaimed);
  io.out(`${dry ? "would reclaim" : "reclaimed"} ${reclaimed}`);
  io.out(`cache size ${humanBytes(report.bytesBefore)} -> ${humanBytes(report.bytesAfter)}`);
  if (opts.verbose && report.removed.length > 0) {
    io.out("");
    const rows = report.removed.map((r) => [r.reference, shortDigest(r.manifestDigest), humanBytes(r.bytesFreed)]);
    for (const line of table(["REFERENCE", "DIGEST", "FREED"], rows)) io.out(line);
  }
  return EXIT_OK;
}

async function df(cache: ImageCache, opts: { json: boolean; verbose: boolean }): Promise<number> {
  const usage = await cache.diskUsage();
  if (opts.json) {
    io.out(jsonText(usage));
    return EXIT_OK;
  }
  const kinds: [string, number][] = [
    ["layers", usage.layers],
    ["fsmeta", usage.fsmeta],
    ["vmdk", usage.vmdk],
    ["blobs", usage.blobs],
    ["index", usage.index],
    ["temporary", usage.temporary],
    ["total", usage.total],
  ];
  for (const line of table(["KIND", "SIZE"], kinds.map(([k, v]) => [k, humanBytes(v)]))) io.out(line);
  if (opts.verbose) {
    io.out("");
    const rows = usage.images.map((i) => [
      i.reference,
      shortDigest(i.manifestDigest),
      humanBytes(i.sharedBytes),
      humanBytes(i.exclusiveBytes),
      humanBytes(i.reclaimableBytes),
    ]);
    for (const line of table(["REFERENCE", "DIGEST", "SHARED", "EXCLUSIVE", "RECLAIMABLE"], rows)) io.out(line);
  }
  return EXIT_OK;
}

/** Milliseconds per unit of a duration argument. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60 * 1000,
  h: 3600 * 1000,
  d: 24 * 3600 * 1000,
  w: 7 * 24 * 3600 * 1000,
};

/** `90s`, `10m`, `1.5h`, `7d`, `2w` to whole milliseconds; anything else is a usage error. */
function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * (DURATION_UNITS[m[2] as string] as number)) : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(`option '${option}' takes a duration such as 90s, 10m, 12h, 7d or 2w, got '${text}'`);
  }
  return ms;
}

/** Powers of 1024 for the size suffixes K, M, G and T. */
const SIZE_EXPONENTS: Readonly<Record<string, number>> = { "": 0, k: 1, m: 2, g: 3, t: 4 };

/** `512`, `512B`, `64K`, `1.5M`, `20G`, `20GiB`, `20GB`, `1T` to whole bytes (binary units). */
function parseSize(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:([kmgt])(?:ib|b)?|b)?$/i.exec(text.trim());
  const exponent = m ? SIZE_EXPONENTS[(m[2] ?? "").toLowerCase()] : undefined;
  const bytes = m && exponent !== undefined ? Math.floor(Number(m[1]) * 1024 ** exponent) : NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`option '${option}' takes a size such as 500M, 20G or 20GiB, got '${text}'`);
  }
  return bytes;
}

async function load(cache: ImageCache, input: string | undefined, opts: LoadOptions): Promise<number> {
  // `isatty(0)` rather than `process.stdin.isTTY`: creating `process.stdin` would put a pipe in
  // non-blocking mode and let Node read from it, and the addon reads standard input itself.
  if (input === undefined && isatty(0)) {
    throw new UsageError("load reads an archive from stdin; pipe one in or pass -i FILE");
  }
  // Ctrl-C aborts the load, which deletes its folder under the cache's tmp/ before it settles;
  // exiting at once would leave that folder for the next prune.
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once("SIGINT", interrupt);
  try {
    const options: LoadOptions = { ...opts, signal: controller.signal };
    const handles = input === undefined ? await cache.loadStdin(options) : await cache.load(input, options);
    for (const h of handles) io.out(h.reference);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof AbortError && controller.signal.aborted) {
      io.err("ocicache: load interrupted; nothing was changed");
      return EXIT_INTERRUPTED;
    }
    throw err;
  } finally {
    process.off("SIGINT", interrupt);
  }
}

/** What one layer of a pull shows: state, bytes so far, and when it started downloading. */
interface LayerLine {
  state: "cached" | "downloading" | "converting" | "done";
  bytes: number;
  size: number;
  started: number;
}

async function pull(
  cache: ImageCache,
  reference: string,
  opts: PullOptions,
  out: { quiet: boolean; json: boolean },
): Promise<number> {
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once("SIGINT", interrupt);
  const tty = process.stderr.isTTY === true && !out.quiet;
  const layers = new Map<number, LayerLine>();
  let drawn = 0;
  const line = (i: number, l: LayerLine) => {
    const pct = l.size > 0 ? Math.min(100, Math.floor((l.bytes / l.size) * 100)) : 100;
    const secs = Math.max((Date.now() - l.started) / 1000, 0.001);
    const rate = l.state === "downloading" ? ` ${humanBytes(l.bytes / secs)}/s` : "";
    const width = 20;
    const bar = "#".repeat(Math.round((pct / 100) * width)).padEnd(width, ".");
    return `layer ${i} [${bar}] ${humanBytes(l.bytes)}/${humanBytes(l.size)}${rate} ${l.state}`;
  };
  const redraw = () => {
    if (!tty) return;
    const lines = [...layers.entries()].sort((a, b) => a[0] - b[0]).map(([i, l]) => line(i, l));
    process.stderr.write(`${drawn > 0 ? `\x1b[${drawn}F` : ""}${lines.map((l) => `\x1b[2K${l}\n`).join("")}`);
    drawn = lines.length;
  };
  const log = (text: string) => {
    if (!out.quiet && !tty) io.err(text);
  };
  const onProgress = (e: PullProgress) => {
    if (e.kind === "resolved") {
      log(`${reference}: ${e.manifestDigest} (${e.platform}), ${e.layerCount} layers, ${humanBytes(e.totalBytes)}`);
      return;
    }
    if (e.kind === "resolving" || e.kind === "stitched" || e.kind === "done") return;
    const l = layers.get(e.index) ?? { state: "downloading", bytes: 0, size: e.size, started: Date.now() };
    layers.set(e.index, l);
    switch (e.kind) {
      case "layer-cached":
        l.state = "cached";
        l.bytes = e.size;
        log(`layer ${e.index} ${shortDigest(e.digest)}: cached`);
        break;
      case "layer-download":
        l.bytes = e.bytes;
        break;
      case "layer-verified":
        l.state = "converting";
        l.bytes = e.size;
        break;
      case "layer-converted":
        l.state = "done";
        log(`layer ${e.index} ${shortDigest(e.digest)}: ${humanBytes(e.size)} downloaded, ${humanBytes(e.erofsBytes)} EROFS`);
        break;
    }
    redraw();
  };
  try {
    const handle = await cache.pull(reference, { ...opts, signal: controller.signal, onProgress });
    if (out.json) {
      io.out(jsonText(handle));
    } else {
      io.out(handle.reference);
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof AbortError && controller.signal.aborted) {
      io.err("ocicache: pull interrupted; nothing was changed");
      return EXIT_INTERRUPTED;
    }
    throw err;
  } finally {
    process.off("SIGINT", interrupt);
  }
}

/**
 * `--json` output: the API's objects as they are returned, indented; `Date`s become ISO 8601
 * strings, absent values null.
 */
function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** The first 12 hex digits of a digest (`sha256:` dropped), as `docker images` shows. */
const SHORT_DIGEST_HEX = 12;

function shortDigest(digest: string | null): string {
  if (digest === null) return "-";
  const hex = digest.slice(digest.indexOf(":") + 1);
  return hex.slice(0, SHORT_DIGEST_HEX);
}

function platformOf(h: ImageHandle, withOs = false): string {
  const arch = [h.architecture ?? "-", h.variant].filter((v) => v !== null).join("/");
  return withOs ? `${h.os ?? "-"}/${arch}` : arch;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Bytes in binary units: `512 B`, `12.3 MiB`. */
function humanBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** Beyond this age a date prints as an ISO day rather than "N days ago". */
const RELATIVE_LIMIT_DAYS = 30;

function relativeTime(date: Date, now: number): string {
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000));
  const ago = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"} ago`;
  if (seconds < 5) return "just now";
  if (seconds < 60) return ago(seconds, "second");
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return ago(minutes, "minute");
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return ago(hours, "hour");
  const days = Math.floor(hours / 24);
  if (days <= RELATIVE_LIMIT_DAYS) return ago(days, "day");
  return date.toISOString().slice(0, 10);
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function reportError(err: unknown): void {
  if (err instanceof OcicacheError) {
    io.err(`ocicache: ${err.message} [${err.code}]`);
  } else {
    io.err(`ocicache: ${err instanceof Error ? err.message : String(err)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      io.err(`ocicache: ${err.message}`);
      io.err("Run 'ocicache --help' for usage.");
      process.exitCode = EXIT_USAGE;
      return;
    }
    // Every option the API gets comes from a flag, so an option it rejects is a bad flag value.
    if (err instanceof InvalidArgumentError) {
      reportError(err);
      process.exitCode = EXIT_USAGE;
      return;
    }
    reportError(err);
    process.exitCode = EXIT_FAILED;
  },
);
