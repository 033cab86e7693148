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
  type CheckProblem,
  type CheckReport,
  type ImageHandle,
  type ImageHolder,
  type LoadOptions,
  type LockWaitEvent,
  type PruneOptions,
  type PullOptions,
  type PullPolicy,
  type PullProgress,
  type RepairPullOptions,
} from "./index";

const USAGE = `Usage: ocicache [--root DIR] <command> [options]

Commands:
  ls [-a] [--filter F]... [--format FMT] [--no-trunc] [--json] [-q]
                                List cached images (-a: also untagged images a use holds)
  inspect REF [--json]          Show an image's config and layers
  rm REF... [--force]           Remove references and the data only they use
  tag SRC NEW                   Point the tag NEW at the image SRC names
  prune [options]               Remove images no sandbox or snapshot uses
  df [-v] [--json]              Show disk usage by kind (-v: and per image)
  load [-i FILE] [--tag REF] [--platform OS/ARCH[/VARIANT]] [--max-uncompressed SIZE]
                                Import a docker-save or OCI archive (stdin without -i)
  pull REF [--platform P] [--policy if-missing|always|never] [--insecure] [--ca-cert FILE]
           [--quiet] [--json]   Pull an image from its registry (mirrors: OCICACHE_REGISTRIES)
  check [REF...] [--full] [--repair [--no-pull] [--insecure] [--ca-cert FILE]] [--dry-run] [--json]
                                Verify the cache's files (and repair what can be rebuilt)
  uses [REF] [--json]           List the sandboxes and snapshots holding images
  release HOLDER|USE_ID         End uses: every use of sandbox:ID or snapshot:ID, or one use
  boot-disk REF [--json]        Print the VMDK, fsmeta and layer paths a VM boots REF from
  help [COMMAND]                Show this help, or a command's

REF is a reference (busybox, busybox:1.36, ghcr.io/org/app@sha256:...), a manifest digest
(sha256:...), or at least 12 hex digits of one (the DIGEST column of ls).

Global options:
  --root DIR      Cache root (default: $OCICACHE_HOME, else the platform cache folder)
  -h, --help      Show this help (after a command: that command's)
  -V, --version   Show the version

Exit status: 0 success, 1 an operation failed (or check found problems), 2 usage error.
Run 'ocicache help COMMAND' for a command's options and examples.
`;

const AGE_AND_SIZE = `AGE is a number with a unit: s, m, h, d or w (90s, 10m, 1.5h, 7d, 2w).
SIZE is a number of bytes, or a number with K, M, G or T (optionally followed by iB or B, any
case): binary units, so 20G = 20GiB = 20GB = 20 * 1024^3 bytes.`;

