// Replays a population through the plugin's own decision path, one keying at a time: the
// settings loaded by setup.ts from a config directory, the recipient decider of
// adapters/recipient.ts (assessment, identity, [select], the tuple script on Redis through
// DecisionStore) and, under net_identity_greylist = message, the message's decision of adapters/message.ts.
// Only the clock and the DNS are simulated: the clock is the one Deps.now the plugin is built
// with, moved to each attempt's time; DNS answers come from the population's zone in memory.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import tlds from 'haraka-tld'
import { decideMessage } from '../../plugins/smart-greylist/adapters/message'
import { decideRecipient, type RecipientInput } from '../../plugins/smart-greylist/adapters/recipient'
import { closeRedis, openRedis } from '../../plugins/smart-greylist/adapters/redis-client'
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'
import { identityText } from '../../plugins/smart-greylist/core/identity'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { isPostponed } from '../../plugins/smart-greylist/core/message'
import { answer, type RecipientDecision } from '../../plugins/smart-greylist/core/recipient'
import { FILES, RENAMED } from '../../plugins/smart-greylist/core/settings'
import { buildDeps, load, sourcesForDir, type Deps } from '../../plugins/smart-greylist/setup'
import type { Population } from './population'
import { ZoneResolver } from './zone'

type IniValue = string | number | boolean
export type Overlay = Readonly<Record<string, Readonly<Record<string, IniValue>>>>

/** One way of keying the greylist: the plugin's settings, with `overlay` written over them. */
export interface Keying {
  readonly name: string
  readonly about: string
  readonly overlay: Overlay
}

/** Only the keying differs between these: timing, auto-whitelist and limits stay as configured. */
export const KEYINGS: readonly Keying[] = [
  { name: 'plugin', about: "the plugin's settings", overlay: {} },
  {
    name: 'exact',
    about: 'classic triplet on the exact client address (milter-greylist, haraka-plugin-greylist for pools)',
    overlay: { identity: { spf: false, rdns: false, pools: false, ipv4_prefix: 32, ipv6_prefix: 128 }, whitelist: { providers: false } },
  },
  {
    name: 'net24',
    about: "classic triplet on the client's /24, the big providers whitelisted by a static list (postgrey, sqlgrey)",
    overlay: { identity: { spf: false, rdns: false, pools: false, ipv4_prefix: 24, ipv6_prefix: 64 }, whitelist: { providers: true } },
  },
]

/** `name:section.key=value,section.key=value`: the plugin's settings with those changed. */
/** The keyings a run compares: the named ones (comma-separated), then each `--variant`. */
export function chooseKeyings(names: string, variants: readonly string[]): Keying[] {
  const chosen = names
    .split(',')
    .filter(Boolean)
    .map((name) => {
      const k = KEYINGS.find((x) => x.name === name)
      if (!k) throw new Error(`--keyings: unknown keying ${name} (known: ${KEYINGS.map((x) => x.name).join(', ')})`)
      return k
    })
  chosen.push(...variants.map(parseVariant))
  if (!chosen.length) throw new Error('--keyings: name at least one')
  return chosen
}

/** A whole-number option from 1 to max; undefined when not given. */
export function wholeOption(name: string, v: string | undefined, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} ${v}: a whole number from 1 to ${max} is needed`)
  return n
}

export function parseVariant(text: string): Keying {
  const m = /^([a-z0-9_-]{1,32}):(.+)$/i.exec(text)
  if (!m?.[1] || !m[2]) throw new Error(`--variant ${text}: NAME:section.key=value[,section.key=value] is needed`)
  const overlay: Record<string, Record<string, IniValue>> = {}
  for (const part of m[2].split(',')) {
    const kv = /^([a-z_]+)\.([a-z0-9_]+)=(.{0,200})$/.exec(part.trim())
    if (!kv?.[1] || !kv[2] || kv[3] === undefined) throw new Error(`--variant ${text}: "${part}" is not section.key=value`)
    ;(overlay[kv[1]] ??= {})[kv[2]] = kv[3]
  }
  return { name: m[1], about: `the plugin's settings with ${m[2]}`, overlay }
}

