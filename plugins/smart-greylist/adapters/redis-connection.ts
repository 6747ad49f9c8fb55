// The life of one Redis connection the plugin keeps (the decisions' one, and the admin reads'):
// the client made by openRedis, the one way a client is made, so both connections read the same
// database with the same options; one client at a time, whatever Redis does; the client made
// anew when the settings point elsewhere or it stopped answering; closed on shutdown; and the
// log told of each change of state, not of each attempt.
//
// A single Redis's client reconnects by itself (node-redis's reconnectStrategy, back-off bounded
// at 5 s): a Redis that is down, at start or later, costs one client and one attempt at a time,
// never a new client per attempt. A new client is made only when the last one is gone: torn down
// as silent (it accepted the connection and never answered), dropped by the health watch, or
// moved by the settings. A Cluster's or Sentinel set's client gives up by itself after a few
// attempts (redis-client.ts); it is then made anew, after the one before has been let go.
import type { RedisClient } from './haraka-types'
import { causeOf, causeText, closeRedis, openRedis, redisTarget, type DownCause, type LinkWatch, type Logger, type RedisOptions } from './redis-client'
import { withTimeout } from './timeout'

/** A Cluster's or Sentinel set's connect (TCP, then the topology) may take this long. */
const CONNECT_BOUND_MS = 5000
/** A new client after the last one was torn down: 1 s, doubling, at most 30 s. */
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 30_000
/** While Redis stays unreachable: a line after 1 min, then at doubling intervals of at most 15 min. */
const SUMMARY_FIRST_MS = 60_000
const SUMMARY_MAX_MS = 15 * 60_000

/** Where the client is kept: the decisions' one stays on the plugin as `db`, as Haraka plugins keep theirs. */
export interface ClientSlot {
  get(): RedisClient | undefined
  set(db: RedisClient | undefined): void
}

interface Outage {
  readonly since: number
  cause: DownCause
  message: string
  /** When the next "still unreachable" line is due, and the interval after it. */
  next: number
  every: number
}

export class RedisConnection {
  private options?: RedisOptions
  /** open() was called and close() not since: connecting is allowed. */
  private wanted = false
  private connecting = false
  private retryTimer?: NodeJS.Timeout
  private retries = 0
  private own?: RedisClient
  private readonly slot: ClientSlot
  /** Tears down the client being made or in use (a single Redis's), connected or not. */
  private closeCurrent?: (ms: number) => Promise<void>
  /** Bumped whenever the current client is let go: what an older one still reports is ignored. */
  private generation = 0
  /** Connected once since open(): later failures are "lost", not "unreachable". */
  private everUp = false
  private outage: Outage | null = null
  /** Decisions that failed open since the outage began. */
  private failedOpen = 0

  /** `what` names the connection in log lines ('' for the decisions'). */
  constructor(
    private readonly what: string,
    private readonly log: Logger,
    private readonly onConnect: () => void = () => undefined,
    slot?: ClientSlot,
    private readonly now: () => number = Date.now,
  ) {
    this.slot = slot ?? { get: () => this.own, set: (db) => (this.own = db) }
  }

  get client(): RedisClient | undefined {
    return this.slot.get()
  }

  /** Whether Redis is unreachable now, as the log last told it. */
  get down(): boolean {
    return this.outage !== null
  }

  /** A decision failed open (counted for the line that says greylisting resumed). */
  noteFailedOpen(): void {
    this.failedOpen++
  }

  /** The options to connect with (each reload); a client connected elsewhere is closed and made anew. */
  configure(options: RedisOptions): void {
    if (this.options && redisTarget(this.options) !== redisTarget(options)) {
      if (this.slot.get() || this.connecting) this.log.loginfo(`Redis settings changed: reconnecting${this.named()} to ${redisTarget(options)}`)
      this.letGo(1000)
      this.outage = null
      this.everUp = false
      this.retries = 0
    }
    this.options = options
    this.connect()
  }

  /** Connects, and keeps connecting until close(); start-up never waits for it. */
  open(): void {
    this.wanted = true
    this.connect()
  }

  /** Drops a client that stopped answering (a black-holed link can stay "open" for minutes) and connects anew. */
  drop(): void {
    if (!this.slot.get()) return
    // The caller logged why; the outage begins here, so the line when it ends tells its length.
    this.lost('silent', 'no answer to the health probe', true)
    // At once: its commands have failed open already, and their late replies are not wanted.
    this.letGo(0)
    this.connect()
  }

  close(): void {
    this.wanted = false
    this.letGo(1000)
    this.outage = null
    this.everUp = false
    this.retries = 0
  }

  /** Lets the current client go (within `ms` for replies in flight) and forgets what it will still say. */
  private letGo(ms: number): void {
    this.generation++
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const db = this.slot.get()
    const close = this.closeCurrent
    this.slot.set(undefined)
    this.closeCurrent = undefined
    this.connecting = false
    if (close) void close(ms)
    else void closeRedis(db, Math.max(ms, 200))
  }

