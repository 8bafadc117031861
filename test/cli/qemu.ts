import { execa } from 'execa';
import { withDir } from 'tmp-promise';

/** Runs qemu-img; never throws on a non-zero exit, so tests assert on it. */
export async function qemuImg(...args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await execa('qemu-img', args, { reject: false });
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
}

/** qemu-img with --output=json, parsed; throws when qemu-img fails. */
export async function qemuImgJson(...args: string[]): Promise<unknown> {
  const r = await qemuImg(...args, '--output=json');
  if (r.exitCode !== 0) throw new Error(`qemu-img ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** qemu-io with -c commands; returns its stdout and exit code. */
export async function qemuIo(file: string, ...commands: string[]): Promise<{ stdout: string; exitCode: number }> {
  const r = await execa('qemu-io', [...commands.flatMap((c) => ['-c', c]), file], { reject: false });
  return { stdout: `${r.stdout}${r.stderr}`, exitCode: r.exitCode ?? -1 };
}

/** `qemu-img check` must report neither corruptions nor leaks (exit 0). */
export async function expectClean(file: string): Promise<void> {
  const r = await qemuImg('check', '--output=json', file);
  if (r.exitCode !== 0) throw new Error(`qemu-img check ${file}: exit ${r.exitCode}\n${r.stdout}${r.stderr}`);
}

export function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  return withDir(({ path }) => fn(path), { unsafeCleanup: true, prefix: 'qcow2-verify-cli-' });
}
