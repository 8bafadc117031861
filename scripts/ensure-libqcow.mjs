#!/usr/bin/env node
// Makes sure libyal's libqcow and its Python binding are there before the tests
// run: the libqcow reader gate (test/properties/libqcow.test.ts) runs the
// adapter adapters/libqcow/qcow2_verify_libqcow.py with Debian's own
// interpreter, /usr/bin/python3, the one python3-libqcow installs its module
// (pyqcow) for. As root on Debian/Ubuntu it installs the package itself (after
// `apt-get update`, which a fresh machine needs) and says so, as
// ensure-qemu.mjs does for qemu-utils; elsewhere it says how and fails, so a
// missing reader never reports green.
import { spawnSync } from 'node:child_process';

const python = '/usr/bin/python3';
const present = () => spawnSync(python, ['-c', 'import pyqcow'], { stdio: 'ignore' }).status === 0;

if (present()) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (isRoot && hasApt) {
  console.error(`qcow2-verify: ${python} cannot import pyqcow; installing Debian package python3-libqcow (apt-get update, then apt-get install -y python3-libqcow) for the libqcow reader gate`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'python3-libqcow']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`qcow2-verify: 'apt-get ${args.join(' ')}' failed with exit ${r.status}`);
      process.exit(1);
    }
  }
  if (present()) process.exit(0);
}
console.error(
  `qcow2-verify: ${python} cannot import pyqcow. The libqcow reader gate needs Debian's python3-libqcow:\n` +
    '  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y python3-libqcow',
);
process.exit(1);
