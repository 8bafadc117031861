// The model's side of the picture: for an image an implementation wrote and
// the model state it should hold, the refcount the model expects for each
// host cluster and, per guest cluster, the model's kind and content next to
// the image's. Host clusters are matched through the image's own mapping
// (same view, same L1 index or guest cluster), since the model names clusters
// by identity, not by offset.
import { createHash } from 'node:crypto';
import { expectedRefcounts, geometry, read, type ByteReader, type ModelState } from '../../../model/index.js';
import type { L1Table, L2Table } from '../../../model/index.js';
import type { GuestView, ImageLayout } from './layout.js';

export interface GuestDifference {
  readonly view: string;
  readonly guestCluster: number;
  readonly model: string;
  readonly image: string;
}

export interface ModelExpectation {
  /** Expected refcount per host cluster, where the model has an opinion (L2 tables and data it maps). */
  readonly refcounts: Map<number, number>;
  /** Guest clusters whose kind or content differs between the model and the image. */
  readonly differences: GuestDifference[];
}

/** Guest clusters compared per view at most (the page lists differences, not the disk). */
const comparedClustersMax = 65536;

function shortHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 8);
}

/** Bytes shown of a differing guest cluster, so a wrong fill reads at a glance next to the hash. */
const leadingBytesShown = 4;

function contentText(kind: string, bytes: Uint8Array): string {
  const lead = [...bytes.subarray(0, leadingBytesShown)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${kind} #${shortHash(bytes)} (${lead} …)`;
}

/**
 * Compares `layout` (decoded from `reader`) with `state`, marking host clusters
 * whose refcount differs from the model's ('refcountDiffers') or whose guest
 * content does ('unexpectedContent'). Mutates the layout's marks only.
 */
export function applyModel(layout: ImageLayout, reader: ByteReader, state: ModelState): ModelExpectation {
  const g = geometry(state.options);
  const counts = expectedRefcounts(state);
  const refcounts = new Map<number, number>();
  const differences: GuestDifference[] = [];
  const views: [GuestView | undefined, L1Table, string][] = [[layout.views[0], state.active, 'active']];
  for (const s of state.snapshots) views.push([layout.views.find((v) => v.snapshotId === s.id), s.l1, `snapshot ${s.id} (${s.name})`]);
  for (const [view, l1, label] of views) {
    if (view === undefined) {
      differences.push({ view: label, guestCluster: -1, model: 'exists', image: 'missing' });
      continue;
    }
    l1.forEach((table: L2Table | undefined, l1Index) => {
      const host = view.l2Clusters[l1Index];
      if (table !== undefined && host !== undefined) refcounts.set(host, counts.l2Tables.get(table.id) ?? 0);
    });
    const byGuest = new Map(view.entries.map((e) => [e.guestCluster, e]));
    const guestClusters = Math.min(Math.ceil(state.options.virtualSize / g.clusterSize), comparedClustersMax);
    for (let c = 0; c < guestClusters; c++) {
      const entry = l1[Math.floor(c / g.l2EntriesCount)]?.entries.get(c % g.l2EntriesCount);
      const image = byGuest.get(c);
      if (entry !== undefined && entry.kind !== 'zero-plain' && image?.hostCluster !== undefined) {
        refcounts.set(image.hostCluster, counts.dataClusters.get(entry.data.id) ?? 0);
      }
      if (view.snapshotId !== undefined) continue;
      const length = Math.min(g.clusterSize, state.options.virtualSize - c * g.clusterSize);
      const expected = read(state, c * g.clusterSize, length);
      const actual = image?.kind === 'normal' && image.hostCluster !== undefined ? reader.read(image.hostCluster * g.clusterSize, length) : new Uint8Array(length);
      const modelKind = entry?.kind ?? 'unallocated';
      const imageKind = image?.kind ?? 'unallocated';
      // A compressed stream is not inflated here (zlib or zstd): its kind is compared, its bytes are not.
      const sameContent = imageKind === 'compressed' || shortHash(expected) === shortHash(actual);
      if (sameContent && modelKind === imageKind) continue;
      differences.push({ view: label, guestCluster: c, model: contentText(modelKind, expected), image: contentText(imageKind, actual) });
      if (image?.hostCluster !== undefined) layout.clusters.mark(image.hostCluster, 'unexpectedContent');
    }
  }
  for (const [host, expected] of refcounts) {
    const stored = layout.refcounts[host];
    if (stored !== undefined && stored !== BigInt(expected)) layout.clusters.mark(host, 'refcountDiffers');
  }
  return { refcounts, differences };
}
