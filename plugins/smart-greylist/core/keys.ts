// The Redis key schema, in one place. Keys hold a digest, never raw client input, so a hostile
// sender or PTR name cannot shape keys (length, separators, binary) or collide with other data.
//
//   <prefix>t:<digest>   hash {f: first seen ms, p: passed at ms,    TTL retry_window, then pass_ttl
//                              i: identity, s: sender, r: recipient}
//   <prefix>a:<digest>   hash {n: passes, i: identity, d: domain}   TTL awl ttl, refreshed on use
//   <prefix>n:<digest>   string: new tuples the identity started     TTL retry_window from the first
//   <prefix>s:<digest>   string "1" permissive / "0" strict SPF     TTL identity spf_guard_ttl
//   <prefix>st:<day>, <prefix>si:<day>: statistics, see stats.ts
import { createHash } from 'node:crypto'

export function digest(...parts: string[]): string {
  // NUL cannot occur in an identity or in a normalised address, so fields cannot run together.
  return createHash('sha256').update(parts.join('\0')).digest('base64url').slice(0, 22)
}

export function tupleKey(prefix: string, identity: string, sender: string, recipient: string): string {
  return `${prefix}t:${digest(identity, sender, recipient)}`
}

/** `scope`: the provider pool or network the entry was earned in (see identity.ts awlScope). */
export function awlKey(prefix: string, identity: string, senderDomain: string, scope: string): string {
  return `${prefix}a:${digest(identity, senderDomain, scope)}`
}

/** The count of new tuples one identity started in the current window ([limits]). */
export function startedKey(prefix: string, identity: string): string {
  return `${prefix}n:${digest(identity)}`
}

export function spfGuardKey(prefix: string, domain: string): string {
  return `${prefix}s:${digest(domain)}`
}
