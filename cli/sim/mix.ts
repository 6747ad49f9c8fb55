// The mix a simulation replays: how many messages of each sender class a site receives in a
// day, and how many messages each sender sends to it. A JSON file an admin can edit (the shipped
// default is docs/simulation-mix.json, argued in docs/simulation.md); read with bounds, so a
// hand-edited file gives a clear error, never a run that exhausts memory.
import fs from 'node:fs'
import path from 'node:path'
import { packageRoot } from '../../plugins/smart-greylist/setup'

/**
 * The most messages a run takes: the population and its trace are held in memory (a 1M-message
 * day peaks at 1.6 GB, docs/simulation.md), so more would end in an out-of-memory crash, not a report.
 */
export const MAX_MESSAGES = 5_000_000

export const CLASS_IDS = [
  'exchange_online',
  'gmail',
  'amazon_ses',
  'esp_long_tail',
  'company_mta',
  'pool_no_ptr',
  'spam_no_retry',
  'spam_same_address',
  'spam_botnet',
  'snowshoe',
] as const
export type ClassId = (typeof CLASS_IDS)[number]

export interface ClassMix {
  /** Share of the day's messages (the shares are normalised to 1). */
  readonly share: number
  /** Messages one sender (tenant, user, bot, domain) sends to the site in the day, on average. */
  readonly messages_per_sender: number
  /** amazon_ses: the fraction of messages whose sender caps delivery attempts at 300 s. */
  readonly capped_fraction?: number
}

export interface Mix {
  /** Mailboxes at the site. */
  readonly recipients: number
  /** Messages in the day, unless the run says otherwise (--messages). */
  readonly messages: number
  readonly classes: Readonly<Record<ClassId, ClassMix>>
}

export const DEFAULT_MIX_FILE = 'docs/simulation-mix.json'
const MAX_FILE_BYTES = 64 * 1024

export function defaultMixPath(): string {
  return path.join(packageRoot(__dirname), DEFAULT_MIX_FILE)
}

function num(v: unknown, what: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
    throw new Error(`${what}: a number from ${lo} to ${hi} is needed, got ${JSON.stringify(v)}`)
  return v
}

/** A mix from parsed JSON; unknown classes and keys are errors (a typo must not go unnoticed). */
export function parseMix(raw: unknown, origin: string): Mix {
  if (!raw || typeof raw !== 'object') throw new Error(`${origin}: a JSON object is needed`)
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o)) if (!['about', 'sources', 'recipients', 'messages', 'classes'].includes(k)) throw new Error(`${origin}: unknown key "${k}"`)
  const classesRaw = o.classes
  if (!classesRaw || typeof classesRaw !== 'object') throw new Error(`${origin}: "classes" must be an object`)
  const classes = {} as Record<ClassId, ClassMix>
  for (const [id, v] of Object.entries(classesRaw as Record<string, unknown>)) {
    if (!(CLASS_IDS as readonly string[]).includes(id)) throw new Error(`${origin}: unknown class "${id}" (known: ${CLASS_IDS.join(', ')})`)
    if (!v || typeof v !== 'object') throw new Error(`${origin}: class ${id} must be an object`)
    const c = v as Record<string, unknown>
    for (const k of Object.keys(c))
      if (!['share', 'messages_per_sender', 'capped_fraction', 'about'].includes(k)) throw new Error(`${origin}: class ${id}: unknown key "${k}"`)
    classes[id as ClassId] = {
      share: num(c.share, `${origin}: ${id}.share`, 0, 1e6),
      messages_per_sender: num(c.messages_per_sender, `${origin}: ${id}.messages_per_sender`, 1, 1e6),
      ...(c.capped_fraction === undefined ? {} : { capped_fraction: num(c.capped_fraction, `${origin}: ${id}.capped_fraction`, 0, 1) }),
    }
  }
  for (const id of CLASS_IDS) classes[id] ??= { share: 0, messages_per_sender: 1 }
  if (!CLASS_IDS.some((id) => classes[id].share > 0)) throw new Error(`${origin}: every share is 0`)
  return {
    recipients: Math.round(num(o.recipients, `${origin}: recipients`, 1, 10_000_000)),
    messages: Math.round(num(o.messages, `${origin}: messages`, 1, MAX_MESSAGES)),
    classes,
  }
}

export function readMix(file: string): Mix {
  const st = fs.statSync(file, { throwIfNoEntry: false })
  if (!st?.isFile()) throw new Error(`${file}: no such file`)
  if (st.size > MAX_FILE_BYTES) throw new Error(`${file}: larger than ${MAX_FILE_BYTES} bytes; not a mix file`)
  let raw: unknown
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`)
  }
  return parseMix(raw, file)
}
