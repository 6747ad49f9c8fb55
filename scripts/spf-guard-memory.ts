// What the SPF guard's in-memory verdicts cost the process: a million sender domains judged
// through one SpfGuardCache, its heap measured after a full collection, at the default bound and
// with a bound as large as the run (what each entry costs). The record and the stored verdict come
// from memory, so the run measures the cache, not DNS or Redis.
import { SpfGuardCache, SPF_GUARD_MAX_ENTRIES, type FlagStore } from '../plugins/smart-greylist/adapters/spf-guard'
import type { Resolver } from '../plugins/smart-greylist/adapters/dns'
import { DEFAULTS } from '../plugins/smart-greylist/core/settings'

export interface GuardMemoryRow {
  readonly maxEntries: number
  readonly domains: number
  /** Domains held when the run ends. */
  readonly held: number
  /** Heap the cache holds at the end (domain names included: in the plugin they come from envelopes). */
  readonly heapBytes: number
  readonly bytesPerEntry: number
  readonly seconds: number
}

/** `global.gc` exists when node runs with --expose-gc (as `npm run bench` does); else the figures are rougher. */
const collect = (): void => (globalThis as { gc?: () => void }).gc?.()

/** What the printed figures say of their accuracy. */
export const gcNote = (): string => ((globalThis as { gc?: unknown }).gc ? '' : '; no --expose-gc, so the figures include garbage')

async function heapAfterGc(): Promise<number> {
  // A second pass and a turn of the event loop let finalised promises and weak refs go too.
  collect()
  await new Promise((resolve) => setImmediate(resolve))
  collect()
  return process.memoryUsage().heapUsed
}

async function one(domains: number, maxEntries: number): Promise<GuardMemoryRow> {
  // Every tenant publishes one provider's record, and its verdict is already in Redis: each judge()
  // is a walk of the record and one flag read, as for a wildcard subdomain.
  const resolver = { resolveTxt: async () => [['v=spf1 include:spf.provider.example -all']] } as unknown as Resolver
  const flags: FlagStore = { getFlag: async () => '0:bounded', setFlag: async () => undefined }
  const spf = { resolver, timeoutMs: 5000, helo: null }
  const before = await heapAfterGc()
  const t0 = process.hrtime.bigint()
  const cache = new SpfGuardCache(flags, DEFAULTS, () => 0, { maxEntries })
  const batch = 50 // in flight at once: more only adds timers and promises to the heap being measured
  for (let i = 0; i < domains; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, domains - i) }, (_, j) => cache.judge(`tenant${i + j}.example.com`, spf)))
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const heapBytes = Math.max(0, (await heapAfterGc()) - before)
  const held = cache.size // read after the measure, so the cache is still reachable at it
  return { maxEntries, domains, held, heapBytes, bytesPerEntry: held ? Math.round(heapBytes / held) : 0, seconds: Math.round(seconds * 10) / 10 }
}

/** The default bound, then one that holds every domain of the run. */
export async function spfGuardMemory(domains: number): Promise<GuardMemoryRow[]> {
  return [await one(domains, SPF_GUARD_MAX_ENTRIES), await one(domains, domains)]
}

// On its own: `node --expose-gc dist/scripts/spf-guard-memory.js [domains]`, the one table of the bench.
if (require.main === module) {
  spfGuardMemory(Number(process.argv[2] ?? 1_000_000)).then(
    (rows) => console.log(JSON.stringify(rows, null, 2)),
    (err: Error) => {
      console.error(err.stack ?? err.message)
      process.exit(2)
    },
  )
}
