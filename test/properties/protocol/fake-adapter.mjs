// A misbehaving implementation for the protocol tests: it shakes hands as a
// read-write implementation, has qemu-img create the image (so that the gate
// finds one), and at its first `write` does what its argument says.
// `bad-hello` fails the handshake itself.
//   crash        logs a line to stderr and exits with status 3
//   garbage      prints a line that is not JSON
//   out-of-turn  answers with the wrong id
//   hang         never answers
//   failed       answers error "failed" (an I/O error of its own)
//   bad-hello    declares protocol version 99
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const mode = process.argv[2];
const hello = {
  protocol: mode === 'bad-hello' ? 99 : 1,
  name: 'fake',
  version: mode,
  mode: 'read-write',
  versions: [3],
  clusterBitsMin: 16,
  clusterBitsMax: 16,
  refcountBits: [16],
  ops: ['write'],
  features: [],
};
const say = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const r = JSON.parse(line);
  if (r.op === 'hello') say({ id: r.id, ok: true, ...hello });
  else if (r.op === 'create') {
    const o = r.options;
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${2 ** o.clusterBits},lazy_refcounts=${o.lazyRefcounts ? 'on' : 'off'}`, r.path, String(o.virtualSize)]);
    say({ id: r.id, ok: true });
  }
  else if (r.op === 'read' && r.toFile !== undefined) {
    writeFileSync(r.toFile, Buffer.alloc(r.length));
    say({ id: r.id, ok: true });
  } else if (r.op !== 'write') say({ id: r.id, ok: true, ...(r.op === 'read' ? { data: Buffer.alloc(r.length).toString('base64') } : {}) });
  else if (mode === 'crash') {
    process.stderr.write('fake: about to crash\n');
    process.exit(3);
  } else if (mode === 'garbage') process.stdout.write('this is not JSON\n');
  else if (mode === 'out-of-turn') say({ id: r.id + 7, ok: true });
  else if (mode === 'failed') say({ id: r.id, ok: false, error: 'failed', message: 'EIO on the fake disk' });
  else if (mode === 'hang') continue;
  else say({ id: r.id, ok: true });
  if (r.op === 'quit') process.exit(0);
}
