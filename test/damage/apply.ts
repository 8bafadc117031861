// Applying a damage kind to its base image: always on a private copy.
import type { BaseName } from './base-images.js';
import type { DamageKind } from './kinds/index.js';
import { Layout } from './layout.js';

export function damaged(kind: DamageKind, bases: ReadonlyMap<BaseName, Uint8Array>): Uint8Array {
  const base = bases.get(kind.base);
  if (base === undefined) throw new Error(`base ${kind.base} was not built`);
  const copy = base.slice();
  return kind.damage(copy, new Layout(copy)) ?? copy;
}
