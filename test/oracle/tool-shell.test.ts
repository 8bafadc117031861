// The tool shell runs programs for the oracle: exact arguments, separate
// stdout and stderr, the exit status, and concurrent runs kept apart.
import { describe, expect, it } from 'vitest';
import { runInToolShell, shellQuote } from '../../oracle/tool-shell.js';

describe('tool shell', () => {
  it('passes arguments verbatim and returns stdout, stderr and the exit code', async () => {
    const arg = `it's "quoted" $HOME \`x\` \\ ; & |\nsecond line`;
    const run = await runInToolShell('/bin/sh', ['-c', 'printf "%s" "$1"; printf err >&2; exit 3', 'sh', arg]);
    expect(run).toEqual({ status: 3, stdout: arg, stderr: 'err' });
  });

  it('reports a killed program as 128 + the signal', async () => {
    expect((await runInToolShell('/bin/sh', ['-c', 'kill -9 $$'])).status).toBe(137);
  });

  it('keeps concurrent runs apart', async () => {
    const runs = await Promise.all(
      Array.from({ length: 12 }, (_, i) => runInToolShell('/bin/sh', ['-c', `sleep 0.0${i % 3}; printf ${i}; exit ${i}`])),
    );
    expect(runs.map((r) => [r.status, r.stdout])).toEqual(Array.from({ length: 12 }, (_, i) => [i, String(i)]));
  });

  it('quotes a word for sh', () => {
    expect(shellQuote("a b'c")).toBe(`'a b'\\''c'`);
  });
});
