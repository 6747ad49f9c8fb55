// The end of data under `[main] net_identity_greylist = message`: the digest of the body's first bytes
// (streamed, bounded in bytes and time), the message's record through the tuple store, and the
// pass that the message's retry earns its postponed tuples.
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import { timingFrom } from '../core/decision'
import { messagePlan, provenTiming, type MessageDecision, type MessageFacts, type PostponedRecipient } from '../core/message'
import type { Deps } from './deps'
import type { MessageStream } from './haraka-types'
import type { TupleStore } from './recipient'
import { withTimeout } from './timeout'

/**
 * SHA-256 (hex) of the first `maxBytes` of the body, headers left out, line endings as `\n`.
 * The stream is let go as soon as the prefix is read: a large message costs no more than that.
 */
export function bodyDigest(stream: MessageStream | undefined, maxBytes: number, timeoutMs: number): Promise<string> {
  const hash = createHash('sha256')
  if (!stream || maxBytes <= 0) return Promise.resolve(hash.digest('hex'))
  let left = maxBytes
  let result: string | undefined
  const done = new Promise<string>((resolve, reject) => {
    const finish = (): void => {
      result ??= hash.digest('hex')
      resolve(result)
    }
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (left > 0) {
          const part = chunk.subarray(0, left)
          hash.update(part)
          left -= part.length
        }
        if (left > 0 || !stream.unpipe) return callback()
        // Stop reading: the rest of the message is not in the key. The pipe is torn down once
        // this write has returned, and only then is the stream free for the queue to read.
        stream.pause?.()
        setImmediate(() => {
          stream.unpipe?.()
          stream.resume?.()
          finish()
        })
        callback()
      },
    })
    sink.once('finish', finish)
    sink.once('error', reject)
    stream.pipe(sink, { skip_headers: true, line_endings: '\n' })
  })
  return withTimeout(done, timeoutMs, 'reading the message body')
}

/**
 * The message's verdict, from its own record; on a pass, every postponed tuple passes too (its
 * message proved the retry), so the next mail of those tuples is known.
 */
export async function decideMessage(deps: Deps, store: TupleStore, postponed: readonly PostponedRecipient[], facts: MessageFacts): Promise<MessageDecision> {
  const { config } = deps
  const plan = messagePlan(postponed, facts, config)
  const stats = { prefix: config.redis.prefix, shadow: false, ttlDays: config.stats.days, identitiesMax: config.stats.identities }
  const verdict = await store.check(plan.ref, deps.now(), plan.timing, { ...stats, label: 'message' })
  if (verdict.action === 'pass') {
    const proven = provenTiming(timingFrom(config))
    // Counted once, as the message's retry: the tuples' passes are not counted again.
    await Promise.all(postponed.map((p) => store.check(p.postponed, deps.now(), proven, { ...stats, ttlDays: 0 })))
  }
  return { verdict, digest: plan.digest, identity: plan.ref.identity, recipients: facts.recipients.length }
}
