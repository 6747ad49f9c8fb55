// The life of one Redis connection the plugin keeps (the decisions' one, and the admin reads'):
// the client made by openRedis, the one way a client is made, so both connections read the same
// database with the same options; connecting bounded and retried; the client made anew when the
// settings point elsewhere or it stopped answering; closed on shutdown.
import type { RedisClient } from './haraka-types'
import { closeRedis, openRedis, redisTarget, type Logger, type RedisOptions } from './redis-client'
import { withTimeout } from './timeout'

/** Connecting (TCP, then INFO) may take this long before it is given up and retried. */
const CONNECT_BOUND_MS = 5000
const RETRY_MS = 5000

/** Where the client is kept: the decisions' one stays on the plugin as `db`, as Haraka plugins keep theirs. */
export interface ClientSlot {
  get(): RedisClient | undefined
  set(db: RedisClient | undefined): void
}

export class RedisConnection {
  private options?: RedisOptions
  /** open() was called and close() not since: connecting is allowed. */
  private wanted = false
  private connecting = false
  private retryTimer?: NodeJS.Timeout
  private own?: RedisClient
  private readonly slot: ClientSlot

  /** `what` names the connection in log lines ('' for the decisions'). */
  constructor(
    private readonly what: string,
    private readonly log: Logger,
    private readonly onConnect: () => void = () => undefined,
    slot?: ClientSlot,
  ) {
    this.slot = slot ?? { get: () => this.own, set: (db) => (this.own = db) }
  }

  get client(): RedisClient | undefined {
    return this.slot.get()
  }

  /** The options to connect with (each reload); a client connected elsewhere is closed and made anew. */
  configure(options: RedisOptions): void {
    const db = this.slot.get()
    if (this.options && db && redisTarget(this.options) !== redisTarget(options)) {
      this.log.loginfo(`Redis settings changed: reconnecting${this.named()} to ${redisTarget(options)}`)
      this.slot.set(undefined)
      void closeRedis(db)
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
    const old = this.slot.get()
    if (!old) return
    this.slot.set(undefined)
    void closeRedis(old, 200)
    this.connect()
  }

  close(): void {
    this.wanted = false
    if (this.retryTimer) clearTimeout(this.retryTimer)
    const db = this.slot.get()
    this.slot.set(undefined)
    void closeRedis(db)
  }

  private connect(): void {
    if (!this.wanted || this.slot.get() || this.connecting || !this.options) return
    this.connecting = true
    // Connecting includes an INFO that a silent Redis never answers: bounded, and a client that
    // connects after we gave up on it (or after close()) is closed rather than leaked.
    const target = redisTarget(this.options)
    const opening = openRedis(this.options, this.log)
    withTimeout(opening, CONNECT_BOUND_MS, 'Redis connect')
      .then((client) => {
        if (!this.wanted) return void closeRedis(client, 200)
        this.slot.set(client)
        if (this.what) this.log.loginfo(`${this.what}: connected to ${target} on a connection of their own`)
        this.onConnect()
      })
      .catch((err: Error) => {
        opening.then((late) => closeRedis(late, 200)).catch(() => undefined)
        if (!this.wanted) return
        this.log.logwarn(`Redis not reachable${this.named()} (${err.message}); ${this.what ? '' : 'failing open, '}retrying in 5 s`)
        this.retryTimer = setTimeout(() => this.connect(), RETRY_MS)
        this.retryTimer.unref()
      })
      .finally(() => {
        this.connecting = false
      })
  }

  private named(): string {
    return this.what ? ` (${this.what})` : ''
  }
}
