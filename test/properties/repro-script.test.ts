// The QEMU shell script of a failure runs as printed with the real qemu-img and
// qemu-io, and shows what the gate saw: the stale bytes QEMU 7.2 re-exposes
// after a shrink and grow, the leak of a refused snapshot, and (for a sequence
// QEMU gets right) an image identical to the model's disk, seeded writes
// included.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { withTempDir } from '../../oracle/index.js';
import type { Counterexample } from '../../properties/index.js';
import { reproScript } from '../../properties/report/repro-script.js';
import { saveReproScript } from '../../properties/report/save-repro-script.js';

async function runScript(c: Counterexample): Promise<{ script: string; output: string }> {
  return withTempDir(async (dir) => {
    // saved as gate, replay and fuzz save it: the script and its data files in one directory
    const path = await saveReproScript(join(dir, 'case'), c, ['test']);
    expect(path).toBe(join(dir, 'case', 'repro.sh'));
    const script = await readFile(path, 'utf8');
    expect(script).toBe(reproScript(c, ['test']).script);
    const run = await execa(path, [], { all: true, reject: false });
    return { script, output: run.all ?? '' };
  });
}

const v3 = (clusterBits: number, refcountBits: number, virtualSize: number) => ({ version: 3 as const, clusterBits, refcountBits, lazyRefcounts: false, virtualSize });

describe('QEMU reproduction script', () => {
  it('is plain qemu-img/qemu-io and shows the stale tail after shrink and grow (a failed read -P and compare)', async () => {
    const { script, output } = await runScript({
      options: v3(16, 16, 131072),
      steps: [
        { kind: 'write', offset: 0, length: 131072, pattern: 171 },
        { kind: 'resize', size: 66048 },
        { kind: 'resize', size: 131072 },
        { kind: 'read', offset: 66048, length: 512 },
      ],
    });
    expect(script).toContain("qemu-img create -q -f qcow2 -o cluster_size=65536,refcount_bits=16,compat=1.1,lazy_refcounts=off \"$IMG\" 131072");
    expect(script).toContain("qemu-io -c 'write -P 0xab 0x0 0x20000' -c 'truncate 0x10200' -c 'truncate 0x20000' -c 'read -P 0x0 0x10200 0x200' \"$IMG\"");
    expect(script).not.toContain('<seed');
    expect(output).toContain('Pattern verification failed at offset 66048, 512 bytes');
    expect(output).toMatch(/Content mismatch at offset 66048!\nexit 1/);
  });

  it('creates a zstd image with compression_type=zstd, and the script runs clean on QEMU', async () => {
    const { script, output } = await runScript({
      options: { ...v3(12, 16, 65536), compressionType: 'zstd' },
      steps: [{ kind: 'writeCompressed', offset: 0, length: 4096, pattern: 0x11 }, { kind: 'read', offset: 0, length: 4096 }],
    });
    expect(script).toContain('lazy_refcounts=off,compression_type=zstd "$IMG" 65536');
    expect(output).not.toContain('Pattern verification failed');
  });

  it('shows the leak of a snapshot refused for refcount overflow (qemu-img check exits 3)', async () => {
    const { output } = await runScript({
      options: v3(9, 1, 1048576),
      steps: [
        { kind: 'write', offset: 0, length: 4096, pattern: 1 },
        { kind: 'snapshotCreate', name: 's1' },
        { kind: 'reopen' },
      ],
    });
    expect(output).toMatch(/Leaked cluster \d+ refcount=1 reference=0/);
    expect(output).toMatch(/exit 3/);
  });

  it('writes seeded bytes from saved files, and QEMU then holds exactly the model\'s disk', async () => {
    const { script, output } = await runScript({
      options: { version: 2, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 },
      steps: [
        { kind: 'write', offset: 1000, length: 9000, pattern: 0, seed: 3 },
        { kind: 'snapshotCreate', name: 'a' },
        { kind: 'writeZeroes', offset: 4096, length: 4096, unmap: true },
        { kind: 'discard', offset: 0, length: 4096 },
        { kind: 'snapshotRevert', name: 'a' },
        { kind: 'read', offset: 1000, length: 100 },
        { kind: 'flush' },
      ],
    });
    expect(script).toContain("qemu-io -c 'write -s data-1.bin 0x3e8 0x2328' \"$IMG\"");
    expect(script).toContain('# step 6: the model expects the bytes of expected-6.bin');
    expect(output).toMatch(/No errors were found on the image\.\n[^]*?\nexit 0\n/);
    expect(output).toMatch(/Images are identical\.\nexit 0/);
  });
});
