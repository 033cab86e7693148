// Strict checks of public arguments, run before anything is done, so a typo or a wrong type
// rejects with an InvalidArgumentError naming the argument instead of being ignored or
// misread. Options objects are described declaratively, one small schema per options type
// (key -> rule); `checkOptions` enforces it: no unknown keys, every value of its type and range.
// Values are not interpreted beyond that: the core decides what a valid reference, path or tag
// is.

import { InvalidArgumentError } from "../errors";

/** What one option may hold. `undefined` always means "not given". */
export type Rule =
  /** `true` or `false`. */
  | { readonly type: "boolean" }
  /** A string; with `nonEmpty`, not `""`; with `format`, matching it. */
  | {
      readonly type: "string";
      readonly nonEmpty?: boolean;
      readonly format?: { readonly pattern: RegExp; readonly expected: string };
    }
  /** A safe integer (so not NaN, not infinite, not fractional) of at least `min`. */
  | { readonly type: "integer"; readonly min: number }
  /** An array of strings. */
  | { readonly type: "strings" }
  /** A valid `Date`, or an age: a safe integer of milliseconds, not negative. */
  | { readonly type: "dateOrAge" }
  /** An `AbortSignal`. */
  | { readonly type: "abortSignal" }
  /** A function. */
  | { readonly type: "function" }
  /**
   * One of `literals`, or a plain object with exactly one of `variants`' keys. Errors in a
   * variant's value name `<argument>.<key>`, or with `flat` the argument itself (for a value
   * such as a holder, whose key is part of the value rather than an option).
   */
  | {
      readonly type: "union";
      readonly literals: readonly string[];
      readonly variants: Schema;
      readonly expected: string;
      readonly flat?: boolean;
    }
  /** A plain object of `schema`, with every key of `required`. */
  | { readonly type: "object"; readonly schema: Schema; readonly required?: readonly string[] };

/** The rules of an options object, by key. */
export type Schema = Readonly<Record<string, Rule>>;

/** A schema covering exactly the keys of the options type `T` (checked by the compiler). */
export type SchemaOf<T> = { readonly [K in keyof Required<T>]: Rule };

/** A short description of a value, for messages: its type, or the number itself. */
export function describe(value: unknown): string {
  if (value === null) {
    return "null";
  }
  if (Array.isArray(value)) {
    return "an array";
  }
  if (typeof value === "number") {
    return String(value);
  }
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? "an invalid Date" : "a Date";
  }
  return typeof value;
}