/** Where the simulation's Redis is: one server, or a cluster's seed nodes. */
export type RedisTarget = { readonly host: string; readonly port: number } | { readonly cluster: readonly string[] }

export interface RunOptions {
  /** The admin's config directory (its smart-greylist.* files); the package's when absent. */
  readonly configDir?: string
  readonly redis: RedisTarget
  /** Decisions in flight at once. */
  readonly inFlight?: number
  /** Keep every attempt's decision (small runs: the agreement test). */
  readonly trace?: boolean
  /** Replay only these messages (the agreement test's handful); all when absent. */
  readonly only?: ReadonlySet<number>
  /** No attempt later than this after a message's first (a replay in compressed real time). */
  readonly horizonMs?: number
  readonly progress?: (done: number, total: number) => void
  /** Refuse a Redis that holds keys (a scratch Redis given by the admin: it is emptied). */
  readonly requireEmpty?: boolean
  /** The run's first keying (the emptiness check is made before it only). */
  readonly first?: Keying
  /** Problems the settings loader reported. */
  readonly warn?: (line: string) => void
}

export interface TraceEntry {
  readonly message: number
  readonly attempt: number
  readonly at: number
  readonly ip: string
  readonly answer: 'accept' | 'defer'
  /** tuple:<status>, whitelist, skip, trusted, correspondent, failed; message:<status> at data. */
  readonly what: string
  readonly identity: string
}

/** Per message: attempts made, and the delay paid (ms) when delivered, -1 when the sender gave up. */
export interface KeyingRun {
  readonly keying: Keying
  readonly attempts: Uint16Array
  readonly delayMs: Float64Array
  /** First attempt's identity kind (or whitelist/skip) per message, as an index into `kinds`. */
  readonly firstKind: Uint8Array
  readonly kinds: readonly string[]
  readonly failures: number
  readonly seconds: number
  readonly decisions: number
  readonly roundTrips: number
  readonly redis: RedisFigures
  readonly dnsQueries: number
  /** Tuples (and message records) written new, and tuples that passed at a retry: what Redis holds for retry_window and for pass_ttl. */
  readonly tuplesStarted: number
  readonly tuplesPassed: number
  readonly trace?: readonly TraceEntry[]
}

export interface RedisFigures {
  /** Every command Redis ran for the run, inside the scripts too (INFO commandstats). */
  readonly commands: number
  readonly usedMemoryBytes: number
  readonly keys: number
  readonly masters: number
  /** Redis's own CPU time (user + system, every master), seconds. */
  readonly cpuSeconds: number
}

const BATCH_MS = 30_000

function iniText(ini: Record<string, Record<string, unknown>>): string {
  const lines: string[] = []
  for (const [section, keys] of Object.entries(ini)) {
    lines.push(`[${section}]`)
    for (const [k, v] of Object.entries(keys ?? {}))
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') lines.push(`${k} = ${String(v)}`)
    lines.push('')
  }
  return lines.join('\n')
}

