// Envelope addresses as they enter a tuple key: one spelling per mailbox, so that a retry of
// the same message matches even when the sender's software rewrote the address for it.
// Undone here: case, trailing dot, +extension, BATV tags (prvs=, btv1==), SRS0/SRS1 forwarding,
// and VERP-style per-message tokens (long digit or hex runs). The null sender stays "<>".

export const NULL_SENDER = '<>'

/**
 * The one way an address is split: angle brackets and spaces off, split at its last `@`, case and
 * the domain's trailing dot folded. Without an `@`: the text alone, lower-cased ('' for none).
 */
function splitAddress(address: string | null | undefined): { local: string; domain: string } | string {
  const a = (address ?? '').trim().replace(/^<|>$/g, '')
  const at = a.lastIndexOf('@')
  if (at < 0) return a.toLowerCase()
  return {
    local: a.slice(0, at).toLowerCase(),
    domain: a
      .slice(at + 1)
      .toLowerCase()
      .replace(/\.$/, ''),
  }
}

/** Normalises an envelope address for keys and whitelist matching. */
export function normaliseAddress(address: string | null | undefined): string {
  const split = splitAddress(address)
  if (typeof split === 'string') return split || NULL_SENDER
  let { local, domain } = split
  const srs = unSrs(local)
  if (srs) ({ local, domain } = srs)
  local = unBatv(local)
  local = local.replace(/\+.*$/, '') || local
  local = unVerp(local)
  return `${local}@${domain}`
}

/** SRS0=HHH=TT=orig-domain=orig-local, SRS1=HHH=fwd==HHH=TT=orig-domain=orig-local. */
function unSrs(local: string): { local: string; domain: string } | null {
  const m = /^srs[01][=+-](.*)$/.exec(local)
  if (!m) return null
  // SRS1 carries the SRS0 part after "==" (the first forwarder's hash and name come before).
  const rest = m[1] ?? ''
  const tail = rest.includes('==') ? rest.slice(rest.lastIndexOf('==') + 2) : rest
  const parts = tail.split('=')
  // hash, timestamp, domain, local (the local part may itself contain "=")
  if (parts.length < 4) return null
  const domain = parts[2]
  const origLocal = parts.slice(3).join('=')
  if (!domain || !origLocal || !/^[a-z0-9.-]+\.[a-z0-9-]+$/.test(domain)) return null
  return { local: origLocal, domain }
}

/** prvs=KDDDSSSSSS=local, prvs=local/tag forms, and Barracuda's btv1==TAG==local. */
function unBatv(local: string): string {
  let m = /^prvs=[0-9a-z]+=(.+)$/.exec(local)
  if (m?.[1]) return m[1]
  m = /^btv1==[0-9a-z]+==(.+)$/.exec(local)
  if (m?.[1]) return m[1]
  m = /^(.+)=prvs=[0-9a-z]+$/.exec(local)
  if (m?.[1]) return m[1]
  return local
}

/**
 * Per-message tokens that list managers put in the local part: `bounce-1234567-…`,
 * `msgid_4f3a9c0d2e1b7a6c`. A run of 6+ digits, or 10+ hex characters with a digit and a
 * letter, becomes "#"; ordinary local parts have neither.
 */
function unVerp(local: string): string {
  return local.replace(/[0-9a-f]{10,}/g, (run) => (/[0-9]/.test(run) && /[a-f]/.test(run) ? '#' : run)).replace(/[0-9]{6,}/g, '#')
}

/**
 * A recipient as it enters a tuple key: case and trailing dot folded, `+extension` stripped when
 * asked. Nothing else: recipients are our own mailboxes, and folding digits or tags would merge
 * distinct ones (`user1234567@` and `user7654321@`, `prvs=…=postmaster@` and `postmaster@`).
 */
export function normaliseRecipient(address: string | null | undefined, stripExt: boolean): string {
  const split = splitAddress(address)
  if (typeof split === 'string') return split
  const { local, domain } = split
  return `${(stripExt && local.replace(/\+.*$/, '')) || local}@${domain}`
}

export function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@')
  return at < 0 ? null : address.slice(at + 1)
}

/**
 * The domain of an envelope address as the client sent it (case and trailing dot folded, nothing
 * undone): what SPF and any other authentication speak for. Null for the null sender.
 */
export function sentDomain(address: string | null | undefined): string | null {
  const split = splitAddress(address)
  return typeof split === 'string' ? null : split.domain || null
}
