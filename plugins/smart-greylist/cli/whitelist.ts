// `smart-greylist whitelist add | remove | list`: edits smart-greylist.whitelist the way an admin
// would by hand (comments and order kept), validated by the plugin's own parser, written
// atomically; a running Haraka re-reads the file by itself.
import { canonicalEntry, parseEntry, type Entry } from '../whitelist'
import { COMMON_HELP, COMMON_OPTIONS, EXIT, UsageError, type Command, type Io } from './command'
import { Context, FILES } from './context'

function validate(texts: string[], io: Io): Entry[] | null {
  if (!texts.length) throw new UsageError('name at least one entry, e.g. host:*.outbound.protection.outlook.com')
  const entries: Entry[] = []
  let bad = false
  for (const text of texts) {
    const r = parseEntry(text, 'argument')
    if ('message' in r) {
      io.err(`refused "${text}": ${r.message}`)
      bad = true
    } else entries.push(r)
  }
  return bad ? null : entries
}

export const whitelistAdd: Command = {
  name: 'whitelist add',
  summary: 'add entries to smart-greylist.whitelist (validated; duplicates refused)',
  usage: 'ENTRY... [--comment TEXT] [--config DIR] [--json]',
  description: [
    'ENTRY is kind:pattern with kind host, helo, ip, from or to, e.g.',
    '  smart-greylist whitelist add host:*.outbound.protection.outlook.com',
    "Plesk's form (host:*outbound.protection.outlook.com) is accepted. Either every entry is added or",
    'none: a bad entry (exit 2) or one already listed (exit 1) leaves the file as it was.',
  ],
  options: { ...COMMON_OPTIONS, comment: { type: 'string' } },
  optionHelp: { ...COMMON_HELP, comment: 'a comment written after each new entry' },
  allowPositionals: true,
  async run(values, positionals, io) {
    const ctx = new Context(String(values.config))
    const entries = validate(positionals, io)
    if (!entries) return EXIT.failure
    const existing = new Map(ctx.whitelist().entries.map((e) => [canonicalEntry(e), e.origin]))
    const seen = new Set<string>()
    let dup = false
    for (const e of entries) {
      const c = canonicalEntry(e)
      const where = existing.get(c) ?? (seen.has(c) ? 'this command' : undefined)
      if (where) {
        io.err(`refused "${e.kind}:${e.pattern}": already listed (${where})`)
        dup = true
      }
      seen.add(c)
    }
    if (dup) return EXIT.finding
    const lines = trimEnd(ctx.lines(FILES.whitelist))
    const comment = values.comment ? `  # ${String(values.comment).replace(/[\r\n]+/g, ' ')}` : ''
    const added = entries.map((e) => `${e.kind}:${e.pattern}${comment}`)
    const file = ctx.writeAtomic(FILES.whitelist, [...lines, ...added].join('\n') + '\n')
    if (values.json) io.out(JSON.stringify({ file, added: entries.map((e) => `${e.kind}:${e.pattern}`) }))
    else for (const a of added) io.out(`added ${a}  (${file})`)
    return EXIT.ok
  },
}

export const whitelistRemove: Command = {
  name: 'whitelist remove',
  summary: 'remove entries from smart-greylist.whitelist',
  usage: 'ENTRY... [--config DIR] [--json]',
  description: ['Removes the lines that hold these entries (in any spelling the parser takes as the same); every other line stays. An entry not listed: exit 1, nothing written.'],
  options: { ...COMMON_OPTIONS },
  optionHelp: COMMON_HELP,
  allowPositionals: true,
  async run(values, positionals, io) {
    const ctx = new Context(String(values.config))
    const entries = validate(positionals, io)
    if (!entries) return EXIT.failure
    const wanted = new Set(entries.map(canonicalEntry))
    const lines = ctx.lines(FILES.whitelist)
    const listed = ctx.whitelist().entries
    const drop = new Set(listed.filter((e) => wanted.has(canonicalEntry(e))).map((e) => Number(e.origin.split(':').pop()) - 1))
    const found = new Set(listed.filter((e) => wanted.has(canonicalEntry(e))).map(canonicalEntry))
    const missing = [...wanted].filter((w) => !found.has(w))
    for (const m of missing) io.err(`not listed: ${m}`)
    if (missing.length) return EXIT.finding
    const file = ctx.writeAtomic(FILES.whitelist, trimEnd(lines.filter((_, i) => !drop.has(i))).join('\n') + '\n')
    if (values.json) io.out(JSON.stringify({ file, removed: [...found] }))
    else for (const f of found) io.out(`removed ${f}  (${file})`)
    return EXIT.ok
  },
}

export const whitelistList: Command = {
  name: 'whitelist list',
  summary: 'show the whitelist entries, and any line the plugin would ignore',
  usage: '[--config DIR] [--json]',
  options: { ...COMMON_OPTIONS },
  optionHelp: COMMON_HELP,
  async run(values, _pos, io) {
    const ctx = new Context(String(values.config))
    const { entries, errors } = ctx.whitelist()
    if (values.json) io.out(JSON.stringify({ file: ctx.filePath(FILES.whitelist), entries, errors }, null, 2))
    else {
      io.out(`# ${ctx.filePath(FILES.whitelist)}`)
      for (const e of entries) io.out(`${`${e.kind}:${e.pattern}`.padEnd(48)} ${e.origin}`)
      for (const e of errors) io.err(`${e.origin}: ignored "${e.text}": ${e.message}`)
    }
    return errors.length ? EXIT.finding : EXIT.ok
  },
}

function trimEnd(lines: string[]): string[] {
  const out = [...lines]
  while (out.length && out[out.length - 1].trim() === '') out.pop()
  return out
}