/** A config directory for one keying: the admin's files, its ini with the overlay and the run's Redis. */
export function keyingConfigDir(keying: Keying, opts: Pick<RunOptions, 'configDir' | 'redis'>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sg-sim-${keying.name}-`))
  let ini: Record<string, Record<string, unknown>> = {}
  if (opts.configDir) {
    for (const f of fs.readdirSync(opts.configDir)) {
      if (/^(smart-greylist\.|host_list)/.test(f) && f !== FILES.ini && fs.statSync(path.join(opts.configDir, f)).isFile()) {
        fs.copyFileSync(path.join(opts.configDir, f), path.join(dir, f))
      }
    }
    ini = (sourcesForDir(opts.configDir).instance.get(FILES.ini, 'ini') as Record<string, Record<string, unknown>> | null) ?? {}
  }
  const merged: Record<string, Record<string, unknown>> = {}
  for (const [s, keys] of Object.entries(ini)) merged[s] = { ...keys }
  // The admin's old names read as their new ones first: an old name wins over the new one (see
  // RENAMED), so left in place it would undo a variant that names the new key.
  for (const r of RENAMED) {
    const old = merged[r.section]?.[r.from]
    if (old === undefined || old === null) continue
    const { [r.from]: _old, ...rest } = merged[r.section] ?? {}
    merged[r.section] = { ...rest, [r.to]: typeof old === 'string' ? (r.values?.[old.trim().toLowerCase()] ?? old) : old }
  }
  for (const [s, keys] of Object.entries(keying.overlay)) merged[s] = { ...merged[s], ...keys }
  // Of the admin's [redis], only what is not about where Redis is or how to log in to it.
  const r: Record<string, unknown> = {}
  for (const k of ['prefix', 'ping_interval_ms', 'dead_after_ms']) if (merged.redis?.[k] !== undefined) r[k] = merged.redis[k]
  if ('cluster' in opts.redis) r.cluster = opts.redis.cluster.join(' ')
  else Object.assign(r, { host: opts.redis.host, port: opts.redis.port })
  // A simulated day sends far more at once than one MX does: the bounds on time and on commands
  // waiting are the simulation's own, so a busy machine cannot turn deferrals into fail-open
  // acceptances (failures are still counted and reported). They decide nothing else.
  merged.redis = { ...r, max_in_flight: 100_000, timeout_ms: 10_000 }
  merged.main = { ...merged.main, budget_ms: 25_000 }
  fs.writeFileSync(path.join(dir, FILES.ini), iniText(merged))
  return dir
}

/** Counts the plugin's round trips to Redis (the client's calls), passing everything through. */
function counted(db: RedisClient, count: { n: number }): RedisClient {
  const calls = new Set(['evalSha', 'eval', 'get', 'set', 'hGet'])
  return new Proxy(db, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (typeof prop === 'string' && calls.has(prop) && typeof v === 'function') {
        return (...args: unknown[]) => {
          count.n++
          return (v as (...a: unknown[]) => unknown).apply(target, args)
        }
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}

const ADMIN_COMMANDS = /^cmdstat_(info|config|flushall|flushdb|dbsize|memory|cluster|ping|time|client|hello|command|readonly|select|auth|script)(\||:)/

async function redisFigures(db: RedisClient): Promise<RedisFigures> {
  let commands = 0
  let used = 0
  let keys = 0
  let cpu = 0
  const masters = await db.sgMasters()
  for (const node of masters) {
    const stats = String(await node.sendCommand(['INFO', 'commandstats']))
    for (const line of stats.split(/\r?\n/)) {
      const m = /^(cmdstat_[^:]+):calls=(\d+)/.exec(line)
      if (m?.[1] && m[2] && !ADMIN_COMMANDS.test(`${m[1]}:`)) commands += Number(m[2])
    }
    used += Number(/used_memory:(\d+)/.exec(String(await node.sendCommand(['INFO', 'memory'])))?.[1] ?? 0)
    keys += Number(await node.sendCommand(['DBSIZE']))
    const info = String(await node.sendCommand(['INFO', 'cpu']))
    for (const f of ['used_cpu_user', 'used_cpu_sys']) cpu += Number(new RegExp(`${f}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  }
  return { commands, usedMemoryBytes: used, keys, masters: masters.length, cpuSeconds: cpu }
}

/** Keys in every database of every master (DBSIZE sees only the database the client is on). */
async function keysAnywhere(db: RedisClient): Promise<number> {
  let keys = 0
  for (const node of await db.sgMasters()) {
    for (const m of String(await node.sendCommand(['INFO', 'keyspace'])).matchAll(/^db\d+:keys=(\d+)/gm)) keys += Number(m[1])
  }
  return keys
}

/** Empties the run's database on every master and resets its statistics: each keying starts from nothing. */
async function resetRedis(db: RedisClient): Promise<void> {
  for (const node of await db.sgMasters()) {
    await node.sendCommand(['FLUSHDB'])
    await node.sendCommand(['CONFIG', 'RESETSTAT'])
  }
}