/** Each command's help: usage, options, examples. */
const COMMAND_HELP: Readonly<Record<string, string>> = {
  ls: `Usage: ocicache ls [options]

List cached images, newest first.

Options:
  -a, --all            Also list images no tag names that a sandbox or snapshot holds
                       (shown as REPOSITORY:<none>)
  --filter F           Only images matching F (repeatable, all must match):
                         reference=PATTERN   familiar reference, * matches any run
                         dangling=true       only untagged images (implies -a)
                         before=REF          created before REF's image
                         since=REF           created after REF's image
  --format FMT         json, table (default), or a template such as
                       '{{.Reference}} {{.Digest}}' (fields: Reference, Repository, Tag,
                       Digest, ID, Platform, Layers, Size, Created)
  --no-trunc           Print full digests
  --json               Same as --format json
  -q, --quiet          Print references only

Examples:
  ocicache ls
  ocicache ls --filter reference='ghcr.io/*' --format '{{.Reference}} {{.Size}}'
  ocicache ls -a --filter dangling=true`,
  inspect: `Usage: ocicache inspect REF [--json]

Show an image's reference, digest, platform, size, config and layers. "Created" is when the
image was loaded into the cache; "Origin" is the registry repository it was last pulled from
(- when it was only loaded); "Built", "Author", "ExposedPorts", "Volumes" and "History" come
from the image's config (- or nothing when it has none).

Examples:
  ocicache inspect busybox
  ocicache inspect 3f57d9401f8d --json`,
  rm: `Usage: ocicache rm REF... [-f|--force]

Remove references, and the data only they use. A digest or digest prefix removes every
reference of that image. An image a sandbox or snapshot uses is refused unless --force (its
data then stays until the use is released).

Examples:
  ocicache rm busybox:1.36 alpine
  ocicache rm 3f57d9401f8d`,
  tag: `Usage: ocicache tag SRC NEW

Point the tag NEW at the image SRC names (any REF form); NEW is re-pointed if it exists.

Examples:
  ocicache tag busybox:1.36 busybox:stable
  ocicache tag 3f57d9401f8d myapp:v2`,
  prune: `Usage: ocicache prune [options]

Remove images no sandbox or snapshot uses. Without --yes on a terminal it shows what would go
and asks first; elsewhere it needs --yes.

Options:
  --dry-run           Report what would be removed; change nothing (no confirmation)
  --older-than AGE    Only images last used (or, never used, loaded) more than AGE ago
  --keep REF          Keep this reference (any spelling; repeatable)
  --max-size SIZE     Evict least recently used images until the cache is at most SIZE
  --grace AGE         Keep images loaded or used within AGE (default 0)
  -y, --yes           Do not ask for confirmation
  -v, --verbose       List each removed reference
  --json              Print the report as JSON (always lists removed references)

${AGE_AND_SIZE}

Examples:
  ocicache prune --dry-run
  ocicache prune --older-than 7d --keep debian:12 --yes
  ocicache prune --max-size 20G -y`,
  df: `Usage: ocicache df [-v] [--json]

Show disk usage by kind. With -v also per reference: SHARED (bytes other images use too),
EXCLUSIVE (bytes only this image uses) and RECLAIMABLE (what pruning that reference alone
would free: 0 while a use pins it or another reference names its manifest), then the untagged
images a use holds (REPOSITORY:<none>, as ls -a shows them), and the total prune would reclaim
now.

Examples:
  ocicache df
  ocicache df -v`,
  load: `Usage: ocicache load [-i FILE] [options]

Import a docker-save tarball, an OCI layout tarball (optionally gzip or zstd) or an OCI layout
folder; from standard input without -i.

Options:
  -i, --input FILE           The archive or layout folder
  --tag REF                  Add this reference to the first image
  --platform OS/ARCH[/VAR]   From a multi-platform index take this platform (default: the host's)
  --max-uncompressed SIZE    Fail (LIMIT_EXCEEDED) rather than write more than SIZE: the layer
                             images, manifests and configs, and what a stream must spool
                             (default: the free space of the cache's file system less 1%, at
                             most 1 GiB)

${AGE_AND_SIZE}

Examples:
  ocicache load -i busybox.tar
  docker save busybox | ocicache load --tag busybox:saved`,
  pull: `Usage: ocicache pull REF [options]

Pull an image from its registry into the cache: the manifest (for a multi-platform image, the
platform's) and config are fetched and verified, and only layers the cache lacks are downloaded,
each streamed into its EROFS image. Credentials come from the Docker config (DOCKER_CONFIG, else
~/.docker/config.json); mirrors from the file OCICACHE_REGISTRIES names. One progress line per
layer (a live bar on a terminal); Ctrl-C aborts and exits 130.

Options:
  --platform OS/ARCH[/VAR]   From a multi-platform index take this platform (default: the host's)
  --policy POLICY            if-missing (default: no request when cached), always (re-resolve
                             the tag), never (fail unless cached)
  --insecure                 Plain HTTP (a registry on 127.0.0.1 or in a lab)
  --ca-cert FILE             Also trust the CA certificates in this PEM file
  -q, --quiet                No progress output
  --json                     Print the image's handle as JSON

Examples:
  ocicache pull busybox:1.36
  ocicache pull --platform linux/arm64 ghcr.io/org/app:2 --json
  ocicache pull --insecure 127.0.0.1:5000/dev/app:latest`,
  check: `Usage: ocicache check [REF...] [--full] [--repair [--no-pull] [--insecure] [--ca-cert FILE]] [--dry-run] [--json]

Verify the files of the given images (default: all) against what the index recorded when
they were written. Quick by default (existence, sizes, EROFS superblocks, VMDK text); --full
also re-hashes every byte and re-parses every EROFS image. --repair (always full) rebuilds
damaged fsmeta and VMDK files byte for byte, fetches a damaged layer of a pulled image again
from the registry repository it came from, and marks images whose damaged layers stay broken
(boot-disk refuses them until the image is loaded or pulled again). Exits 1 when problems
remain.

Options:
  --full                     Re-hash every byte and re-parse every EROFS image
  --repair                   Repair what can be repaired (a full check first)
  --no-pull                  With --repair: never ask a registry
  --insecure                 With --repair: plain HTTP to the registry (127.0.0.1, a lab)
  --ca-cert FILE             With --repair: also trust the CA certificates in this PEM file
  --dry-run                  With --repair: report what would be repaired, change nothing
  --json                     Print the report as JSON

Examples:
  ocicache check
  ocicache check busybox --full
  ocicache check --repair --json`,
  uses: `Usage: ocicache uses [REF] [--json]

List the sandboxes and snapshots holding images (or REF's image), oldest first.

Examples:
  ocicache uses
  ocicache uses busybox`,
  release: `Usage: ocicache release HOLDER|USE_ID...

End uses: every use of a holder (sandbox:ID or snapshot:ID, as 'uses' and IMAGE_IN_USE
errors print them), or one use by its id.

Examples:
  ocicache release sandbox:sb-42
  ocicache release 5f0c2a9e8d7b4c1a9e8d7b4c1a5f0c2a`,
  "boot-disk": `Usage: ocicache boot-disk REF [--json]

Print the files a VM boots REF from: the VMDK descriptor, the fsmeta image and the layer
images. The files are checked first; a damaged disk is refused (CORRUPT_CACHE).

Examples:
  ocicache boot-disk busybox
  ocicache boot-disk busybox@sha256:... --json`,
  help: `Usage: ocicache help [COMMAND]

Show the global help, or a command's.`,
};

