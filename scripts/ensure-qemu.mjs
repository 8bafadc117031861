#!/usr/bin/env node
// Makes sure QEMU's tools (qemu-img, qemu-io) are on PATH before the gate or the
// tests run: they are the external judges, and a missing judge must never
// report green. As root on Debian/Ubuntu it installs qemu-utils itself (after
// `apt-get update`, which a fresh machine needs); elsewhere it says how and fails.
import { spawnSync } from 'node:child_process';

const tools = ['qemu-img', 'qemu-io'];
const missing = () => tools.filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status !== 0);

let absent = missing();
if (absent.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (isRoot && hasApt) {
  console.error(`qcow2-verify: ${absent.join(', ')} not found; installing Debian package qemu-utils (apt-get update, then apt-get install -y qemu-utils)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'qemu-utils']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`qcow2-verify: 'apt-get ${args.join(' ')}' failed with exit ${r.status}`);
      process.exit(1);
    }
  }
  absent = missing();
  if (absent.length === 0) process.exit(0);
}
console.error(
  `qcow2-verify: ${absent.join(', ')} not found on PATH. They come with QEMU's tools:\n` +
    '  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y qemu-utils\n' +
    '  Fedora/RHEL:   sudo dnf install -y qemu-img\n' +
    '  macOS:         brew install qemu',
);
process.exit(1);