/** A min-heap of pending retries: (time, message, attempt). */
class Retries {
  private t: number[] = []
  private m: number[] = []
  private k: number[] = []
  get size(): number {
    return this.t.length
  }
  peek(): number {
    return this.t[0] ?? Infinity
  }
  push(t: number, m: number, k: number): void {
    let i = this.t.length
    this.t.push(t)
    this.m.push(m)
    this.k.push(k)
    while (i > 0) {
      const p = (i - 1) >> 1
      if ((this.t[p] ?? 0) <= t) break
      this.swap(i, p)
      i = p
    }
  }
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.t[0] ?? 0, this.m[0] ?? 0, this.k[0] ?? 0]
    const last = this.t.length - 1
    this.swap(0, last)
    this.t.pop()
    this.m.pop()
    this.k.pop()
    for (let i = 0; ;) {
      const l = 2 * i + 1
      const r = l + 1
      let s = i
      if (l < this.t.length && (this.t[l] ?? 0) < (this.t[s] ?? 0)) s = l
      if (r < this.t.length && (this.t[r] ?? 0) < (this.t[s] ?? 0)) s = r
      if (s === i) break
      this.swap(i, s)
      i = s
    }
    return top
  }
  private swap(a: number, b: number): void {
    for (const arr of [this.t, this.m, this.k]) {
      const x = arr[a] ?? 0
      arr[a] = arr[b] ?? 0
      arr[b] = x
    }
  }
}

function whatOf(d: RecipientDecision): { what: string; identity: string; kind: string } {
  switch (d.kind) {
    case 'tuple':
    case 'trusted':
      return { what: `${d.kind}:${d.verdict.status}`, identity: identityText(d.identity), kind: d.identity.kind }
    case 'correspondent':
    case 'failed':
      return { what: d.kind, identity: identityText(d.identity), kind: d.identity.kind }
    case 'whitelist':
      return { what: `whitelist:${d.entry}`, identity: '', kind: 'whitelist' }
    case 'skip':
      return { what: `skip:${d.reason}`, identity: '', kind: 'skip' }
  }
}

/**
 * The epoch the simulated day starts at: a fixed Monday, so a seed replays the same day (the
 * statistics' day keys included), whatever the date of the run.
 */
export const SIM_EPOCH = Date.UTC(2026, 0, 5)