/** Other names of commands. */
const ALIASES: Readonly<Record<string, string>> = { list: "ls", remove: "rm", "boot-disk": "boot-disk" };

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

/** Turns a parser error into a message of ours: `unknown option '--x' for ls`. */
function usageMessage(err: unknown, command: string): string {
  const code = (err as { code?: unknown }).code;
  const text = err instanceof Error ? err.message : String(err);
  const option = /'(-[^' ]*)/.exec(text)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${option ?? text}' for ${command}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `option '${option ?? "?"}' of ${command} ${/argument missing/.test(text) ? "needs a value" : "takes no value"}`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `${command} takes no argument '${/'([^']*)'/.exec(text)?.[1] ?? ""}'`;
    default:
      return text;
  }
}

/** A usage error that names the command whose help to read. */
class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

function parse<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CommandUsageError(usageMessage(err, command), command);
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
  const given = argv[i];
  const rest = argv.slice(i + 1);
  if (given === undefined) {
    throw new UsageError("no command given");
  }
  const command = ALIASES[given] ?? given;
  // A command that must wait for another process's lock (a prune while loads run, a load
  // while a prune runs) says so once per lock instead of hanging silently.
  const waitedFor = new Set<string>();
  const onLockWait = (event: LockWaitEvent) => {
    if (waitedFor.has(event.lock)) return;
    waitedFor.add(event.lock);
    io.err(`ocicache: waiting for another ocicache process (lock: ${event.lock})`);
  };
  const open = (values: { root?: string | undefined }) => ImageCache.open({ root: values.root ?? root, onLockWait });
  const helpFor = () => help(command);
  switch (command) {
    case "ls": {
      const { values, positionals } = parse(command, rest, {
        json: { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
        all: { type: "boolean", short: "a" },
        filter: { type: "string", multiple: true },
        format: { type: "string" },
        "no-trunc": { type: "boolean" },
      });
      if (values.help) return helpFor();
      noPositionals(command, positionals);
      const format = values.json ? "json" : (values.format ?? "table");
      return ls(open(values), {
        format,
        quiet: values.quiet ?? false,
        all: values.all ?? false,
        filters: (values.filter ?? []).map(parseFilter),
        noTrunc: values["no-trunc"] ?? false,
      });
    }
    case "inspect": {
      const { values, positionals } = parse(command, rest, { json: { type: "boolean" } });
      if (values.help) return helpFor();
      if (positionals.length !== 1) {
        throw new CommandUsageError("inspect takes exactly one reference", command);
      }
      return inspect(open(values), positionals[0] as string, values.json ?? false);
    }
    case "rm": {
      const { values, positionals } = parse(command, rest, { force: { type: "boolean", short: "f" } });
      if (values.help) return helpFor();
      if (positionals.length === 0) {
        throw new CommandUsageError("rm needs at least one reference", command);
      }
      return remove(open(values), positionals, values.force ?? false);
    }
    case "tag": {
      const { values, positionals } = parse(command, rest, {});
      if (values.help) return helpFor();
      if (positionals.length !== 2) {
        throw new CommandUsageError("tag takes a source and a new reference", command);
      }
      const h = await open(values).tag(positionals[0] as string, positionals[1] as string);
      io.out(h.reference);
      return EXIT_OK;
    }
    case "prune": {
      const { values, positionals } = parse(command, rest, {
        yes: { type: "boolean", short: "y" },
        json: { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
        "dry-run": { type: "boolean" },
        "older-than": { type: "string" },
        keep: { type: "string", multiple: true },
        "max-size": { type: "string" },
        grace: { type: "string" },
      });
      if (values.help) return helpFor();
      noPositionals(command, positionals);
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
      const { values, positionals } = parse(command, rest, {
        json: { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
      });
      if (values.help) return helpFor();
      noPositionals(command, positionals);
      return df(open(values), { json: values.json ?? false, verbose: values.verbose ?? false });
    }
    case "load": {
      const { values, positionals } = parse(command, rest, {
        input: { type: "string", short: "i" },
        tag: { type: "string" },
        "max-uncompressed": { type: "string" },
        platform: { type: "string" },
      });
      if (values.help) return helpFor();
      noPositionals(command, positionals);
      const options: LoadOptions = {};
      if (values.tag !== undefined) options.tag = values.tag;
      if (values["max-uncompressed"] !== undefined) {
        options.maxUncompressedBytes = parseSize(values["max-uncompressed"], "--max-uncompressed");
      }
      if (values.platform !== undefined) options.platform = values.platform;
      return load(open(values), values.input, options);
    }
    case "pull": {
      const { values, positionals } = parse(command, rest, {
        platform: { type: "string" },
        policy: { type: "string" },
        insecure: { type: "boolean" },
        "ca-cert": { type: "string" },
        quiet: { type: "boolean", short: "q" },
        json: { type: "boolean" },
      });
      if (values.help) return helpFor();
      if (positionals.length !== 1) throw new CommandUsageError("pull takes exactly one reference", command);
      const options: PullOptions = {};
      if (values.platform !== undefined) options.platform = values.platform;
      if (values.policy !== undefined) {
        if (!["if-missing", "always", "never"].includes(values.policy)) {
          throw new CommandUsageError("--policy is if-missing, always or never", command);
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
    case "check": {
      const { values, positionals } = parse(command, rest, {
        full: { type: "boolean" },
        repair: { type: "boolean" },
        "no-pull": { type: "boolean" },
        insecure: { type: "boolean" },
        "ca-cert": { type: "string" },
        "dry-run": { type: "boolean" },
        json: { type: "boolean" },
      });
      if (values.help) return helpFor();
      const registryFlags = ["no-pull", "insecure", "ca-cert", "dry-run"] as const;
      const stray = registryFlags.find((f) => values[f] !== undefined && !values.repair);
      if (stray !== undefined) throw new CommandUsageError(`--${stray} goes with --repair`, command);
      if (values["no-pull"] && (values.insecure || values["ca-cert"] !== undefined)) {
        throw new CommandUsageError("--no-pull asks no registry: --insecure and --ca-cert do not go with it", command);
      }
      let pull: RepairPullOptions | false = {};
      if (values["no-pull"]) pull = false;
      else {
        if (values.insecure) pull.insecure = true;
        if (values["ca-cert"] !== undefined) pull.caCerts = readFileSync(values["ca-cert"], "utf8");
      }
      return check(open(values), positionals, {
        full: values.full ?? false,
        repair: values.repair ?? false,
        pull,
        dryRun: values["dry-run"] ?? false,
        json: values.json ?? false,
      });
    }
    case "uses": {
      const { values, positionals } = parse(command, rest, { json: { type: "boolean" } });
      if (values.help) return helpFor();
      if (positionals.length > 1) {
        throw new CommandUsageError("uses takes at most one reference", command);
      }
      return uses(open(values), positionals[0], values.json ?? false);
    }
    case "release": {
      const { values, positionals } = parse(command, rest, {});
      if (values.help) return helpFor();
      if (positionals.length === 0) {
        throw new CommandUsageError("release needs a holder (sandbox:ID or snapshot:ID) or a use id", command);
      }
      return release(open(values), positionals);
    }
    case "boot-disk": {
      const { values, positionals } = parse(command, rest, { json: { type: "boolean" } });
      if (values.help) return helpFor();
      if (positionals.length !== 1) {
        throw new CommandUsageError("boot-disk takes exactly one reference", command);
      }
      const disk = await open(values).bootDisk(positionals[0] as string);
      if (values.json) {
        io.out(jsonText(disk));
      } else {
        io.out(`vmdk     ${disk.vmdk}`);
        io.out(`fsmeta   ${disk.fsmeta}`);
        for (const [n, layer] of disk.layers.entries()) io.out(`layer ${n}  ${layer}`);
      }
      return EXIT_OK;
    }
    case "help": {
      const topic = rest[0];
      if (topic === undefined) return help();
      const name = ALIASES[topic] ?? topic;
      if (COMMAND_HELP[name] === undefined) {
        throw new UsageError(`unknown command '${topic}'`);
      }
      return help(name);
    }
    default:
      throw new UsageError(`unknown command '${given}'`);
  }
}

function help(command?: string): number {
  io.out(command === undefined ? USAGE : `${COMMAND_HELP[command] ?? USAGE}\n`);
  return EXIT_OK;
}

function noPositionals(command: string, positionals: string[]): void {
  if (positionals.length > 0) {
    throw new CommandUsageError(`${command} takes no argument '${positionals[0]}'`, command);
  }
}

/** One `--filter` of ls. */
type Filter =
  | { kind: "reference"; pattern: RegExp }
  | { kind: "dangling"; value: boolean }
  | { kind: "before" | "since"; reference: string };

function parseFilter(text: string): Filter {
  const at = text.indexOf("=");
  const [key, value] = at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
  switch (key) {
    case "reference": {
      const escaped = value.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
      return { kind: "reference", pattern: new RegExp(`^${escaped}$`) };
    }
    case "dangling":
      if (value !== "true" && value !== "false") break;
      return { kind: "dangling", value: value === "true" };
    case "before":
    case "since":
      if (value === "") break;
      return { kind: key, reference: value };
  }
  throw new CommandUsageError(
    `filter '${text}' is not one of reference=PATTERN, dangling=true|false, before=REF, since=REF`,
    "ls",
  );
}

async function ls(
  cache: ImageCache,
  opts: { format: string; quiet: boolean; all: boolean; filters: Filter[]; noTrunc: boolean },
): Promise<number> {
  const dangling = opts.filters.some((f) => f.kind === "dangling" && f.value);
  let handles = await cache.list({ all: opts.all || dangling });
  for (const f of opts.filters) {
    if (f.kind === "reference") {
      const pattern = f.pattern;
      handles = handles.filter((h) => pattern.test(h.reference));
    } else if (f.kind === "dangling") {
      const value = f.value;
      handles = handles.filter((h) => h.tagged !== value);
    } else {
      const before = f.kind === "before";
      const at = (await cache.get(f.reference)).createdAt?.getTime() ?? 0;
      handles = handles.filter((h) => {
        const t = h.createdAt?.getTime() ?? 0;
        return before ? t < at : t > at;
      });
    }
  }
  if (opts.format === "json") {
    io.out(jsonText(handles));
    return EXIT_OK;
  }
  if (opts.quiet) {
    for (const h of handles) io.out(h.reference);
    return EXIT_OK;
  }
  const now = Date.now();
  const fields = (h: ImageHandle): Record<string, string> => {
    const { repository, tag } = splitReference(h);
    return {
      Reference: h.tagged ? h.reference : `${repository}:<none>`,
      Repository: repository,
      Tag: tag,
      Digest: h.manifestDigest ?? "-",
      ID: opts.noTrunc ? (h.manifestDigest ?? "-") : shortDigest(h.manifestDigest),
      Platform: platformOf(h, true),
      Layers: String(h.layerCount),
      Size: h.sizeBytes === null ? "-" : humanBytes(h.sizeBytes),
      Created: h.createdAt === null ? "-" : relativeTime(h.createdAt, now),
    };
  };
  if (opts.format !== "table") {
    const template = opts.format;
    for (const h of handles) {
      const f = fields(h);
      io.out(
        template.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (whole, name: string) => {
          const value = f[name];
          if (value === undefined) throw new CommandUsageError(`--format names an unknown field '${name}'`, "ls");
          return value;
        }),
      );
    }
    return EXIT_OK;
  }
  const rows = handles.map((h) => {
    const f = fields(h);
    return [f.Reference, f.ID, platformOf(h), f.Layers, f.Size, f.Created] as string[];
  });
  for (const line of table(["REFERENCE", "DIGEST", "ARCH", "LAYERS", "SIZE", "CREATED"], rows)) io.out(line);
  return EXIT_OK;
}

/** Repository and tag of a handle's familiar reference (`<none>` for an untagged image). */
function splitReference(h: Pick<ImageHandle, "reference">): { repository: string; tag: string } {
  const ref = h.reference;
  const at = ref.indexOf("@");
  if (at >= 0) return { repository: ref.slice(0, at), tag: "<none>" };
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repository: ref, tag: "latest" };
}

async function inspect(cache: ImageCache, reference: string, asJson: boolean): Promise<number> {
  const d = await cache.inspect(reference);
  if (asJson) {
    // The handle's fields at the top level, as `ls --json` prints them, then config and layers.
    io.out(jsonText({ ...d.handle, origin: d.origin, config: d.config, layers: d.layers }));
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
  field("Origin", d.origin);
  if (d.config) {
    const c = d.config;
    field("Config", c.digest);
    field("Entrypoint", c.entrypoint ? JSON.stringify(c.entrypoint) : null);
    field("Cmd", c.cmd ? JSON.stringify(c.cmd) : null);
    field("WorkingDir", c.workingDir);
    field("User", c.user);
    field("StopSignal", c.stopSignal);
    // From the config blob: the build's own date and author, ports, volumes and history
    // (untrusted text, printed with control characters escaped).
    field("Built", c.created?.toISOString() ?? null);
    field("Author", c.author === null ? null : printable(c.author));
    field("ExposedPorts", c.exposedPorts ? c.exposedPorts.map(printable).join(", ") : null);
    field("Volumes", c.volumes ? c.volumes.map(printable).join(", ") : null);
    io.out("Env:");
    for (const e of c.env ?? []) io.out(`  ${e}`);
    io.out("Labels:");
    for (const [k, v] of Object.entries(c.labels ?? {})) io.out(`  ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
    io.out("History:");
    for (const step of c.history ?? []) {
      const notes = [
        step.emptyLayer ? "no layer" : null,
        step.author === null ? null : `by ${printable(step.author)}`,
        step.comment === null ? null : printable(step.comment),
      ].filter((n) => n !== null);
      const created = step.created?.toISOString() ?? "-";
      io.out(`  ${created}  ${step.createdBy === null ? "-" : printable(step.createdBy)}${notes.length > 0 ? `  (${notes.join("; ")})` : ""}`);
    }
  }
  io.out("Layers:");
  const rows = d.layers.map((l) => [String(l.position), l.diffId, humanBytes(l.compressedSizeBytes), l.mediaType]);
  for (const line of table(["#", "DIFF ID", "SIZE", "MEDIA TYPE"], rows)) io.out(`  ${line}`);
  return EXIT_OK;
}

