// Snapshot lookup as qemu-img 7.2 does it, per command: `-a` takes an ID first,
// then a name; `-d` takes a name only. Each case runs the same ops on the model
// and on qemu-img / qemu-io and compares each op's success, the snapshot table
// (IDs and names in table order) and which snapshot's data the guest sees.
import { describe, expect, it } from 'vitest';
import { findSnapshotByIdOrName, findSnapshotByName, initialState, read, step, type ImageOptions, type Op } from '../../model/index.js';
import { qemuImgInfo } from '../../oracle/index.js';
import { join, qemuApply, qemuCreate, withTempDir } from './qemu.js';
import { execa } from 'execa';

const options: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 };

/** Write `pattern` to the first sector, then snapshot it as `name`: each snapshot's data names it. */
const snap = (name: string, pattern: number): Op[] => [
  { kind: 'write', offset: 0, length: 512, pattern },
  { kind: 'snapshotCreate', name },
];
const scratch: Op = { kind: 'write', offset: 0, length: 512, pattern: 0xee };

interface Expected {
  readonly ok: boolean;
  readonly table: string[];
  readonly firstByte: number;
}

function runModel(ops: readonly Op[]): Expected & { oks: boolean[] } {
  let state = initialState(options);
  const oks: boolean[] = [];
  for (const op of ops) {
    const r = step(state, op);
    oks.push(r.outcome.ok);
    state = r.state;
  }
  return {
    oks,
    ok: oks.at(-1) ?? true,
    table: state.snapshots.map((s) => `${s.id}:${s.name}`),
    firstByte: read(state, 0, 1)[0] ?? -1,
  };
}

async function runQemu(ops: readonly Op[]): Promise<Expected & { oks: boolean[] }> {
  return withTempDir(async (dir) => {
    const file = join(dir, 'a.qcow2');
    await qemuCreate(file, options);
    const oks = await qemuApply(file, ops);
    const info = await qemuImgInfo(file);
    const dump = await execa('qemu-io', ['-f', 'qcow2', '-c', 'read -v 0 1', file]);
    const firstByte = Number.parseInt(/^0{8}:\s+([0-9a-f]{2})/m.exec(dump.stdout)?.[1] ?? 'x', 16);
    return { oks, ok: oks.at(-1) ?? true, table: info.snapshots.map((s) => `${s.id}:${s.name}`), firstByte };
  });
}

// The inputs and the rest of the kind: IDs as names, another
// snapshot's ID, duplicate names, the empty name. `want` is what qemu-img 7.2.22
// did when these were measured; the test runs it again.
const cases: ReadonlyArray<{ name: string; ops: Op[]; want: Expected }> = [
  {
    name: '-d 1 with snapshots base (ID 1) and after (ID 2): no snapshot is *named* 1, so nothing is deleted',
    ops: [...snap('base', 0x11), ...snap('after', 0x22), { kind: 'snapshotDelete', name: '1' }],
    want: { ok: false, table: ['1:base', '2:after'], firstByte: 0x22 },
  },
  {
    name: '-a 1 with the same snapshots: ID 1 is base',
    ops: [...snap('base', 0x11), ...snap('after', 0x22), scratch, { kind: 'snapshotRevert', name: '1' }],
    want: { ok: true, table: ['1:base', '2:after'], firstByte: 0x11 },
  },
  {
    name: '-d 2 with a snapshot named 2 whose ID is 1: the name wins (ID 2 stays)',
    ops: [...snap('2', 0x11), ...snap('x', 0x22), { kind: 'snapshotDelete', name: '2' }],
    want: { ok: true, table: ['2:x'], firstByte: 0x22 },
  },
  {
    name: '-a 2 with a snapshot named 2 whose ID is 1: the ID wins (x, ID 2, is applied)',
    ops: [...snap('2', 0x11), ...snap('x', 0x22), scratch, { kind: 'snapshotRevert', name: '2' }],
    want: { ok: true, table: ['1:2', '2:x'], firstByte: 0x22 },
  },
  {
    name: '-a 3 where no ID or name is 3 fails',
    ops: [...snap('2', 0x11), ...snap('x', 0x22), scratch, { kind: 'snapshotRevert', name: '3' }],
    want: { ok: false, table: ['1:2', '2:x'], firstByte: 0xee },
  },
  {
    name: "duplicate and empty names: -c '' twice makes IDs 1 and 2; -d '' deletes the first, -a '' applies the first left",
    ops: [...snap('', 0x11), ...snap('', 0x22), ...snap('', 0x33), { kind: 'snapshotDelete', name: '' }, scratch, { kind: 'snapshotRevert', name: '' }],
    want: { ok: true, table: ['2:', '3:'], firstByte: 0x22 },
  },
  {
    name: '-c 3 after three snapshots gets ID 4; -d 3 then deletes it (by name), not ID 3',
    ops: [...snap('s', 0x11), ...snap('s', 0x22), ...snap('s', 0x33), ...snap('3', 0x44), { kind: 'snapshotDelete', name: '3' }],
    want: { ok: true, table: ['1:s', '2:s', '3:s'], firstByte: 0x44 },
  },
];

describe('snapshot lookup: the model follows qemu-img 7.2 per command', () => {
  it('-a looks up an ID first, then the first name; -d looks up the first name only', () => {
    let state = initialState(options);
    for (const op of [...snap('2', 1), ...snap('x', 2), ...snap('x', 3)]) state = step(state, op).state;
    expect(findSnapshotByIdOrName(state, '2')).toBe(1);
    expect(findSnapshotByName(state, '2')).toBe(0);
    expect(findSnapshotByIdOrName(state, 'x')).toBe(1);
    expect(findSnapshotByName(state, 'x')).toBe(1);
    expect(findSnapshotByName(state, '3')).toBe(-1);
    expect(findSnapshotByIdOrName(state, '3')).toBe(2);
  });

  for (const c of cases) {
    it(c.name, async () => {
      const model = runModel(c.ops);
      expect({ ok: model.ok, table: model.table, firstByte: model.firstByte }).toEqual(c.want);
      const qemu = await runQemu(c.ops);
      expect({ ok: qemu.ok, table: qemu.table, firstByte: qemu.firstByte }).toEqual(c.want);
      expect(model.oks).toEqual(qemu.oks);
    });
  }
});
