// Writing a case as text: a fixed, readable key order, and one line per op,
// mutation or patch so a reviewer reads the reproduction like a script and
// diffs stay small. parseCase(JSON.parse(serializeCase(c))) gives c back.
import type { CorpusCase } from './types.js';

const keyOrder = [
  'format',
  'kind',
  'status',
  'description',
  'implementation',
  'adapter',
  'statuses',
  'property',
  'signature',
  'finding',
  'message',
  'verdicts',
  'options',
  'ops',
  'base',
  'mutations',
  'patches',
  'truncateTo',
  'seed',
  'path',
  'found',
];

/** Arrays whose items are short flat objects: written one item per line. */
const oneItemPerLine = new Set(['ops', 'mutations', 'patches']);

function render(key: string, value: unknown, indent: string): string {
  if (Array.isArray(value) && oneItemPerLine.has(key)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => `${indent}  ${JSON.stringify(v)}`).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{}';
    const lines = entries.map(([k, v]) => `${indent}  ${JSON.stringify(k)}: ${render(k, v, `${indent}  `)}`);
    return `{\n${lines.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

export function serializeCase(c: CorpusCase): string {
  const record = c as unknown as Record<string, unknown>;
  const known = keyOrder.filter((k) => record[k] !== undefined);
  const extra = Object.keys(record).filter((k) => !keyOrder.includes(k) && record[k] !== undefined);
  const ordered: Record<string, unknown> = {};
  for (const k of [...known, ...extra]) ordered[k] = record[k];
  return `${render('', ordered, '')}\n`;
}
