// Minimal qemu-img / qemu-io helpers for the engine's round-trip tests (execa + tmp-promise).
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';

export interface CheckResult {
  exitCode: number;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  imageEndOffset?: number;
  raw: string;
}

export async function qemuCheck(path: string): Promise<CheckResult> {
  const r = await execa('qemu-img', ['check', '--output=json', path], { reject: false });
  let json: Record<string, number> = {};
  try {
    json = JSON.parse(r.stdout) as Record<string, number>;
  } catch {
    // no JSON: check failed to run (exit 1)
  }
  const out: CheckResult = {
    exitCode: r.exitCode ?? -1,
    corruptions: json['corruptions'] ?? 0,
    leaks: json['leaks'] ?? 0,
    checkErrors: json['check-errors'] ?? 0,
    raw: `${r.stdout}\n${r.stderr}`,
  };
  if (json['image-end-offset'] !== undefined) out.imageEndOffset = json['image-end-offset'];
  return out;
}

export async function qemuRaw(path: string): Promise<Uint8Array> {
  const d = await dir({ unsafeCleanup: true });
  try {
    const out = join(d.path, 'out.raw');
    await execa('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', path, out]);
    return new Uint8Array(await readFile(out));
  } finally {
    await d.cleanup();
  }
}

export async function qemuIo(path: string, commands: string[]): Promise<string> {
  const r = await execa('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), path]);
  if (/failed|error/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export async function qemuImg(args: string[]): Promise<string> {
  return (await execa('qemu-img', args)).stdout;
}

export async function withTempDir<T>(job: (path: string) => Promise<T>): Promise<T> {
  const d = await dir({ unsafeCleanup: true });
  try {
    return await job(d.path);
  } finally {
    await d.cleanup();
  }
}

/** Deterministic bytes (xorshift32) so offset bugs inside a cluster show. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** First differing offset, or -1 (vitest's deep equality is slow on big arrays). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.compare(a, b) === 0) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
