import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gatePropertyNamesForHelp } from '../../../cli/commands/gate-command.js';
import { propertyNames } from '../../../properties/index.js';
import { qemuToolVariables } from '../../../oracle/index.js';
import { exitCodes } from '../../../cli/exit-codes.js';
import { runCli } from '../run-cli.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Static value imports and re-exports of a source file (type-only ones load nothing at run time). */
function valueImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const match of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^'";]*?\s+from\s+)?'([^']+)'/gms)) {
    if (match[1] !== undefined) out.push(match[1]);
  }
  return out;
}

/** Every project file and package reachable from `entry` through static value imports. */
function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    const key = relative(root, file);
    if (seen.has(key)) return;
    seen.add(key);
    for (const spec of valueImports(file)) {
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else seen.add(spec);
    }
  };
  visit(join(root, entry));
  return seen;
}

describe('command registration stays light', () => {
  it('registering every command loads no property suite, corpus, oracle, model checker or fast-check/execa', () => {
    const graph = [...staticGraph('cli/commands/index.ts')];
    const heavy = graph.filter((m) =>
      /^(corpus|oracle|model)\//.test(m) || (m.startsWith('properties/') && m !== 'properties/driver.ts') || /^(fast-check|execa|@fast-check)/.test(m),
    );
    expect(heavy).toEqual([]);
    // The walker does see through imports: the registry reaches the engine's commands.
    expect(graph).toContain('cli/commands/convert.ts');
    expect(graph).toContain('impl/index.ts');
  });

  it('the light gate help lists exactly the registry\'s properties', async () => {
    expect([...gatePropertyNamesForHelp]).toEqual(propertyNames);
    const help = await runCli(['gate', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(`run one property: ${propertyNames.join(' | ')}`);
  });

  it('gate, fuzz and replay take --qemu-img and --qemu-io, whose help names the oracle\'s variables', async () => {
    for (const command of ['gate', 'fuzz', 'replay']) {
      const help = (await runCli([command, '--help'])).stdout.replace(/\s+/g, ' ');
      expect(help).toContain(`--qemu-img <path> the qemu-img binary the oracle runs, e.g. a build tree's (default: $${qemuToolVariables['qemu-img']},`);
      expect(help).toContain(`--qemu-io <path> the qemu-io binary the oracle runs (default: $${qemuToolVariables['qemu-io']},`);
    }
  });

  it('lazily loaded commands still run and refuse bad options as before', async () => {
    expect((await runCli(['gate', '--impl', 'nope'])).exitCode).toBe(exitCodes.usage);
    expect((await runCli(['check', '--output', 'xml', 'x.qcow2'])).exitCode).toBe(exitCodes.usage);
    expect((await runCli(['replay', '--impl', 'nope', 'x.json'])).exitCode).toBe(exitCodes.usage);
  });
});
