// Noticing a Redis that is connected but silent (CLIENT PAUSE, SIGSTOP, a black-holed link):
// node-redis sees an open socket and keeps writing. A TIME probe, bounded like every command,
// runs every ping_interval_ms; while it fails, decisions fail at once instead of queueing, and
// after dead_after_ms the client is dropped and made anew. The probe also measures the offset
// of Redis's clock, so a decision's script can refuse to run after its deadline.
//
// With a Cluster or Sentinel set every master is probed. Only a master that does not answer in
// time marks Redis silent (commands would queue behind it); one that refuses at once (killed,
// failing over) leaves the others in use, and after dead_after_ms the client is made anew,
// which is how it learns the new topology: node-redis follows MOVED replies, not a master
// that has gone away.
import type { RedisClient } from './haraka-types'
import { masterNodes } from './redis-client'
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
  /** False while the last probe got no answer in time. */
  responsive = true

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

  /** A new client starts with a clean slate. */
  reset(): void {
    this.responsive = true
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
      const nodes = await withTimeout(masterNodes(db), timeoutMs, 'Redis masters')
      const replies = await Promise.allSettled(nodes.map((n) => withTimeout(n.sendCommand(['TIME']), timeoutMs, 'Redis TIME')))
      const received = this.now()
      const failed = replies.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      this.responsive = !replies.some((r) => r.status === 'rejected' && r.reason instanceof TimeoutError)
      const first = replies.find((r): r is PromiseFulfilledResult<unknown> => r.status === 'fulfilled')
      if (first) {
        const t = first.value as string[]
        this.offsetMs = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000) - (sent + received) / 2
      }
      if (failed) throw failed.reason
      this.failingSince = null
    } catch (err) {
      if (err instanceof TimeoutError) this.responsive = false
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
