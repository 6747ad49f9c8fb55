export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** The UTC day of this process's clock, YYYY-MM-DD (the day a statistics key is written under). */
export function utcDay(ms = Date.now()): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/**
 * Returns once at least `ms` remain before the next 00:00 UTC: when fewer remain, waits until
 * just after midnight. For a scenario whose assertions are per-day counters by design (metrics
 * series start again at 00:00 UTC), so that it runs within one UTC day.
 */
export async function withinOneDay(ms: number): Promise<void> {
  const left = 86_400_000 - (Date.now() % 86_400_000)
  if (left < ms) await sleep(left + 1000)
}
