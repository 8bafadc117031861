// What qemu-img check says about each kind of damage: QEMU's verdicts documented
// as executable records (see kinds/*.ts). Fails if the catalogue and QEMU part ways.
import { describe, expect, it } from 'vitest';
import { qemuImgCheckBytes } from '../../oracle/index.js';
import { damaged } from './apply.js';
import { baseNames, basesForThisFile } from './base-images.js';
import { damageKinds } from './kinds/index.js';

const bases = basesForThisFile();

describe('damage catalogue', () => {
  it('has at least 30 kinds with unique names, on every base', () => {
    expect(damageKinds.length).toBeGreaterThanOrEqual(30);
    expect(new Set(damageKinds.map((kind) => kind.name)).size).toBe(damageKinds.length);
    expect(new Set(damageKinds.map((kind) => kind.base))).toEqual(new Set(baseNames));
  });

  it.each(baseNames)('base image %s is clean before any damage', async (name) => {
    const bytes = bases().get(name);
    expect(bytes).toBeDefined();
    expect(await qemuImgCheckBytes(bytes ?? new Uint8Array())).toMatchObject({ verdict: 'clean', corruptions: 0, leaks: 0 });
  });

  it.each(damageKinds.map((kind) => [kind.name, kind] as const))('qemu-img check on %s', async (_name, kind) => {
    const image = damaged(kind, bases());
    expect(image).not.toEqual(bases().get(kind.base)); // the damage did something
    const result = await qemuImgCheckBytes(image, { name: `${kind.name}.qcow2`, ...(kind.siblings === undefined ? {} : { siblings: kind.siblings }) });
    const { verdict, corruptions, leaks, checkErrors } = result;
    expect({ verdict, corruptions, leaks, checkErrors }, result.messages.slice(0, 5).join('\n')).toEqual(kind.qemu);
  });
});
