// Does the model's checker classify damage as qemu-img check does? For every kind
// in the catalogue: same class (clean / leaks only / corruptions / cannot check),
// and the same corruption and leak counts whenever both sides produced counts
// (qemu-img prints no counts when it cannot open the image or its check fails;
// the model says so with `failure`).
import { describe, expect, it } from 'vitest';
import { bufferReader, checkImage, type CheckReport } from '../../model/index.js';
import { qemuImgCheckBytes, type QemuCheckResult } from '../../oracle/index.js';
import { damaged } from './apply.js';
import { basesForThisFile } from './base-images.js';
import { damageKinds, type DamageKind } from './kinds/index.js';

/**
 * Deliberate, documented differences between the model's checker and QEMU, by kind
 * name. Each entry says what the model reports instead and why the model is right.
 */
const expectedDifferences: ReadonlyMap<string, { readonly model: Pick<CheckReport, 'verdict'>; readonly reason: string }> = new Map();

const bases = basesForThisFile();

function summary(report: { readonly verdict: string; readonly corruptions: number; readonly leaks: number }): string {
  return `${report.verdict} (corruptions ${report.corruptions}, leaks ${report.leaks})`;
}

function explain(kind: DamageKind, qemu: QemuCheckResult, model: CheckReport): string {
  return [
    `${kind.name}: ${kind.description}`,
    `qemu-img check: ${summary(qemu)}; ${qemu.messages.slice(0, 4).join(' | ')}`,
    `model checker:  ${summary(model)}; ${model.failure ?? model.messages.slice(0, 4).join(' | ')}`,
    ...(kind.why === undefined ? [] : [`QEMU's reasoning: ${kind.why}`]),
  ].join('\n');
}

describe('model checker agrees with qemu-img check on damaged images', () => {
  it.each(damageKinds.map((kind) => [kind.name, kind] as const))('%s', async (_name, kind) => {
    const image = damaged(kind, bases());
    const qemu = await qemuImgCheckBytes(image, { name: `${kind.name}.qcow2`, ...(kind.siblings === undefined ? {} : { siblings: kind.siblings }) });
    const model = checkImage(bufferReader(image));
    const difference = expectedDifferences.get(kind.name);
    if (difference !== undefined) {
      expect(model.verdict, `${difference.reason}\n${explain(kind, qemu, model)}`).toBe(difference.model.verdict);
      return;
    }
    expect(model.verdict, explain(kind, qemu, model)).toBe(qemu.verdict);
    const bothCounted = qemu.raw !== undefined && model.failure === undefined;
    if (bothCounted) {
      expect({ corruptions: model.corruptions, leaks: model.leaks }, explain(kind, qemu, model)).toEqual({
        corruptions: qemu.corruptions,
        leaks: qemu.leaks,
      });
    }
  });

  it('keeps every expected difference tied to a kind that exists', () => {
    const names = new Set(damageKinds.map((kind) => kind.name));
    for (const name of expectedDifferences.keys()) expect(names).toContain(name);
  });
});
