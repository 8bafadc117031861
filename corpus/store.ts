// The corpus on disk: a directory of `<id>.json` cases, each with an optional
// `<id>.qcow2` image next to it. Writes are atomic (temp file in the same
// directory, fsync, rename, fsync the directory), and the image is written
// before its JSON, so a campaign killed at any moment leaves either a whole
// case or no case (at worst a stray image without JSON, which loading ignores).
import { open, readdir, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { join, basename, dirname, resolve } from 'node:path';
import { caseId, dedupKey, implementationSlug } from './case/identity.js';
import { packageRoot } from './provenance.js';
import { parseCase } from './case/parse.js';
import { serializeCase } from './case/serialize.js';
import type { CorpusCase } from './case/types.js';

/** corpus/cases/ of this checkout (or of the installed package: `files` ships corpus/). */
export function defaultCorpusDir(): string {
  return join(packageRoot(), 'corpus', 'cases');
}

export interface StoredCase {
  readonly id: string;
  readonly case: CorpusCase;
  readonly jsonPath: string;
  /** Present when an image was saved with the case. */
  readonly imagePath?: string;
}

export class CorpusStoreError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'CorpusStoreError';
  }
}

let tempCounter = 0;

/** Writes `data` to `path` atomically: readers see the old file or the whole new one. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${tempCounter++}.tmp`);
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  // The rename itself must reach the disk, or a crash could lose the new name.
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export interface SaveResult {
  readonly id: string;
  readonly jsonPath: string;
  /** false when the same case (same content-derived name) was already there; the existing file is kept. */
  readonly created: boolean;
}

/** Saves a case (and its image) under its content-derived name. */
export async function saveCase(dir: string, c: CorpusCase, image?: Uint8Array): Promise<SaveResult> {
  await mkdir(dir, { recursive: true });
  const id = caseId(c);
  const jsonPath = join(dir, `${id}.json`);
  const exists = await readFile(jsonPath).then(
    () => true,
    () => false,
  );
  if (exists) return { id, jsonPath, created: false };
  if (image !== undefined) await writeFileAtomic(join(dir, `${id}.qcow2`), image);
  await writeFileAtomic(jsonPath, serializeCase(c));
  return { id, jsonPath, created: true };
}

/** Loads one case file; its image is the `.qcow2` with the same base name, if present. */
export async function loadCase(jsonPath: string): Promise<StoredCase> {
  const text = await readFile(jsonPath, 'utf8').catch((error: unknown) => {
    throw new CorpusStoreError(`cannot read case ${jsonPath}: ${(error as Error).message}`, error);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CorpusStoreError(`${jsonPath}: not valid JSON: ${(error as Error).message}`, error);
  }
  const parsed = parseCase(json, jsonPath);
  const id = basename(jsonPath, '.json');
  const imagePath = jsonPath.replace(/\.json$/, '.qcow2');
  const hasImage = await readFile(imagePath).then(
    () => true,
    () => false,
  );
  return { id, case: parsed, jsonPath: resolve(jsonPath), ...(hasImage ? { imagePath: resolve(imagePath) } : {}) };
}

/** Every case in `dir`, sorted by name; a missing directory is an empty corpus. */
export async function loadCorpus(dir: string): Promise<StoredCase[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw new CorpusStoreError(`cannot list corpus ${dir}: ${error.message}`, error);
  });
  const files = names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  return Promise.all(files.map((n) => loadCase(join(dir, n))));
}

/** Dedup keys (implementation + signature) the corpus already tracks, by status. */
export function knownSignatures(cases: readonly StoredCase[]): Map<string, CorpusCase['status']> {
  const known = new Map<string, CorpusCase['status']>();
  for (const { case: c } of cases) known.set(dedupKey(implementationSlug(c), c.signature), c.status);
  return known;
}