export async function runKeying(pop: Population, keying: Keying, opts: RunOptions): Promise<KeyingRun> {
  await tlds.ready
  const dir = keyingConfigDir(keying, opts)
  let db: RedisClient | undefined
  try {
    const loaded = load(sourcesForDir(dir), undefined, undefined, 'daemon')
    for (const p of [...loaded.problems, ...loaded.notes]) opts.warn?.(`${keying.name}: ${p}`)
    const quiet = { loginfo: () => undefined, logwarn: () => undefined, logerror: () => undefined }
    const raw = await openRedis(loaded.redis, quiet)
    db = raw
    if (opts.requireEmpty && keying === opts.first && (await keysAnywhere(raw)) > 0) {
      throw new Error('the Redis to simulate on holds keys (in some database): the simulation empties it, so give it an empty scratch Redis')
    }
    await resetRedis(raw)
    const before = await redisFigures(raw)
    const trips = { n: 0 }
    const client = counted(raw, trips)
    let clock = SIM_EPOCH
    const resolver = new ZoneResolver()
    resolver.add(pop.zone)
    const base: Deps = { ...buildDeps(loaded, { client: () => client, now: () => clock }), resolver }
    const { config } = base

    const n = pop.count
    const attempts = new Uint16Array(n)
    const delayMs = new Float64Array(n).fill(Number.NaN)
    const firstKind = new Uint8Array(n)
    const kinds: string[] = []
    const kindIndex = (k: string): number => {
      let i = kinds.indexOf(k)
      if (i < 0) i = kinds.push(k) - 1
      return i
    }
    const trace: TraceEntry[] = []
    let failures = 0
    let decisions = 0
    let tuplesStarted = 0
    let tuplesPassed = 0
    const tally = (status: string): void => {
      if (status === 'new' || status === 'expired') tuplesStarted++
      else if (status === 'retry') tuplesPassed++
    }
    const retries = new Retries()

    const attempt = async (m: number, k: number, at: number): Promise<void> => {
      const a = pop.attempt(m, k)
      const now = SIM_EPOCH + at
      const deps: Deps = { ...base, now: () => now }
      const sender = pop.sender_address(m)
      const recipient = pop.recipient_address(m)
      const input: RecipientInput = {
        subject: { ip: parseIp(a.ip), helo: a.helo || null, sender, recipient, relaying: false, isPrivate: false },
        given: {},
        connection: {},
        transaction: {},
      }
      const d = await decideRecipient(deps, input, deps.decisions)
      decisions++
      let accepted = answer(d, config) === 'accept'
      const { identity, kind, what: recipientWhat } = whatOf(d)
      let what = recipientWhat
      if (d.kind === 'failed') failures++
      if (d.kind === 'tuple' || d.kind === 'trusted') tally(d.verdict.status)
      if (isPostponed(d)) {
        // Accepted at RCPT; the end of data decides on the message's own record.
        const md = await decideMessage(deps, deps.decisions, [d], {
          sender,
          recipients: [recipient],
          messageId: pop.messageId(m),
          bodyDigest: pop.bodyDigest(m),
        })
        accepted = md.verdict.action === 'pass'
        tally(md.verdict.status)
        what = `message:${md.verdict.status}`
      }
      if (k === 0) firstKind[m] = kindIndex(kind)
      attempts[m] = k + 1
      if (opts.trace) trace.push({ message: m, attempt: k, at, ip: a.ip, answer: accepted ? 'accept' : 'defer', what, identity })
      const first = pop.arrival[m] ?? 0
      if (accepted) {
        delayMs[m] = at - first
        return
      }
      const next = pop.nextAfter(m, k, at - first)
      if (next === null || (opts.horizonMs !== undefined && next > opts.horizonMs)) delayMs[m] = -1
      else retries.push(first + Math.max(next, at - first + BATCH_MS), m, k + 1)
    }

    const started = process.hrtime.bigint()
    const inFlight = opts.inFlight ?? 256
    let nextArrival = 0
    let lastProgress = 0
    while (nextArrival < n || retries.size) {
      const t0 = Math.min(pop.arrival[nextArrival] ?? Infinity, retries.peek())
      const end = t0 + BATCH_MS
      clock = SIM_EPOCH + t0
      // Every event of the batch is independent: a message's next attempt is at least BATCH_MS later.
      const batch: [number, number, number][] = []
      while (nextArrival < n && (pop.arrival[nextArrival] ?? Infinity) < end) {
        if (!opts.only || opts.only.has(nextArrival)) batch.push([nextArrival, 0, pop.arrival[nextArrival] ?? 0])
        nextArrival++
      }
      while (retries.size && retries.peek() < end) {
        const [t, m, k] = retries.pop()
        batch.push([m, k, t])
      }
      let i = 0
      await Promise.all(
        Array.from({ length: Math.min(inFlight, batch.length) }, async () => {
          while (i < batch.length) {
            const [m, k, t] = batch[i++] ?? [0, 0, 0]
            await attempt(m, k, t)
          }
        }),
      )
      if (opts.progress && nextArrival - lastProgress >= 10_000) {
        lastProgress = nextArrival
        opts.progress(nextArrival, n)
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const after = await redisFigures(raw)
    return {
      keying,
      attempts,
      delayMs,
      firstKind,
      kinds,
      failures,
      seconds,
      decisions,
      roundTrips: trips.n,
      redis: {
        commands: after.commands - before.commands,
        usedMemoryBytes: after.usedMemoryBytes - before.usedMemoryBytes,
        keys: after.keys,
        masters: after.masters,
        cpuSeconds: after.cpuSeconds - before.cpuSeconds,
      },
      tuplesStarted,
      tuplesPassed,
      dnsQueries: Object.values(resolver.queries).reduce((a, b) => a + b, 0),
      ...(opts.trace ? { trace } : {}),
    }
  } finally {
    await closeRedis(db)
    // Removed at exit: haraka-config watches what it read and would report the removal now.
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  }
}
