// How old the providers' ranges are, for `config check` and `stats`: the shared refresh's records
// in Redis ([refresh]) and how its last attempt went.
import type { readShared } from '../plugins/smart-greylist/adapters/provider-refresh'

export type SharedState = Awaited<ReturnType<typeof readShared>>

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : s < 172_800 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86_400)} d ago`
}

/** What the report says, as data (`--json`) and as lines. */
export function providerData(state: SharedState | null, now: number): { json: unknown; lines: string[]; refused: number } {
  if (!state) return { json: null, lines: ['provider data: unknown (Redis unreachable)'], refused: 0 }
  const providers = [...state.shared.values()].map((s) => ({
    id: s.id,
    ranges: s.ranges.length,
    source: s.source,
    version: s.version,
    updated: new Date(s.updated).toISOString(),
    ageSeconds: Math.round((now - s.updated) / 1000),
  }))
  const lines = providers.map(
    (p) => `provider data: ${p.id} ${p.ranges} ranges from ${p.source}${p.version ? ` ${p.version}` : ''}, refreshed ${ago(p.ageSeconds * 1000)}`,
  )
  // A record that fails the bounds is not used by any MX; the admin should know it is there.
  const refused = state.refused.map((r) => ({ id: r.id, refused: r.refused }))
  for (const r of refused) lines.push(`provider data: ignoring the shared record of ${r.id} in Redis (its files' ranges stay): ${r.refused}`)
  const st = state.status
  if (!st) lines.push("provider data: never refreshed through Redis; the files' ranges are in force")
  else if (st.error) lines.push(`provider data: the last refresh (${ago(now - st.checked)}, ${st.by}) kept the last good data of ${st.error}`)
  else lines.push(`provider data: the last refresh (${ago(now - st.checked)}, ${st.by}) succeeded`)
  return {
    json: { providers, refused, lastRefresh: st ? { at: new Date(st.checked).toISOString(), by: st.by, error: st.error } : null },
    lines,
    refused: refused.length,
  }
}
