// The files of a backing chain as the QEMU driver and the repro script lay them
// out: the image is always the same file, every backing file lives next to it
// and is named relative to it (QEMU resolves a relative backing name against
// the directory of the image that names it), so a directory copied whole is a
// working chain.
import { copyFile, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CreateOverlayOp, RebaseOp } from '../../model/index.js';

export interface ChainFile {
  /** File name in the image's directory, also the backing name in the header above it. */
  readonly name: string;
  readonly format: 'qcow2' | 'raw';
}

/** The backing files, nearest first, and how many overlays the sequence created (for fresh names). */
export interface ChainFiles {
  readonly backings: readonly ChainFile[];
  readonly overlays: number;
}

export const noChain: ChainFiles = { backings: [], overlays: 0 };

/** The name the image gets when createOverlay makes it a backing file. */
export function overlayBackingFile(chain: ChainFiles, op: CreateOverlayOp): ChainFile {
  return { name: `layer-${chain.overlays + 1}.${op.backingFormat}`, format: op.backingFormat };
}

/** The chain after `op` succeeded. A raw backing file ends the chain (the old image's own chain is not in it). */
export function chainAfter(chain: ChainFiles, op: CreateOverlayOp | RebaseOp): ChainFiles {
  if (op.kind === 'rebase') return { ...chain, backings: op.depth === 0 ? [] : chain.backings.slice(op.depth - 1) };
  const file = overlayBackingFile(chain, op);
  return { backings: [file, ...(op.backingFormat === 'raw' ? [] : chain.backings)], overlays: chain.overlays + 1 };
}

/** The backing file `depth` steps down (1 = the image's own), or undefined for 0 or past the chain. */
export function backingAt(chain: ChainFiles, depth: number): ChainFile | undefined {
  return depth >= 1 ? chain.backings[depth - 1] : undefined;
}

/** The path of the chain file `file`, next to the image at `imagePath`. */
export function chainFilePath(imagePath: string, file: ChainFile): string {
  return join(dirname(imagePath), file.name);
}

/**
 * createOverlay's first half, for a closed image at `imagePath`: the image
 * becomes the backing file `file` next to it (renamed when qcow2; written out
 * by `writeRaw` and removed when raw). The caller then creates the overlay at
 * `imagePath`.
 */
export async function moveToBacking(imagePath: string, file: ChainFile, writeRaw: (target: string) => Promise<void>): Promise<void> {
  const target = chainFilePath(imagePath, file);
  if (file.format === 'qcow2') return rename(imagePath, target);
  await writeRaw(target);
  await rm(imagePath);
}

/** The bytes of the backing files next to the image at `imagePath`, nearest first (the structure check decodes each). */
export async function readBackingFiles(imagePath: string, chain: ChainFiles): Promise<Uint8Array[]> {
  return Promise.all(chain.backings.map(async (file) => new Uint8Array(await readFile(chainFilePath(imagePath, file)))));
}

/** Copies the backing files next to the image at `fromImage` to the same names next to `toImage`, so that the copy is a working chain. */
export async function copyBackingFiles(fromImage: string, toImage: string, chain: ChainFiles): Promise<void> {
  for (const file of chain.backings) await copyFile(chainFilePath(fromImage, file), chainFilePath(toImage, file));
}
