// The Redis key schema, in one place. Keys hold a digest, never raw client input, so a hostile
// sender or PTR name cannot shape keys (length, separators, binary) or collide with other data.
//
// Every key one decision touches carries the same Redis Cluster hash tag, `{<shard>}`, the shard
// being a digest of the identity modulo SHARDS: the decision's script then runs on one node
// (a script's keys must share a slot), the identities spread over SHARDS slots, and the day's
// statistics are SHARDS small hashes instead of one hot key. The same layout serves a single
// Redis, where the tag costs nothing.
//
//   <prefix>{<shard>}t:<digest>  hash {f: first seen ms, p: passed at ms,   TTL retry_window, then pass_ttl
//                                      i: identity, s: sender, r: recipient}
//   <prefix>{<shard>}a:<digest>  hash {n: passes, i: identity, d: domain}  TTL awl ttl, refreshed on use
//   <prefix>{<shard>}n:<digest>  string: new tuples the identity started    TTL retry_window from the first
//   <prefix>{<shard>}st:<day>, <prefix>{<shard>}si:<day>: statistics, see stats.ts
//   <prefix>{<shard>}c:<digest>  hash {m: mailbox, <digest(domain)>: "<expires ms>|<domain>"}
//                                a local mailbox's correspondents           TTL correspondents ttl, refreshed on write
//   <prefix>s:<digest>           string "1" permissive / "0" strict SPF    TTL identity spf_guard_ttl
//   <prefix>mx:stuck             hash {n: stuck pairs, at: ms}             TTL 3 x [metrics] stuck_every
//   <prefix>mx:stuck:gate        string: the process counting now          TTL [metrics] stuck_every
import crypto from 'node:crypto'

/**
 * Slots the state is spread over. Fixed: a different count would move every key. 256 spreads
 * evenly over any practical number of cluster masters and keeps the daily statistics (one
 * hash per shard) cheap to add up.
 */
export const SHARDS = 256

// One-shot hashing (Node >= 20.12) costs half of createHash's object per call; it runs several
// times per decision.
// (Node's types declare it; it may still be missing at run time on an older Node 20.)
const sha256: (text: string, encoding: 'base64url') => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (text, encoding) => crypto.hash('sha256', text, encoding)
    : (text, encoding) => crypto.createHash('sha256').update(text).digest(encoding)

export function digest(...parts: string[]): string {
  // NUL cannot occur in an identity or in a normalised address, so fields cannot run together.
  return sha256(parts.join('\0'), 'base64url').slice(0, 22)
}

/** The shard of a digest: its first 16 bits, the same as of the value's SHA-256. */
function shardOfDigest(d: string): number {
  return Buffer.from(d.slice(0, 4), 'base64url').readUInt16BE(0) % SHARDS
}

/** The shard of an identity (or of any string, for counts that have no identity). */
export function shardOf(value: string): number {
  return shardOfDigest(digest(value))
}

/** The key prefix of a shard, hash tag included. */
export function shardPrefix(prefix: string, shard: number): string {
  return `${prefix}{${shard}}`
}

/** The keys of one identity's records, all in the identity's shard. */
export interface IdentityKeys {
  readonly shard: number
  tuple(sender: string, recipient: string): string
  /** `scope`: the provider pool or network the entry was earned in (see identity.ts awlScope). */
  awl(senderDomain: string, scope: string): string
  /** The count of new tuples the identity started in the current window ([limits]). */
  readonly started: string
}

export function identityKeys(prefix: string, identity: string): IdentityKeys {
  // The identity's own digest names its counter and gives its shard: one hash for both.
  const own = digest(identity)
  const shard = shardOfDigest(own)
  const p = shardPrefix(prefix, shard)
  return {
    shard,
    tuple: (sender, recipient) => `${p}t:${digest(identity, sender, recipient)}`,
    awl: (senderDomain, scope) => `${p}a:${digest(identity, senderDomain, scope)}`,
    started: `${p}n:${own}`,
  }
}

