import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** One child process run: wall time from the parent, peak RSS of the child. */
export interface Measurement {
  readonly wallSeconds: number;
  readonly peakRssBytes: number;
}

const gnuTime = '/usr/bin/time';
/** How often /proc/PID/status is read when GNU time is absent; VmHWM is a high-water mark, so late reads lose nothing. */
const procPollMs = 20;

export interface MeasureConstraints {
  /** Exit codes that are results, not errors. Default: only 0. */
  readonly okExitCodes?: readonly number[];
}

/**
 * Runs `command args` with `input` on stdin, output discarded, and measures it.
 * Peak memory comes from GNU time -v ("Maximum resident set size") when
 * /usr/bin/time exists, else from polling VmHWM in /proc/PID/status.
 * Any other exit than 0 is an error carrying the child's stderr.
 */
export async function measure(command: string, args: readonly string[], input?: string): Promise<Measurement> {
  return (await measureExit(command, args, input)).measurement;
}

/** `measure` for a command whose exit code is part of the result (`okExitCodes`), returned with it. */
export async function measureExit(
  command: string,
  args: readonly string[],
  input?: string,
  constraints: MeasureConstraints = {},
): Promise<{ measurement: Measurement; exitCode: number }> {
  const useTime = existsSync(gnuTime);
  const [file, argv] = useTime ? [gnuTime, ['-v', command, ...args]] : [command, [...args]];
  const started = performance.now();
  const child = spawn(file, argv, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  let polledKiB = 0;
  const poll = useTime ? undefined : setInterval(() => (polledKiB = Math.max(polledKiB, readHwmKiB(child.pid))), procPollMs);
  child.stdin.end(input ?? '');
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve(status ?? -1));
  });
  const wallSeconds = (performance.now() - started) / 1000;
  if (poll !== undefined) clearInterval(poll);
  // GNU time passes the command's exit code on, and says so on stderr when it is not 0
  if (!(constraints.okExitCodes ?? [0]).includes(code)) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(-2000)}`);
  const peakKiB = useTime ? parseGnuTimeMaxRssKiB(stderr) : polledKiB;
  return { measurement: { wallSeconds, peakRssBytes: peakKiB * 1024 }, exitCode: code };
}

/** "Maximum resident set size (kbytes): 12345" from GNU time -v. */
export function parseGnuTimeMaxRssKiB(report: string): number {
  const match = /Maximum resident set size \(kbytes\): (\d+)/.exec(report);
  if (match === null) throw new Error(`no "Maximum resident set size" in GNU time output: ${report.slice(-500)}`);
  return Number(match[1]);
}

/** VmHWM (peak RSS, KiB) of a live process, or 0 once it is gone. */
export function readHwmKiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return parseVmHwmKiB(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return 0; // the process exited between polls; its earlier reading stands
  }
}

export function parseVmHwmKiB(status: string): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match === null ? 0 : Number(match[1]);
}
