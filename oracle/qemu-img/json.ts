// Reading qemu-img's JSON output: members are looked up by name (QEMU's key order
// is a hash order, not stable) and every value is type-checked, so a format change
// in a new QEMU fails loudly here instead of becoming a wrong verdict.
import { QemuOutputError } from '../errors.js';

export type JsonObject = Readonly<Record<string, unknown>>;

export class JsonReader {
  constructor(private readonly command: string) {}

  parse(text: string): unknown {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new QemuOutputError('qemu-img', this.command, `invalid JSON (${String(error)})`, text);
    }
  }

  object(value: unknown, what: string): JsonObject {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw this.fail(`${what} is not an object`, value);
    }
    return value as JsonObject;
  }

  array(value: unknown, what: string): readonly unknown[] {
    if (!Array.isArray(value)) throw this.fail(`${what} is not an array`, value);
    return value;
  }

  /** A non-negative integer member; values past 2^53 are rejected, never rounded. */
  integer(obj: JsonObject, key: string): number {
    const value = obj[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw this.fail(`member "${key}" is not a non-negative safe integer`, value);
    }
    return value;
  }

  /** A count QEMU omits when it is zero (ImageCheck's optional members). */
  countOrZero(obj: JsonObject, key: string): number {
    return obj[key] === undefined ? 0 : this.integer(obj, key);
  }

  optionalInteger(obj: JsonObject, key: string): number | undefined {
    return obj[key] === undefined ? undefined : this.integer(obj, key);
  }

  boolean(obj: JsonObject, key: string): boolean {
    const value = obj[key];
    if (typeof value !== 'boolean') throw this.fail(`member "${key}" is not a boolean`, value);
    return value;
  }

  optionalBoolean(obj: JsonObject, key: string): boolean | undefined {
    return obj[key] === undefined ? undefined : this.boolean(obj, key);
  }

  string(obj: JsonObject, key: string): string {
    const value = obj[key];
    if (typeof value !== 'string') throw this.fail(`member "${key}" is not a string`, value);
    return value;
  }

  optionalString(obj: JsonObject, key: string): string | undefined {
    return obj[key] === undefined ? undefined : this.string(obj, key);
  }

  private fail(reason: string, value: unknown): QemuOutputError {
    return new QemuOutputError('qemu-img', this.command, reason, JSON.stringify(value) ?? String(value));
  }
}

/** `{ key: value }` when the value exists, `{}` otherwise (keeps optional members absent). */
export function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
