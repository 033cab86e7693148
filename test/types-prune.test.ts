// Type-level checks of the prune, disk usage, expiring use and boot disk API (vitest's
// expectTypeOf; they also run as no-op tests).

import { describe, expectTypeOf, it } from "vitest";

import {
  Image,
  ImageCache,
  ImageUse,
  type AcquireOptions,
  type BootDisk,
  type DiskUsage,
  type ImageDiskUsage,
  type ImageHolder,
  type ImagePruneReport,
  type PruneOptions,
  type PrunedReference,
  type PullOptions,
} from "../src/index";

describe("prune, disk usage and use expiry types", () => {
  it("prune takes optional options and returns the extended report", () => {
    expectTypeOf<ImageCache["prune"]>().parameters.toEqualTypeOf<[opts?: PruneOptions]>();
    expectTypeOf(Image.prune).parameters.toEqualTypeOf<[opts?: PruneOptions]>();
    expectTypeOf<PruneOptions>().toEqualTypeOf<{
      dryRun?: boolean;
      olderThan?: Date | number;
      keep?: string[];
      maxBytes?: number;
      gracePeriodMs?: number;
    }>();
    expectTypeOf<ImagePruneReport["bytesBefore"]>().toEqualTypeOf<number>();
    expectTypeOf<ImagePruneReport["bytesAfter"]>().toEqualTypeOf<number>();
    expectTypeOf<ImagePruneReport["allocatedBytesReclaimed"]>().toEqualTypeOf<number | null>();
    expectTypeOf<ImagePruneReport["dryRun"]>().toEqualTypeOf<boolean>();
    expectTypeOf<ImagePruneReport["removed"]>().toEqualTypeOf<readonly PrunedReference[]>();
    expectTypeOf<PrunedReference>().toEqualTypeOf<{
      readonly reference: string;
      readonly manifestDigest: string;
      readonly bytesFreed: number;
    }>();
  });

  it("diskUsage and bootDisk", () => {
    expectTypeOf<ImageCache["diskUsage"]>().returns.toEqualTypeOf<Promise<DiskUsage>>();
    expectTypeOf(Image.diskUsage).returns.toEqualTypeOf<Promise<DiskUsage>>();
    expectTypeOf<DiskUsage["images"]>().toEqualTypeOf<readonly ImageDiskUsage[]>();
    expectTypeOf<DiskUsage["total"]>().toEqualTypeOf<number>();
    expectTypeOf<ImageDiskUsage["reclaimableBytes"]>().toEqualTypeOf<number>();
    expectTypeOf<ImageCache["bootDisk"]>().returns.toEqualTypeOf<Promise<BootDisk>>();
    expectTypeOf(Image.bootDisk).returns.toEqualTypeOf<Promise<BootDisk>>();
    expectTypeOf<BootDisk>().toEqualTypeOf<{
      readonly vmdk: string;
      readonly fsmeta: string;
      readonly layers: readonly string[];
    }>();
  });

  it("acquire takes a ttl and uses report their expiry", () => {
    expectTypeOf<ImageCache["acquire"]>().parameters.toEqualTypeOf<
      [reference: string, holder: ImageHolder, opts?: AcquireOptions]
    >();
    // Issue 12 adds `pull` (acquire that pulls and pins in one transaction).
    expectTypeOf<AcquireOptions>().toEqualTypeOf<{ ttlMs?: number; pull?: PullOptions | true }>();
    expectTypeOf<ImageUse["expiresAt"]>().toEqualTypeOf<Date | null>();
    expectTypeOf<ImageUse["expired"]>().toEqualTypeOf<boolean>();
  });
});