export function tupleKey(prefix: string, identity: string, sender: string, recipient: string): string {
  return identityKeys(prefix, identity).tuple(sender, recipient)
}

/** The hash of a local mailbox's correspondents (in the mailbox's shard). */
export function correspondentKey(prefix: string, mailbox: string): string {
  return `${shardPrefix(prefix, shardOf(mailbox))}c:${digest(mailbox)}`
}

/** A correspondent domain's field in that hash. */
export function correspondentField(domain: string): string {
  return digest(domain)
}

export function spfGuardKey(prefix: string, domain: string): string {
  return `${prefix}s:${digest(domain)}`
}

/** SCAN patterns of each kind of record, across all shards. */
/**
 * A message deferred at end of data (`[main] net_identity_greylist = message`): named by its digest alone,
 * so a retry from any address finds it; sharded by that digest.
 */
export function messageKeys(prefix: string, messageDigest: string): { shard: number; key: string } {
  const shard = shardOfDigest(messageDigest)
  return { shard, key: `${shardPrefix(prefix, shard)}m:${messageDigest}` }
}

/**
 * What names a message across its retries, whatever address sends it: the (normalised) sender,
 * the recipients in order, the Message-ID and the digest of a bounded prefix of the body.
 * Received lines and other headers a relay adds are left out.
 */
export function messageDigest(sender: string, recipients: readonly string[], messageId: string, bodyDigest: string): string {
  return digest(sender, [...recipients].sort().join(' '), messageId.trim(), bodyDigest)
}

/**
 * The providers' fresh ranges, shared by every MX (`[refresh]`): one hash per provider, the
 * refresh's lock, and how its last attempt went. Few keys, not sharded: one hash tag puts them
 * in one Cluster slot, as the script that writes a record only while the lock is held reads both.
 */
export function providerKeys(prefix: string): { ranges: (id: string) => string; lock: string; status: string } {
  return { ranges: (id) => `${prefix}{pv}r:${id}`, lock: `${prefix}{pv}lock`, status: `${prefix}{pv}status` }
}

/**
 * The metrics' count of stuck senders, made by one process of the site at a time: the count
 * ({n, at}) and the gate that lets one process in per period. Not sharded.
 */
export function stuckCountKeys(prefix: string): { count: string; gate: string } {
  return { count: `${prefix}mx:stuck`, gate: `${prefix}mx:stuck:gate` }
}

export const KEY_PATTERNS = {
  tuples: (prefix: string) => `${prefix}{*}t:*`,
  messages: (prefix: string) => `${prefix}{*}m:*`,
  awl: (prefix: string) => `${prefix}{*}a:*`,
  started: (prefix: string) => `${prefix}{*}n:*`,
  correspondents: (prefix: string) => `${prefix}{*}c:*`,
  spfGuard: (prefix: string) => `${prefix}s:*`,
} as const

/**
 * 0.4's keys (no shard): `<prefix>t:`, `<prefix>a:` hold their identity (field i), which gives
 * the shard they belong in now; the digest after the kind is computed as before, so a record
 * keeps its name in its shard. Statistics go to shard 0 (the command adds the shards up).
 */
export const LEGACY_PATTERNS = {
  tuples: (prefix: string) => `${prefix}t:*`,
  awl: (prefix: string) => `${prefix}a:*`,
  counters: (prefix: string) => `${prefix}st:*`,
  identities: (prefix: string) => `${prefix}si:*`,
} as const

/** Where a 0.4 record lives now, or null when its key is not one of 0.4's. */
export function migratedKey(prefix: string, legacyKey: string, identity: string | null): string | null {
  const m = /^(t|a|st|si):(.+)$/.exec(legacyKey.startsWith(prefix) ? legacyKey.slice(prefix.length) : '')
  if (!m) return null
  const [, kind, rest] = m
  if (kind === 'st' || kind === 'si') return `${shardPrefix(prefix, 0)}${kind}:${rest}`
  return identity ? `${shardPrefix(prefix, shardOf(identity))}${kind}:${rest}` : null
}