async function remove(cache: ImageCache, references: string[], force: boolean): Promise<number> {
  let failed = 0;
  for (const reference of references) {
    try {
      await cache.remove(reference, { force });
      io.out(reference);
    } catch (err) {
      reportError(err);
      failed++;
    }
  }
  if (references.length > 1) {
    const removed = references.length - failed;
    io.err(
      `ocicache: removed ${removed} of ${references.length} references${failed > 0 ? `, ${failed} failed` : ""}`,
    );
  }
  return failed > 0 ? EXIT_FAILED : EXIT_OK;
}

async function check(
  cache: ImageCache,
  references: string[],
  opts: { full: boolean; repair: boolean; pull: RepairPullOptions | false; dryRun: boolean; json: boolean },
): Promise<number> {
  const targets: (string | undefined)[] = references.length > 0 ? references : [undefined];
  const reports: CheckReport[] = [];
  for (const reference of targets) {
    reports.push(
      opts.repair
        ? await cache.repair(reference, { dryRun: opts.dryRun, pull: opts.pull })
        : await cache.verify(reference, { full: opts.full }),
    );
  }
  const images = reports.flatMap((r) => r.images);
  const problems = reports.reduce((n, r) => n + r.problems, 0);
  if (opts.json) {
    io.out(jsonText(references.length === 1 || references.length === 0 ? reports[0] : reports));
    return problems > 0 ? EXIT_FAILED : EXIT_OK;
  }
  const describe = (p: CheckProblem) =>
    `${p.artifact} ${p.kind}: ${p.path}${p.expected !== null ? ` (expected ${p.expected}` : ""}${
      p.found !== null ? `${p.expected !== null ? ", " : " ("}found ${p.found})` : p.expected !== null ? ")" : ""
    }`;
  for (const image of images) {
    const name = image.references[0] ?? image.manifestDigest;
    const state =
      image.problems.length > 0 ? `${image.problems.length} problem${image.problems.length === 1 ? "" : "s"}` : "ok";
    io.out(`${name} (${shortDigest(image.manifestDigest)}): ${state}`);
    for (const p of image.repaired) io.out(`  ${opts.dryRun ? "would repair" : "repaired"} ${describe(p)}`);
    for (const p of image.problems) io.out(`  ${describe(p)}`);
    if (image.fetchError !== null) {
      const f = image.fetchError;
      io.out(`  could not fetch from ${f.origin}: ${f.code}: ${f.message}`);
    }
    if (image.broken !== null) io.out(`  marked broken: ${image.broken}`);
  }
  const mode = opts.repair ? "full, repair" : opts.full ? "full" : "quick";
  io.out(`checked ${images.length} image${images.length === 1 ? "" : "s"} (${mode}): ${problems} problem${problems === 1 ? "" : "s"}${opts.repair ? " left" : ""}`);
  return problems > 0 ? EXIT_FAILED : EXIT_OK;
}

