// Registration of `qcow2-verify adapter`: our engine speaking the adapter
// protocol on stdin/stdout (docs/protocol.md), so that the gate judges it as it
// judges any other program: `gate --impl 'cmd:qcow2-verify adapter'`. Kept
// light; the engine loads only when the command runs.
import type { Command } from 'commander';

export function registerAdapter(program: Command): void {
  program
    .command('adapter')
    .description("serve our engine over the adapter protocol on stdin/stdout (docs/protocol.md): gate --impl 'cmd:qcow2-verify adapter'")
    .action(async () => {
      const [{ serveEngineAdapter }, { toolVersion }] = await Promise.all([import('../adapter/engine-adapter.js'), import('../../corpus/provenance.js')]);
      const version = (await toolVersion()).split(' ')[1] ?? 'unknown';
      await serveEngineAdapter(version, process.stdin, process.stdout);
    });
}
