// The state every engine job works on (one open image).
import type { TrackedFile } from './io/tracked-file.js';
import type { Geometry } from './geometry.js';
import type { Header } from './format/header.js';
import type { HeaderExtensions } from './format/header-extensions.js';
import type { SnapshotEntry } from './format/snapshot-table.js';
import type { BitmapDirectoryEntry } from './format/bitmap-directory.js';
import type { Refcounts } from './refcount.js';
import type { ClusterMap } from './cluster-map.js';
import type { BackingLayer } from './backing.js';
import type { RepairResult } from './repair.js';

export interface WallClock {
  (): { sec: number; nsec: number };
}

export interface ImageState {
  /** The image file, through the engine's length-tracking wrapper. */
  readonly file: TrackedFile;
  readonly g: Geometry;
  readonly header: Header;
  readonly ext: HeaderExtensions;
  /** The backing file name stored in the header (rebase changes it). */
  backingName: string | undefined;
  /**
   * The opened backing chain: unallocated clusters read through it. Undefined
   * without a backing file, or when the open was asked not to open it (reads
   * then see zeros there, as QEMU's BDRV_O_NO_BACKING).
   */
  backing: BackingLayer | undefined;
  readonly refcounts: Refcounts;
  readonly map: ClusterMap;
  snapshots: SnapshotEntry[];
  /** Persistent dirty bitmaps, read-only opens only (a read-write open refuses or drops them). */
  readonly bitmaps: readonly BitmapDirectoryEntry[];
  /** Byte size of the snapshot table as written (refcounted range). */
  snapshotTableBytes: number;
  readonly readOnly: boolean;
  /** Header fields changed: they must be written at the next flush. */
  headerDirty: boolean;
  /**
   * The next header write rebuilds cluster 0 whole (qcow2_update_header), as
   * QEMU does only at open and when it clears the dirty bit; otherwise it
   * writes the changed fields alone, as QEMU's snapshot, resize and table growth do.
   */
  headerRebuild: boolean;
  readonly lazyRefcounts: boolean;
  readonly clock: WallClock;
  /**
   * What the read-write open of a dirty lazy-refcounts image repaired, until
   * the next `repair` reports it: qemu-img check -r opens without that repair
   * (BDRV_O_CHECK) and counts those fixes in its own report.
   */
  dirtyRepair?: RepairResult;
}
