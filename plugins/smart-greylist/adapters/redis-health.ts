// Noticing a Redis that is connected but silent (CLIENT PAUSE, SIGSTOP, a black-holed link):
// node-redis sees an open socket and keeps writing. A TIME probe, bounded like every command,
// runs every ping_interval_ms; while it fails, decisions fail at once instead of queueing, and
// after dead_after_ms the client is dropped and made anew. The probe also measures the offset
// of Redis's clock, so a decision's script can refuse to run after its deadline.
//
// With a Cluster or Sentinel set every master is probed. A master that does not answer in time is
// silent: commands for the slots it holds fail at once (they would queue behind it), the other
// masters go on. One that refuses at once (killed, failing over) needs no gate, its commands fail
// by themselves; after dead_after_ms of failures the client is made anew, which is how it learns
// the new topology: node-redis follows MOVED replies, not a master that has gone away.
import type { RedisClient } from './haraka-types'
import { TimeoutError, withTimeout } from './timeout'

export interface HealthSettings {
  readonly timeoutMs: number
  readonly intervalMs: number
  readonly deadAfterMs: number
}

export class RedisHealth {
  private timer?: NodeJS.Timeout
  private probing = false
  private failingSince: number | null = null
  /** Redis's clock minus ours, in ms; null until the first probe answers. */
  private offsetMs: number | null = null
  /** Masters (host:port; '*' for a single Redis or the whole set) that the last probe found silent. */
  private silent = new Set<string>()

  constructor(
    private readonly client: () => RedisClient | undefined,
    private readonly settings: () => HealthSettings,
    private readonly now: () => number,
    private readonly onDead: (why: string) => void,
  ) {}

  start(): void {
    if (this.timer) return
    const tick = (): void => {
      void this.probe()
      this.timer = setTimeout(tick, this.settings().intervalMs)
      this.timer.unref()
    }
    tick()
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  /** False while any master is silent. */
  get responsive(): boolean {
    return this.silent.size === 0
  }

  /** Whether a command on `key` may be sent: its master answered the last probe. */
  responsiveFor(key: string | undefined): boolean {
    if (this.silent.size === 0) return true
    if (this.silent.has('*') || key === undefined) return false
    const master = this.client()?.sgMasterOf?.(key)
    return master !== undefined && !this.silent.has(master)
  }

  /** A new client starts with a clean slate. */
  reset(): void {
    this.silent.clear()
    this.failingSince = null
    this.offsetMs = null
  }

  /** The latest Redis time at which a command issued now may still act, or null if unknown. */
  deadline(timeoutMs: number): number | null {
    return this.offsetMs === null ? null : Math.round(this.now() + this.offsetMs + timeoutMs)
  }

  async probe(): Promise<void> {
    const db = this.client()
    // Not connected: node-redis reconnects, and commands fail at once meanwhile.
    if (!db || db.isReady === false || this.probing) return
    this.probing = true
    const { timeoutMs, deadAfterMs } = this.settings()
    const sent = this.now()
    try {
      const nodes = await withTimeout(db.sgMasters(), timeoutMs, 'Redis masters')
      const replies = await Promise.allSettled(nodes.map((n) => withTimeout(n.sendCommand(['TIME']), timeoutMs, 'Redis TIME')))
      const received = this.now()
      this.silent = new Set(nodes.filter((_, i) => isTimeout(replies[i])).map((n) => n.address ?? '*'))
      const first = replies.find((r): r is PromiseFulfilledResult<unknown> => r.status === 'fulfilled')
      if (first) {
        const t = first.value as string[]
        this.offsetMs = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000) - (sent + received) / 2
      }
      const failed = replies.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
      this.failingSince = null
    } catch (err) {
      if (err instanceof TimeoutError && !this.silent.size) this.silent.add('*')
      this.failingSince ??= sent
      if (this.now() - this.failingSince >= deadAfterMs) {
        this.failingSince = null
        this.onDead(`${err instanceof TimeoutError ? 'no answer' : 'failing'} for ${deadAfterMs} ms (${(err as Error).message})`)
      }
    } finally {
      this.probing = false
    }
  }
}

function isTimeout(r: PromiseSettledResult<unknown> | undefined): boolean {
  return r?.status === 'rejected' && r.reason instanceof TimeoutError
}
