// Envelope addresses as they enter a tuple key: one spelling per mailbox, so that a retry
// written differently (case, trailing dot) still matches. The null sender is kept as "<>".

export const NULL_SENDER = '<>'

export function normaliseAddress(address: string | null | undefined): string {
  const a = (address ?? '').trim().replace(/^<|>$/g, '')
  if (!a) return NULL_SENDER
  const at = a.lastIndexOf('@')
  if (at < 0) return a.toLowerCase()
  const local = a.slice(0, at).toLowerCase()
  const domain = a.slice(at + 1).toLowerCase().replace(/\.$/, '')
  return `${local}@${domain}`
}

export function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@')
  return at < 0 ? null : address.slice(at + 1)
}
