import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { parseSize } from '../sizes.js';
import { defaultWritePattern, requestBytesMax, type IoCommand } from './command.js';

// qemu-io's command syntax (qemu-io-cmds.c): words split on blanks, getopt
// flags before the operands ("-zu" = "-z -u", "-P0xab" = "-P 0xab"), offsets
// and lengths read with qemu_strtosz (cli/sizes.ts), pattern bytes with
// strtol(…, 0), so "010" is octal there as it is in qemu-io.
// Every mistake is a usage error naming the command line.

interface Spec {
  readonly flags: string; // flags without an argument
  readonly valued: string; // flags that take an argument
  readonly operands: number;
}

const specs = {
  write: { flags: 'czuq', valued: 'P', operands: 2 },
  read: { flags: 'q', valued: 'P', operands: 2 },
  discard: { flags: 'q', valued: '', operands: 2 },
  truncate: { flags: '', valued: '', operands: 1 },
  flush: { flags: '', valued: '', operands: 0 },
} as const satisfies Record<string, Spec>;

type CommandName = keyof typeof specs;

function isCommandName(word: string): word is CommandName {
  return Object.hasOwn(specs, word);
}

interface Words {
  readonly flags: ReadonlySet<string>;
  readonly values: ReadonlyMap<string, string>;
  readonly operands: readonly string[];
}

/** Parses one qemu-io command line. Throws a usage CliError naming the line. */
export function parseIoCommand(line: string): IoCommand {
  const fail = (why: string): never => {
    throw new CliError(`io command '${line.trim()}': ${why}`, exitCodes.usage);
  };
  const [name, ...args] = line.trim().split(/\s+/).filter((w) => w !== '');
  if (name === undefined) return fail('empty command');
  if (!isCommandName(name)) {
    return fail(`unknown command '${name}' (known: ${Object.keys(specs).join(', ')})`);
  }
  const words = splitWords(specs[name], args, fail);
  const size = (index: number, what: string): number => {
    const text = words.operands[index];
    if (text === undefined) return fail(`missing ${what}`);
    try {
      return parseSize(text, what);
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
  };
  const quiet = words.flags.has('q');
  const patternText = words.values.get('P');
  const pattern = patternText === undefined ? undefined : parsePattern(patternText, fail);
  switch (name) {
    case 'flush':
      return { kind: 'flush' };
    case 'truncate':
      return { kind: 'truncate', size: size(0, 'size') };
    case 'read':
    case 'write':
    case 'discard': {
      const offset = size(0, 'offset');
      const length = size(1, 'length');
      if (length > requestBytesMax) fail(`length cannot exceed ${requestBytesMax}, given ${words.operands[1]}`);
      if (name === 'discard') return { kind: 'discard', offset, length, quiet };
      if (name === 'read') return { kind: 'read', offset, length, pattern, quiet };
      const zero = words.flags.has('z');
      if (zero && pattern !== undefined) fail('only one of -z and -P can be given');
      if (words.flags.has('u') && !zero) fail('-u requires -z');
      if (zero && words.flags.has('c')) fail('-c and -z cannot be given together');
      return zero
        ? { kind: 'writeZeroes', offset, length, unmap: words.flags.has('u'), quiet }
        : { kind: 'write', offset, length, pattern: pattern ?? defaultWritePattern, ...(words.flags.has('c') ? { compressed: true } : {}), quiet };
    }
    default: {
      const never: never = name;
      throw new Error(`unhandled io command ${String(never)}`);
    }
  }
}

/** getopt without permutation: flags first, then exactly `spec.operands` operands. */
function splitWords(spec: Spec, args: readonly string[], fail: (why: string) => never): Words {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  let index = 0;
  for (; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (arg === '--') {
      index++;
      break;
    }
    if (!/^-[a-zA-Z]/.test(arg)) break;
    for (let at = 1; at < arg.length; at++) {
      const flag = arg.charAt(at);
      if (spec.valued.includes(flag)) {
        const value = at + 1 < arg.length ? arg.slice(at + 1) : args[++index];
        if (value === undefined) fail(`option -${flag} needs an argument`);
        values.set(flag, value ?? '');
        break;
      }
      if (!spec.flags.includes(flag)) fail(`unsupported option -${flag}`);
      flags.add(flag);
    }
  }
  const operands = args.slice(index);
  if (operands.length !== spec.operands) {
    fail(`expected ${spec.operands} argument${spec.operands === 1 ? '' : 's'}, got ${operands.length}`);
  }
  return { flags, values, operands };
}

/** A pattern byte as qemu-io's parse_pattern reads it: strtol base 0, 0…255. */
export function parsePattern(text: string, fail: (why: string) => never): number {
  const match = /^\s*\+?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(text);
  const value =
    match === null ? NaN
    : match[1] !== undefined ? Number.parseInt(match[1], 16)
    : match[2] !== undefined ? Number.parseInt(match[2], 8)
    : Number.parseInt(match[3] ?? '', 10);
  if (!(value >= 0 && value <= 0xff)) return fail(`${text} is not a valid pattern byte (0…255, or 0x00…0xff)`);
  return value;
}