function invalid(argument: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid argument ${argument}: ${reason}`, { argument });
}

function expected(argument: string, what: string, value: unknown): InvalidArgumentError {
  return invalid(argument, `expected ${what}, got ${describe(value)}`);
}

/** Throws unless `value` is a string. */
export function requireString(value: unknown, argument: string): asserts value is string {
  if (typeof value !== "string") {
    throw expected(argument, "a string", value);
  }
}

/** Whether `value` is a plain object (`{ ... }` or `Object.create(null)`), not an array or class instance. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Throws unless `value` is undefined or a plain object. */
export function requireOptions(value: unknown, argument: string): void {
  if (value !== undefined && !isPlainObject(value)) {
    throw expected(argument, "an object", value);
  }
}

/**
 * Throws when a call got more arguments than `method` takes (an options object passed to a
 * method without options would otherwise be ignored). Trailing `undefined`s are allowed.
 */
export function requireArity(args: ArgumentList, max: number, method: string): void {
  for (let i = args.length - 1; i >= max; i--) {
    if (args[i] !== undefined) {
      throw invalid(
        `arguments[${i}]`,
        `${method} takes ${max === 0 ? "no arguments" : `at most ${max} argument${max === 1 ? "" : "s"}`}, got ${describe(args[i])} as argument ${i + 1}`,
      );
    }
  }
}

/** A function's `arguments`, as {@link requireArity} reads them. */
export interface ArgumentList {
  readonly length: number;
  readonly [index: number]: unknown;
}

/**
 * Checks an options object against `schema` and returns a copy holding only the keys given
 * (so a getter or proxy cannot change a value after it was checked). `undefined` options mean
 * `{}`; anything else that is not a plain object rejects as `argument`. Errors name the key
 * (`maxBytes`), or its path for nested objects (`backend.cloud.url`).
 *
 * @throws {InvalidArgumentError} for an unknown key, or a value of the wrong type or range.
 */
export function checkOptions<T>(value: unknown, schema: SchemaOf<T>, argument: string): T {
  requireOptions(value, argument);
  return checkObject(value ?? {}, schema as Schema, "") as T;
}

/** Checks the own keys of a plain object against `schema`; `path` prefixes key names. */
function checkObject(value: object, schema: Schema, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const source = value as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(value)) {
    const name = `${path}${String(key)}`;
    if (typeof key !== "string" || !Object.hasOwn(schema, key)) {
      const known = Object.keys(schema);
      throw invalid(name, `unknown option${known.length > 0 ? ` (expected ${known.join(", ")})` : ""}`);
    }
    const v = source[key];
    if (v !== undefined) {
      out[key] = checkValue(v, schema[key] as Rule, name);
    }
  }
  return out;
}

/**
 * Checks one value against its rule and returns it (a copy, for arrays, dates and objects);
 * errors name `name`.
 *
 * @throws {InvalidArgumentError} when the value breaks the rule.
 */
export function checkValue(value: unknown, rule: Rule, name: string): unknown {
  switch (rule.type) {
    case "boolean":
      if (typeof value !== "boolean") throw expected(name, "a boolean", value);
      return value;
    case "string":
      if (typeof value !== "string") throw expected(name, "a string", value);
      if (rule.nonEmpty && value === "") throw invalid(name, "must not be empty");
      if (rule.format && !rule.format.pattern.test(value)) {
        throw invalid(name, `expected ${rule.format.expected}, got ${JSON.stringify(value)}`);
      }
      return value;
    case "integer":
      if (typeof value !== "number") throw expected(name, "a number", value);
      if (!Number.isSafeInteger(value) || value < rule.min) {
        throw invalid(name, `expected a whole number of at least ${rule.min} (a safe integer), got ${value}`);
      }
      return value;
    case "strings":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw expected(name, "an array of strings", value);
      }
      return [...(value as string[])];
    case "dateOrAge":
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw expected(name, "a valid Date", value);
        return new Date(value.getTime());
      }
      if (typeof value !== "number") throw expected(name, "a Date or a number of milliseconds", value);
      if (!Number.isSafeInteger(value) || value < 0) {
        throw invalid(name, `an age must be a whole number of milliseconds, not negative, got ${value}`);
      }
      return value;
    case "abortSignal":
      if (!(value instanceof AbortSignal)) throw expected(name, "an AbortSignal", value);
      return value;
    case "function":
      if (typeof value !== "function") throw expected(name, "a function", value);
      return value;
    case "union": {
      if (typeof value === "string" && rule.literals.includes(value)) return value;
      const keys = isPlainObject(value) ? Reflect.ownKeys(value) : [];
      const key = keys[0];
      if (keys.length !== 1 || typeof key !== "string" || !Object.hasOwn(rule.variants, key)) {
        throw expected(name, rule.expected, value);
      }
      const inner = (value as Record<string, unknown>)[key];
      return { [key]: checkValue(inner, rule.variants[key] as Rule, rule.flat ? name : `${name}.${key}`) };
    }
    case "object": {
      if (!isPlainObject(value)) throw expected(name, "an object", value);
      const out = checkObject(value, rule.schema, `${name}.`);
      for (const key of rule.required ?? []) {
        if (out[key] === undefined) throw invalid(`${name}.${key}`, "is required");
      }
      return out;
    }
  }
}
