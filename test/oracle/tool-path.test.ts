// QEMU from a build tree: QEMU_IMG / QEMU_IO (and the CLI flags that set them)
// decide which binaries the oracle runs. Wrappers in a temp directory stand for
// a developer's build: they log every call and answer --version as a
// development build would, then exec the real tool, so a test can see that the
// wrapper, and not the qemu-img on PATH, ran and was named in every report.
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseFuzzOptions, runFuzz } from '../../cli/commands/fuzz.js';
import { parseGateOptions, runGate } from '../../cli/commands/gate.js';
import { runReplay } from '../../cli/commands/replay.js';
import { CliError } from '../../cli/fatal.js';
import { provenance } from '../../corpus/provenance.js';
import { QemuMissingError, openQemuIo, qemuImgCreate, qemuImgInfo, qemuVersion, resolveTool, withTempDir } from '../../oracle/index.js';
import { runCli } from '../cli/run-cli.js';

const buildVersion = '9.9.90 (v9.9.0-42-gdeadbee)';
let realImg = '';
let realIo = '';

beforeAll(async () => {
  realImg = (await resolveTool('qemu-img')).path;
  realIo = (await resolveTool('qemu-io')).path;
});

const saved = { QEMU_IMG: process.env.QEMU_IMG, QEMU_IO: process.env.QEMU_IO };
afterEach(() => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

async function script(path: string, body: string): Promise<string> {
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** A wrapper named `tool` in `dir` that logs its arguments to `log` and execs `real` (its --version claims a development build). */
function wrapper(dir: string, tool: string, real: string, log: string): Promise<string> {
  return script(
    join(dir, tool),
    [`echo "${tool} $*" >> '${log}'`, `if [ "$1" = --version ]; then echo '${tool} version ${buildVersion}'; echo 'Copyright (c) 2003-2026 Fabrice Bellard and the QEMU Project developers'; exit 0; fi`, `exec '${real}' "$@"`].join('\n'),
  );
}

describe('QEMU_IMG and QEMU_IO', () => {
  it('run the named binaries for qemu-img commands and qemu-io sessions, and report their versions and paths', async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, 'calls.log');
      process.env.QEMU_IMG = await wrapper(dir, 'qemu-img', realImg, log);
      process.env.QEMU_IO = await wrapper(dir, 'qemu-io', realIo, log);
      expect(await qemuVersion()).toEqual({ qemuImg: buildVersion, qemuIo: buildVersion, qemuImgPath: join(dir, 'qemu-img'), qemuIoPath: join(dir, 'qemu-io') });
      const image = join(dir, 'a.qcow2');
      await qemuImgCreate(image, { size: 1 << 20 });
      expect((await qemuImgInfo(image)).virtualSize).toBe(1 << 20);
      const session = await openQemuIo(image);
      await session.close();
      const calls = await readFile(log, 'utf8');
      expect(calls).toMatch(/^qemu-img create /m);
      expect(calls).toMatch(/^qemu-img info /m);
      expect(calls).toMatch(/^qemu-io .*a\.qcow2$/m);
      const found = await provenance('qcow2-verify fuzz', new Date('2026-11-30T00:00:00Z'));
      expect(found).toMatchObject({ qemu: buildVersion, qemuIo: buildVersion });
    });
  });

  it('a relative path is taken from the working directory; unset or empty falls back to PATH', async () => {
    process.env.QEMU_IMG = '';
    expect((await resolveTool('qemu-img')).path).toBe(realImg);
    expect((await resolveTool('qemu-img')).variable).toBeUndefined();
    await withTempDir(async (dir) => {
      const log = join(dir, 'calls.log');
      await wrapper(dir, 'qemu-img', realImg, log);
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        process.env.QEMU_IMG = './qemu-img';
        expect(await resolveTool('qemu-img')).toMatchObject({ path: join(dir, 'qemu-img'), variable: 'QEMU_IMG', version: buildVersion });
      } finally {
        process.chdir(cwd);
      }
    });
  });

  it('a path with no executable, a program that is not QEMU and the other QEMU tool are clear errors naming the variable and the path', async () => {
    await withTempDir(async (dir) => {
      process.env.QEMU_IMG = join(dir, 'nothing-here');
      await expect(qemuVersion()).rejects.toThrow(`QEMU_IMG=${join(dir, 'nothing-here')}: no executable file there`);
      const notQemu = await script(join(dir, 'not-qemu'), 'echo "hello from a shell script"');
      process.env.QEMU_IMG = notQemu;
      const error = await qemuImgInfo(join(dir, 'x.qcow2')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QemuMissingError);
      expect((error as QemuMissingError).message).toBe(
        `QEMU_IMG=${notQemu}: not qemu-img: \`${notQemu} --version\` exited 0 and printed "hello from a shell script", not "qemu-img version …"`,
      );
      process.env.QEMU_IMG = realIo;
      await expect(qemuVersion()).rejects.toThrow(/^QEMU_IMG=.*qemu-io: not qemu-img: .* printed "qemu-io version /);
      delete process.env.QEMU_IMG;
      process.env.QEMU_IO = await script(join(dir, 'fails'), 'echo "segfault" >&2; exit 139');
      await expect(openQemuIo(join(dir, 'x.qcow2'))).rejects.toThrow(/^QEMU_IO=.*fails: not qemu-io: .* exited 139 and printed "segfault"/);
    });
  });
});

