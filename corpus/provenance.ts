// Provenance of a new case: tool and QEMU versions and the day it was found.
// Recorded for the reader only; none of it enters the file name or the signature.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { qemuVersion } from '../oracle/index.js';
import type { Provenance } from './case/types.js';

/** The package root: this file is corpus/provenance.ts or dist/corpus/provenance.js. */
export function packageRoot(): string {
  const corpusDir = dirname(fileURLToPath(import.meta.url));
  const parent = dirname(corpusDir);
  return basename(parent) === 'dist' ? dirname(parent) : parent;
}

export async function toolVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { name?: string; version?: string };
    return `${pkg.name ?? 'qcow2-verify'} ${pkg.version ?? 'unknown'}`;
  } catch {
    return 'qcow2-verify unknown';
  }
}

export async function provenance(command: string | undefined, date: Date): Promise<Provenance> {
  // the binaries that ran (QEMU_IMG / QEMU_IO may name a build tree's): their whole version lines
  const qemu = await qemuVersion().then(
    (v) => ({ qemu: v.qemuImg, qemuIo: v.qemuIo }),
    () => ({ qemu: 'unknown' }),
  );
  return { tool: await toolVersion(), ...qemu, date: date.toISOString().slice(0, 10), ...(command === undefined ? {} : { command }) };
}
