// Reads the rows of the binding's `listRows` and `diskUsageRows` (written by `list_rows` and
// `disk_usage_rows` in crates/node/src/convert.rs): what can be 100,000 rows crosses in chunks
// of a few thousand, each as two values, a JSON array of the chunk's strings (which
// `JSON.parse` reads in a third of the time of the same rows as objects) and a `Float64Array`
// of their numbers (read as they are), then the count of the chunk's rows that are tagged. The
// core writes the next chunk while this reads one. A null number is NaN. Rows name their
// manifest by its position over the whole stream; the first row to name one carries its
// fields.

import { InternalError } from "../errors";
import type { NativeRowStream, NativeRows } from "./binding";

/** A row's field that may be null: NaN crosses for null. */
function nullable(v: number): number | null {
  return Number.isNaN(v) ? null : v;
}

/** `JSON.parse` of the strings, which must be an array. */
function strings(rows: NativeRows): string[] {
  return JSON.parse(rows.text) as string[];
}

/**
 * Calls `read` on each chunk of `stream` in order, up to the last, with the index of the
 * chunk's tagged-row count (`trailing` numbers after it on the last chunk).
 */
async function eachChunk(
  stream: NativeRowStream,
  trailing: number,
  read: (rows: NativeRows, text: string[], end: number) => void,
): Promise<void> {
  for (;;) {
    const rows = await stream.next();
    const end = rows.numbers.length - 1 - (rows.last ? trailing : 0);
    if (end < 0) throw new InternalError("a chunk of rows holds no count of tagged rows");
    read(rows, strings(rows), end);
    if (rows.last) return;
  }
}

/** The fields of one listed reference, as {@link readList} hands them out. */
export type ListedHandle<T> = (
  reference: string,
  manifestDigest: string,
  architecture: string,
  os: string,
  variant: string | null,
  layerCount: number,
  sizeBytes: number | null,
  createdAtMs: number,
  lastUsedAtMs: number | null,
  tagged: boolean,
) => T;

/**
 * The references of `listRows`, newest first (then the untagged ones a use holds), each built
 * by `make`. Each manifest's fields are kept in parallel arrays (no object per manifest:
 * 100,000 rows may name 50,000 of them).
 */
export async function readList<T>(stream: NativeRowStream, make: ListedHandle<T>): Promise<T[]> {
  const digests: string[] = [];
  const architectures: string[] = [];
  const oses: string[] = [];
  const variants: (string | null)[] = [];
  const layerCounts: number[] = [];
  const sizes: (number | null)[] = [];
  const out: T[] = [];
  await eachChunk(stream, 0, (rows, text, end) => {
    const n = rows.numbers;
    const tagged = out.length + (n[end] as number);
    let s = 0;
    for (let k = 0; k < end; ) {
      const m = n[k] as number;
      const createdAtMs = n[k + 1] as number;
      const lastUsedAtMs = nullable(n[k + 2] as number);
      const reference = text[s++] as string;
      k += 3;
      if (m === digests.length) {
        const hasVariant = n[k + 2] === 1;
        layerCounts.push(n[k] as number);
        sizes.push(nullable(n[k + 1] as number));
        digests.push(text[s] as string);
        architectures.push(text[s + 1] as string);
        oses.push(text[s + 2] as string);
        variants.push(hasVariant ? (text[s + 3] as string) : null);
        k += 3;
        s += hasVariant ? 4 : 3;
      }
      if (m >= digests.length) throw new InternalError(`listRows names manifest ${m} before it wrote it`);
      out.push(
        make(
          reference,
          digests[m] as string,
          architectures[m] as string,
          oses[m] as string,
          variants[m] as string | null,
          layerCounts[m] as number,
          sizes[m] as number | null,
          createdAtMs,
          lastUsedAtMs,
          out.length < tagged,
        ),
      );
    }
  });
  return out;
}

/** One reference's figures, as {@link readDiskUsage} hands them out. */
export interface UsageRow {
  reference: string;
  manifestDigest: string;
  sharedBytes: number;
  exclusiveBytes: number;
  reclaimableBytes: number;
  tagged: boolean;
}

/** Totals by kind of `diskUsageRows`. */
export interface UsageTotals {
  layers: number;
  fsmeta: number;
  vmdk: number;
  blobs: number;
  index: number;
  temporary: number;
  total: number;
}

/** Totals at the end of `diskUsageRows`' last chunk. */
const TOTALS = 7;

/**
 * The totals and the references (in reference order, then the untagged manifests uses hold) of
 * `diskUsageRows`.
 */
export async function readDiskUsage(stream: NativeRowStream): Promise<{ totals: UsageTotals; images: UsageRow[] }> {
  const manifests: { digest: string; shared: number; exclusive: number }[] = [];
  const images: UsageRow[] = [];
  let totals: UsageTotals | undefined;
  await eachChunk(stream, TOTALS, (rows, text, end) => {
    const n = rows.numbers;
    const tagged = images.length + (n[end] as number);
    let s = 0;
    for (let k = 0; k < end; ) {
      const m = n[k] as number;
      const reclaimableBytes = n[k + 1] as number;
      const reference = text[s++] as string;
      k += 2;
      if (m === manifests.length) {
        manifests.push({ shared: n[k] as number, exclusive: n[k + 1] as number, digest: text[s++] as string });
        k += 2;
      }
      const mf = manifests[m];
      if (mf === undefined) throw new InternalError(`diskUsageRows names manifest ${m} before it wrote it`);
      images.push(
        Object.freeze({
          reference,
          manifestDigest: mf.digest,
          sharedBytes: mf.shared,
          exclusiveBytes: mf.exclusive,
          reclaimableBytes,
          tagged: images.length < tagged,
        }),
      );
    }
    if (rows.last) {
      const t = (i: number) => n[end + 1 + i] as number;
      totals = { layers: t(0), fsmeta: t(1), vmdk: t(2), blobs: t(3), index: t(4), temporary: t(5), total: t(6) };
    }
  });
  if (totals === undefined) throw new InternalError("diskUsageRows ended without its totals");
  return { totals, images };
}
