// Concurrent SMTP sessions against a Haraka on loopback, for the fault tests and the SMTP-level
// benchmark: each session presents a public client address through PROXY, sends EHLO, MAIL, RCPT
// and (when the RCPT is accepted and asked to) a small message, and every reply is recorded with
// the time the RCPT took. Bounded: it stops by itself after its duration or session count.
import { performance } from 'node:perf_hooks'
import { SmtpSession } from './smtp'

export interface SessionPlan {
  readonly clientIp: string
  readonly from: string
  readonly to: string
}

export interface LoadOptions {
  readonly port: number
  readonly concurrency: number
  /** Stop starting sessions after this long. */
  readonly durationMs: number
  /** The n-th session's client and envelope. */
  readonly plan: (n: number) => SessionPlan
  /** Send a message after an accepted RCPT. */
  readonly data?: boolean
  /** Start at most this many sessions per second (unset: as fast as the sessions finish). */
  readonly rate?: number
  /** STARTTLS after EHLO (then EHLO again), as most mail arrives today. */
  readonly tls?: boolean
}

export interface RcptSample {
  /** When the RCPT was sent, ms since the load started. */
  readonly at: number
  readonly ms: number
  readonly code: number
}

export interface LoadResult {
  readonly sessions: number
  readonly elapsedMs: number
  readonly rcpt: RcptSample[]
  /** Codes of every reply after the greeting (EHLO, MAIL, RCPT, DATA, message), by code. */
  readonly codes: Record<string, number>
  /** Queue ids of the messages accepted with 250 after DATA. */
  readonly accepted: string[]
  /** Sessions that failed at the socket level (refused, reset, timed out). */
  readonly broken: number
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const started = Date.now()
  const rcpt: RcptSample[] = []
  const codes: Record<string, number> = {}
  const accepted: string[] = []
  let next = 0
  let broken = 0
  const count = (code: number): void => {
    codes[code] = (codes[code] ?? 0) + 1
  }
  const one = async (n: number): Promise<void> => {
    const p = opts.plan(n)
    let s: SmtpSession | undefined
    try {
      s = await SmtpSession.open(opts.port, p.clientIp)
      count((await s.command('EHLO client.example.net')).code)
      if (opts.tls) {
        await s.startTls()
        count((await s.command('EHLO client.example.net')).code)
      }
      count((await s.command(`MAIL FROM:<${p.from}>`)).code)
      const at = Date.now() - started
      const sent = performance.now()
      const r = await s.command(`RCPT TO:<${p.to}>`, 30_000)
      // Sub-millisecond: the overhead being measured is of that order.
      rcpt.push({ at, ms: Math.round((performance.now() - sent) * 100) / 100, code: r.code })
      count(r.code)
      if (opts.data && r.code === 250) {
        const d = await s.command('DATA')
        count(d.code)
        if (d.code === 354) {
          const m = await s.command(`From: <${p.from}>\r\nTo: <${p.to}>\r\nSubject: load ${n}\r\n\r\nHello.\r\n.`, 30_000)
          count(m.code)
          const id = /\(([0-9A-F-]+\.\d+)\)/i.exec(m.text)?.[1]
          if (m.code === 250 && id) accepted.push(id)
        }
      }
    } catch {
      broken++
    } finally {
      await s?.quit()
    }
  }
  const worker = async (): Promise<void> => {
    while (Date.now() - started < opts.durationMs) {
      const n = next++
      // Paced: session n starts no earlier than n / rate seconds after the start.
      if (opts.rate) {
        const wait = started + (n * 1000) / opts.rate - Date.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        if (Date.now() - started >= opts.durationMs) break
      }
      await one(n)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  return { sessions: next, elapsedMs: Date.now() - started, rcpt, codes, accepted, broken }
}

export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}