describe('gate, fuzz and replay with another QEMU', () => {
  it('names the binaries that ran in its summary, JSON and JUnit, in worker threads too', async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, 'calls.log');
      process.env.QEMU_IMG = await wrapper(dir, 'qemu-img', realImg, log);
      process.env.QEMU_IO = await wrapper(dir, 'qemu-io', realIo, log);
      const lines: string[] = [];
      const raw = { seed: '4', runs: '1', property: 'qemuJudges', workers: '2', json: join(dir, 'r.json'), junit: join(dir, 'r.xml'), reproDir: join(dir, 'repro') };
      expect(await runGate(parseGateOptions(raw, () => 1), (l) => lines.push(l))).toBe(0);
      expect(lines[2]).toBe(`qemu: qemu-img ${buildVersion} at ${join(dir, 'qemu-img')}, qemu-io ${buildVersion} at ${join(dir, 'qemu-io')}`);
      // qemuJudges ran qemu-img check, compare and map through the wrapper, from a worker thread
      expect(await readFile(log, 'utf8'), lines.join('\n')).toMatch(/^qemu-img check /m);
      const json = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as Record<string, unknown>;
      expect(json).toMatchObject({ qemu: '9.9.90', qemuImg: { path: join(dir, 'qemu-img'), version: buildVersion }, qemuIo: { path: join(dir, 'qemu-io'), version: buildVersion } });
      const xml = await readFile(join(dir, 'r.xml'), 'utf8');
      expect(xml).toContain(`<property name="qemu-img" value="${buildVersion} (${join(dir, 'qemu-img')})"/>`);
      expect(xml).toContain(`<property name="qemu-io" value="${buildVersion} (${join(dir, 'qemu-io')})"/>`);
    });
  });

  it('fuzz and replay name the binaries that ran', async () => {
    await withTempDir(async (dir) => {
      const log = join(dir, 'calls.log');
      process.env.QEMU_IMG = await wrapper(dir, 'qemu-img', realImg, log);
      process.env.QEMU_IO = await wrapper(dir, 'qemu-io', realIo, log);
      const named = `qemu: qemu-img ${buildVersion} at ${join(dir, 'qemu-img')}, qemu-io ${buildVersion} at ${join(dir, 'qemu-io')}`;
      let text = '';
      await runFuzz(parseFuzzOptions({ seed: '1', runs: '1', images: true, corpus: join(dir, 'corpus') }, () => 1), { write: (t) => (text += t), tty: false });
      expect(text.split('\n')[1]).toBe(named);
      const lines: string[] = [];
      const stored = 'corpus/cases/ts-malformedImages-open-disagreement-ours-opens-qemu-refuses-extension-752a78c1b68a8f56.json';
      expect(await runReplay(stored, { trace: false }, (l) => lines.push(l))).toBe(0);
      expect(lines[1]).toBe(named);
      // the image case asked the wrapper's qemu-img for its verdict
      expect(await readFile(log, 'utf8')).toMatch(/^qemu-img (info|check) /m);
    });
  });

  it('stops before running anything (exit 2) when the configured qemu-img is not QEMU, from the variable or the flag', async () => {
    await withTempDir(async (dir) => {
      const notQemu = await script(join(dir, 'not-qemu'), 'echo hello');
      process.env.QEMU_IMG = notQemu;
      const lines: string[] = [];
      const gate = runGate(parseGateOptions({ seed: '1', runs: '1', property: 'readsAndOutcomes', workers: '1' }, () => 1), (l) => lines.push(l));
      await expect(gate).rejects.toThrow(CliError);
      await expect(gate).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/^QEMU_IMG=.*not-qemu: not qemu-img/) as unknown });
      expect(lines.some((l) => l.startsWith('summary:'))).toBe(false);
      delete process.env.QEMU_IMG;
      const run = await runCli(['gate', '--qemu-img', join(dir, 'missing'), '--seed', '1', '--runs', '1', '--property', 'readsAndOutcomes', '--workers', '1']);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toBe(`qcow2-verify: QEMU_IMG=${join(dir, 'missing')}: no executable file there\n`);
    });
  });
});