async function uses(cache: ImageCache, reference: string | undefined, asJson: boolean): Promise<number> {
  const list = await cache.uses(reference);
  if (asJson) {
    io.out(jsonText(list));
    return EXIT_OK;
  }
  const now = Date.now();
  const rows = list.map((u) => [
    u.id,
    "sandbox" in u.holder ? `sandbox:${u.holder.sandbox}` : `snapshot:${u.holder.snapshot}`,
    u.reference,
    shortDigest(u.manifestDigest),
    relativeTime(u.since, now),
    u.expiresAt === null ? "-" : u.expired ? "expired" : u.expiresAt.toISOString(),
  ]);
  for (const line of table(["USE ID", "HOLDER", "REFERENCE", "DIGEST", "SINCE", "EXPIRES"], rows)) io.out(line);
  return EXIT_OK;
}

/** A use id as the core makes them: 32 lowercase hex digits. */
const USE_ID = /^[0-9a-f]{32}$/;

async function release(cache: ImageCache, targets: string[]): Promise<number> {
  for (const target of targets) {
    const m = /^(sandbox|snapshot):(.+)$/.exec(target);
    if (m) {
      const holder: ImageHolder = m[1] === "sandbox" ? { sandbox: m[2] as string } : { snapshot: m[2] as string };
      const n = await cache.releaseHolder(holder);
      io.out(`${target}: released ${n} use${n === 1 ? "" : "s"}`);
    } else if (USE_ID.test(target)) {
      const use = (await cache.uses()).find((u) => u.id === target);
      if (use) await use.release();
      io.out(`${target}: ${use ? "released" : "no such use"}`);
    } else {
      throw new CommandUsageError(`'${target}' is neither sandbox:ID, snapshot:ID nor a use id`, "release");
    }
  }
  return EXIT_OK;
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
    // The plan first: what a dry run of the same prune would remove, compactly.
    const plan = await cache.prune({ ...options, dryRun: true });
    for (const warning of plan.warnings) io.err(`ocicache: warning: ${warning}`);
    if (plan.removed.length === 0) {
      io.err("ocicache: nothing to prune");
      return EXIT_OK;
    }
    io.err(`prune would remove ${plan.removed.length} reference${plan.removed.length === 1 ? "" : "s"}:`);
    for (const r of plan.removed) io.err(`  ${r.reference}   ${shortDigest(r.manifestDigest)}   ${humanBytes(r.bytesFreed)}`);
    const reclaim = plan.bytesReclaimed === null ? "an unknown number of bytes" : humanBytes(plan.bytesReclaimed);
    io.err(`and reclaim ${reclaim} (cache ${humanBytes(plan.bytesBefore)} -> ${humanBytes(plan.bytesAfter)})`);
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
      i.tagged ? i.reference : `${splitReference(i).repository}:<none>`,
      shortDigest(i.manifestDigest),
      humanBytes(i.sharedBytes),
      humanBytes(i.exclusiveBytes),
      humanBytes(i.reclaimableBytes),
    ]);
    for (const line of table(["REFERENCE", "DIGEST", "SHARED", "EXCLUSIVE", "RECLAIMABLE"], rows)) io.out(line);
    const plan = await cache.prune({ dryRun: true });
    const reclaim = plan.bytesReclaimed === null ? "an unknown number of bytes" : humanBytes(plan.bytesReclaimed);
    io.out("");
    io.out(`prune would reclaim ${reclaim} now`);
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
/** `text` with control characters escaped (`\n`, `\u001b`), for one line of a terminal. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (ch) => JSON.stringify(ch).slice(1, -1));
}

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

// Safe in pipes: a reader that went away (`ocicache ls | head -1`) ends the command quietly.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(EXIT_OK);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      io.err(`ocicache: ${err.message}`);
      io.err(
        err instanceof CommandUsageError
          ? `Run 'ocicache help ${err.command}' for its usage.`
          : "Run 'ocicache --help' for usage.",
      );
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
