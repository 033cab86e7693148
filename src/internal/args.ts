// Type checks of public arguments, so a wrong type rejects with a clean InvalidArgumentError
// instead of the addon's conversion error. Values are not interpreted here: the core decides
// what a valid reference, path or tag is.

import { InvalidArgumentError } from "../errors";

/** Throws unless `value` is a string. */
export function requireString(value: unknown, argument: string): asserts value is string {
  if (typeof value !== "string") {
    throw new InvalidArgumentError(`invalid argument ${argument}: expected a string, got ${describe(value)}`, {
      argument,
    });
  }
}

/** Throws unless `value` is undefined or a plain object. */
export function requireOptions(value: unknown, argument: string): void {
  if (value !== undefined && (typeof value !== "object" || value === null || Array.isArray(value))) {
    throw new InvalidArgumentError(`invalid argument ${argument}: expected an object, got ${describe(value)}`, {
      argument,
    });
  }
}

/** A short description of a value's type, for messages. */
export function describe(value: unknown): string {
  if (value === null) {
    return "null";
  }
  if (Array.isArray(value)) {
    return "an array";
  }
  return typeof value;
}
