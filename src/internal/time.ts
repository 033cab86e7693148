// The one place that turns the core's timestamps (milliseconds since the epoch) into Dates.

/**
 * A `Date` for a timestamp in milliseconds since the epoch, or null when there is none.
 *
 * @param ms - Milliseconds since the epoch, as the native addon reports them.
 */
export function toDate(ms: number | null | undefined): Date | null {
  return ms === null || ms === undefined ? null : new Date(ms);
}
