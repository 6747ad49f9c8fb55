// What one Redis shard sustains with the tuple script: decisions driven through the plugin's own
// DecisionStore (node-redis pipelining them, 256 in flight) in each state a tuple goes through,
// with Redis's own accounting (INFO commandstats and its CPU time) telling what the script costs
// the server, apart from this client sharing the machine.
import { DecisionStore, type TupleRef } from '../plugins/smart-greylist/adapters/redis-decision'
import { timingFrom } from '../plugins/smart-greylist/core/decision'
import type { Identity } from '../plugins/smart-greylist/core/identity'
import { identityKeys } from '../plugins/smart-greylist/core/keys'
import { DEFAULTS } from '../plugins/smart-greylist/core/settings'
import { connectRedis } from './harness/redis'

export interface CapacityRow {
  readonly phase: string
  readonly decisions: number
  /** Achieved by this one client, which shares the machine with Redis. */
  readonly perSecond: number
  /** Redis's own time inside the script per call. */
  readonly usecPerCall: number
  /** Decisions per second of Redis CPU time (script, network, everything the server did). */
  readonly perRedisCpuSecond: number
}

const STATS = { prefix: 'sgl:', shadow: false, ttlDays: 35 }

function refOf(i: number): TupleRef {
  // 1,000 identities (the spread a real MX sees), each with many sender/recipient pairs.
  const identity: Identity = { kind: 'host', value: `outbound${i % 1000}.mail.example.net`, reason: 'fcrdns' }
  const k = identityKeys('sgl:', `${identity.kind}:${identity.value}`)
  const sender = `newsletter-${i}@mail.shop-example.com`
  const recipient = `firstname.lastname${i % 5000}@example.com`
  return {
    shard: k.shard,
    key: k.tuple(sender, recipient),
    startedKey: k.started,
    awlKey: k.awl('mail.shop-example.com', 'pool:bench'),
    identity,
    sender,
    recipient,
  }
}

export async function shardCapacity(port: number, n: number): Promise<CapacityRow[]> {
  const db = await connectRedis(port)
  await db.flushDb()
  const store = new DecisionStore(
    () => db,
    () => 30_000,
  )
  const timing = { ...timingFrom(DEFAULTS), pendingCap: n }
  const info = async (): Promise<{ calls: number; usec: number; cpu: number }> => {
    const stats = String(await db.info('commandstats'))
    const cpu = String(await db.info('cpu'))
    const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats)
    const sec = (f: string): number => Number(new RegExp(`${f}:([\\d.]+)`).exec(cpu)?.[1] ?? 0)
    return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0), cpu: sec('used_cpu_user') + sec('used_cpu_sys') }
  }
  const t0 = Date.now()
  // Each phase: the state the tuples are in, and the time the decision is taken at.
  const phases: [string, number][] = [
    ['new (deferred, written)', t0],
    ['early retry (read only)', t0 + 1000],
    ['retry after the delay (passed)', t0 + timing.delayMs + 1000],
    ['known (refreshed)', t0 + timing.delayMs + 2000],
  ]
  const rows: CapacityRow[] = []
  // Loads the script once, so every phase measures EVALSHA alone.
  await store.check(refOf(n + 1), t0, timing, STATS)
  for (const [phase, now] of phases) {
    await db.sendCommand(['CONFIG', 'RESETSTAT'])
    const before = await info()
    const started = process.hrtime.bigint()
    const inFlight = 256
    let next = 0
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < n) await store.check(refOf(next++), now, timing, STATS)
      }),
    )
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const after = await info()
    const calls = after.calls - before.calls
    rows.push({
      phase,
      decisions: n,
      perSecond: Math.round(n / seconds),
      usecPerCall: Math.round(((after.usec - before.usec) / calls) * 10) / 10,
      perRedisCpuSecond: Math.round(calls / Math.max(after.cpu - before.cpu, 1e-6)),
    })
  }
  await db.quit()
  return rows
}