  private connect(): void {
    if (!this.wanted || this.slot.get() || this.connecting || !this.options) return
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.connecting = true
    const generation = ++this.generation
    const current = (): boolean => generation === this.generation
    const target = redisTarget(this.options)
    if (this.options.topology.kind !== 'single') return this.connectSet(target, current)
    const watch: LinkWatch = {
      closer: (close) => {
        if (current()) this.closeCurrent = close
        else void close(0)
      },
      down: (cause, message, gone) => {
        if (!current()) return
        this.lost(cause, message)
        // Torn down after it had connected (silent on reconnecting): the next client, later.
        if (gone && this.slot.get()) {
          this.generation++
          this.slot.set(undefined)
          this.closeCurrent = undefined
          this.retryLater()
        }
      },
      up: () => {
        if (current()) this.back(target)
      },
    }
    openRedis(this.options, this.log, watch).then(
      (client) => {
        if (!current() || !this.wanted) return void closeRedis(client, 0)
        this.connecting = false
        this.retries = 0
        this.slot.set(client)
        this.onConnect()
      },
      (err: Error) => {
        if (!current()) return
        // Given up before connecting: torn down as silent, or options that do not retry.
        this.generation++
        this.closeCurrent = undefined
        this.connecting = false
        this.lost(causeOf(err), err.message)
        this.retryLater()
      },
    )
  }

  /**
   * A Cluster's or Sentinel set's client: connecting is bounded, and the next one is made only
   * once this one has settled (it gives up by itself), so there is never more than one.
   */
  private connectSet(target: string, current: () => boolean): void {
    const opening = openRedis(this.options as RedisOptions, this.log)
    // Settled either way: only then may the next client be made.
    const settled = opening.then(
      () => undefined,
      () => undefined,
    )
    withTimeout(opening, CONNECT_BOUND_MS, 'Redis connect').then(
      (client) => {
        if (!current() || !this.wanted) return void closeRedis(client, 200)
        this.connecting = false
        this.retries = 0
        this.slot.set(client)
        // openRedis logged the connect itself; said again only to name the admin reads' or a resume.
        if (this.outage || this.what) this.back(target)
        else this.everUp = true
        this.onConnect()
      },
      (err: Error) => {
        // A client that connects after we gave up on it is closed rather than leaked.
        opening.then((late) => closeRedis(late, 200)).catch(() => undefined)
        if (!current()) return
        this.lost(causeOf(err), err.message)
        void settled.then(() => {
          if (!current()) return
          this.connecting = false
          this.retryLater()
        })
      },
    )
  }

  private retryLater(): void {
    if (!this.wanted) return
    const ms = Math.min(RETRY_FIRST_MS * 2 ** this.retries, RETRY_MAX_MS)
    this.retries++
    this.retryTimer = setTimeout(() => this.connect(), ms)
    this.retryTimer.unref()
  }

  /** A failure: one line when the outage begins, then a summary now and then, never one per attempt. */
  private lost(cause: DownCause, message: string, quiet = false): void {
    const now = this.now()
    const target = this.options ? redisTarget(this.options) : 'Redis'
    if (!this.outage) {
      this.outage = { since: now, cause, message, next: now + SUMMARY_FIRST_MS, every: SUMMARY_FIRST_MS }
      this.failedOpen = 0
      if (quiet) return
      this.log.logwarn(
        `Redis ${target}${this.named()} ${this.everUp ? 'lost' : 'unreachable'} (${causeText(cause, message)}); ` +
          `${this.what ? '' : 'failing open (mail accepted, not greylisted); '}retrying, a line when it is back`,
      )
      return
    }
    this.outage.cause = cause
    this.outage.message = message
    if (now < this.outage.next) return
    this.outage.every = Math.min(this.outage.every * 2, SUMMARY_MAX_MS)
    this.outage.next = now + this.outage.every
    this.log.logwarn(
      `Redis ${target}${this.named()} still unreachable after ${duration(now - this.outage.since)} (${causeText(cause, message)})` +
        (this.what ? '' : `; failing open: ${this.failedOpen} decision(s) accepted without greylisting so far`),
    )
  }

  /** Connected (the first time, or again): one line. */
  private back(target: string): void {
    const outage = this.outage
    this.outage = null
    const first = !this.everUp
    this.everUp = true
    if (outage) {
      const after = `after ${duration(this.now() - outage.since)} unreachable`
      this.log.loginfo(
        this.what
          ? `${this.what}: connected to ${target} on a connection of their own (${after})`
          : `connected to ${target}: greylisting resumed ${after}; ${this.failedOpen} decision(s) failed open meanwhile`,
      )
    } else if (first) this.log.loginfo(this.what ? `${this.what}: connected to ${target} on a connection of their own` : `connected to ${target}`)
  }

  private named(): string {
    return this.what ? ` (${this.what})` : ''
  }
}

/** "45 s", "3 min 5 s", "2 h 10 min": for log lines. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`
}
