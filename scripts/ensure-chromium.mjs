#!/usr/bin/env node
// Makes sure Debian's Chromium is at /usr/bin/chromium before the tests run:
// the HTML report's tests drive it through playwright-core, which downloads no
// browser. As root on Debian/Ubuntu it installs the package itself (after
// `apt-get update`) and says so, as ensure-qemu.mjs does for qemu-utils;
// elsewhere it says how and fails, so a missing browser never reports green.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const chromium = '/usr/bin/chromium';
if (existsSync(chromium)) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (isRoot && hasApt) {
  console.error(`qcow2-verify: ${chromium} not found; installing Debian package chromium (apt-get update, then apt-get install -y chromium) for the HTML report's browser tests`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'chromium']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`qcow2-verify: 'apt-get ${args.join(' ')}' failed with exit ${r.status}`);
      process.exit(1);
    }
  }
  if (existsSync(chromium)) process.exit(0);
}
console.error(
  `qcow2-verify: ${chromium} not found. The HTML report's tests need Debian's Chromium:\n` +
    '  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y chromium',
);
process.exit(1);
