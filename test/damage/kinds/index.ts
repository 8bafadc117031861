// Every damage kind, in one table.
import { bitmapKinds } from './bitmaps.js';
import { compressedKinds } from './compressed.js';
import { extendedL2Kinds } from './extended-l2.js';
import { headerKinds } from './header.js';
import { mappingKinds } from './mapping.js';
import { refcountKinds } from './refcounts.js';
import { snapshotKinds } from './snapshots.js';
import type { DamageKind } from './types.js';

export type { DamageKind, DamageVerdict, ExpectedCheck } from './types.js';

export const damageKinds: readonly DamageKind[] = [...refcountKinds, ...mappingKinds, ...headerKinds, ...snapshotKinds, ...compressedKinds, ...bitmapKinds, ...extendedL2Kinds];
