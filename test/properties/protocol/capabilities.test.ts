// The handshake's declaration: parsed strictly (the first bad field named), and
// turned into the only sequences the gate may draw.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sequence } from '../../../properties/arbitraries/sequence.js';
import { drawsChains, leftOut, parseCapabilities, sequenceConstraintsFor } from '../../../properties/protocol/capabilities.js';
import { AnswerFormatError, parseAnswer, rebaseRequest, requestForOp } from '../../../properties/protocol/messages.js';
import { narrowSequence } from '../../../properties/implementation.js';

const reader = {
  protocol: 1,
  name: 'r',
  version: '1',
  mode: 'read-only',
  versions: [3],
  clusterBitsMin: 12,
  clusterBitsMax: 16,
  refcountBits: [16, 64],
  features: [],
};

describe('capabilities', () => {
  it('names the first bad field of a handshake', () => {
    expect(() => parseCapabilities({ ...reader, protocol: 2 })).toThrow('handshake field protocol is 2, expected 1 (this gate speaks protocol version 1)');
    expect(() => parseCapabilities({ ...reader, clusterBitsMax: 11 })).toThrow('handshake field clusterBitsMax is 11, expected an integer in 12..21');
    expect(() => parseCapabilities({ ...reader, refcountBits: [3] })).toThrow(AnswerFormatError);
    expect(() => parseCapabilities({ ...reader, features: ['dedup'] })).toThrow('handshake field features is ["dedup"]');
    expect(() => parseCapabilities({ ...reader, mode: 'read-write', ops: ['flush'] })).toThrow('handshake field ops lacks write');
    expect(parseCapabilities(reader)).toMatchObject({ mode: 'read-only', ops: [] });
  });

  it('a reader without `compressed` gets images of its versions, sizes and widths, and no compressed clusters', () => {
    const caps = parseCapabilities(reader);
    const constraints = narrowSequence({}, sequenceConstraintsFor(caps));
    for (const s of fc.sample(sequence(constraints), { seed: 1, numRuns: 200 })) {
      expect(s.options.version).toBe(3);
      expect(s.options.clusterBits).toBeGreaterThanOrEqual(12);
      expect(s.options.clusterBits).toBeLessThanOrEqual(16);
      expect([16, 64]).toContain(s.options.refcountBits);
      expect(s.swarm.writeCompressed).toBe(0);
      expect([...s.commands].every((c) => !c.toString().startsWith('write -c'))).toBe(true);
    }
    expect(leftOut(caps)).toEqual([
      'version 2 images',
      'cluster bits outside 12..16',
      'refcount widths 1, 2, 4, 8, 32',
      'ops writeCompressed',
      'features not declared: compressed, extended-l2, zstd',
      'features the gate does not draw yet: backing, external-data',
    ]);
  });

  it('a writer gets backing chains when it declares the backing feature and the three chain ops', () => {
    const writer = { ...reader, mode: 'read-write', versions: [2, 3], ops: ['write', 'createOverlay', 'rebase', 'commit'], features: ['backing'] };
    const caps = parseCapabilities(writer);
    expect(drawsChains(caps)).toBe(true);
    expect(sequenceConstraintsFor(caps).chains).toBe(true);
    expect(leftOut(caps).join('; ')).not.toMatch(/backing/);
    const noCommit = parseCapabilities({ ...writer, ops: ['write', 'createOverlay', 'rebase'] });
    expect(sequenceConstraintsFor(noCommit).chains).toBe(false);
    expect(leftOut(noCommit)).toContain('backing chains (ops not declared: commit)');
    expect(leftOut(parseCapabilities({ ...writer, features: [] }))).toContain('features not declared: compressed, backing, extended-l2, zstd');
    // a reader never gets chains: they are not drawn for it, whatever it declares
    expect(drawsChains(parseCapabilities({ ...reader, features: ['backing'] }))).toBe(false);
  });

  it('a writer gets only the ops it declares', () => {
    const caps = parseCapabilities({ ...reader, mode: 'read-write', versions: [2, 3], ops: ['write', 'discard'], features: ['compressed'] });
    for (const s of fc.sample(sequence(narrowSequence({}, sequenceConstraintsFor(caps))), { seed: 2, numRuns: 100 })) {
      const kinds = Object.entries(s.swarm).filter(([, w]) => w > 0).map(([k]) => k);
      expect(kinds.every((k) => ['write', 'discard', 'read'].includes(k)), kinds.join(' ')).toBe(true);
    }
  });
});

describe('messages', () => {
  it('every model op travels as a request of its own kind; data as base64, or through a file above 1 MiB', async () => {
    const spill = async () => '/tmp/spilled';
    expect(await requestForOp({ kind: 'write', offset: 512, length: 3, pattern: 0xab }, spill)).toEqual({ op: 'write', offset: 512, length: 3, data: 'q6ur' });
    expect(await requestForOp({ kind: 'write', offset: 0, length: 2 ** 20 + 1, pattern: 1 }, spill)).toEqual({ op: 'write', offset: 0, length: 2 ** 20 + 1, dataFile: '/tmp/spilled' });
    expect(await requestForOp({ kind: 'snapshotRevert', name: '1' }, spill)).toEqual({ op: 'snapshotRevert', name: '1' });
    expect(await requestForOp({ kind: 'writeZeroes', offset: 0, length: 512, unmap: true }, spill)).toEqual({ op: 'writeZeroes', offset: 0, length: 512, unmap: true });
    expect(await requestForOp({ kind: 'commit' }, spill)).toEqual({ op: 'commit' });
    // rebase names a file of the chain the driver laid out
    expect(rebaseRequest({ name: 'layer-2.raw', format: 'raw' }, false)).toEqual({ op: 'rebase', backingFile: 'layer-2.raw', backingFormat: 'raw', unsafe: false });
    expect(rebaseRequest(undefined, true)).toEqual({ op: 'rebase', backingFile: null, unsafe: true });
    await expect(requestForOp({ kind: 'rebase', depth: 1, unsafe: true }, spill)).rejects.toThrow('not one request');
  });

  it('an answer is an object with an integer id and a boolean ok; a refusal has a known error code', () => {
    expect(parseAnswer('{"id":3,"ok":false,"error":"unknown-snapshot","message":"no x"}')).toEqual({ id: 3, ok: false, error: 'unknown-snapshot', message: 'no x' });
    expect(() => parseAnswer('[1]')).toThrow('not a JSON object');
    expect(() => parseAnswer('{"id":"3","ok":true}')).toThrow('field id is "3", expected an integer');
    expect(() => parseAnswer('{"id":3,"ok":"yes"}')).toThrow('field ok is "yes"');
    expect(() => parseAnswer('{"id":3,"ok":false,"error":"EIO"}')).toThrow('field error is "EIO", expected one of out-of-range,');
  });
});
