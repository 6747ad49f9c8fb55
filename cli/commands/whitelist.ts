// `smart-greylist whitelist add | remove | list`: edits smart-greylist.whitelist the way an admin
// would by hand (comments and order kept), validated by the plugin's own parser, written
// atomically; a running Haraka re-reads the file by itself.
import fs from 'node:fs'
import { canonicalEntry, coveringRange, hostBitsSet, parseEntry, parseWhitelist, type Entry } from '../../plugins/smart-greylist/core/whitelist'
import { isPublicSuffix } from '../../plugins/smart-greylist/setup'
import { defineCommand, EXIT, type Io, optionText, UsageError, jsonText } from '../command'
import { FILES } from '../context'

/** The entries as the plugin would read them, or null (each refusal said) when one is bad. */
function validate(texts: string[], io: Io): Entry[] | null {
  if (!texts.length) throw new UsageError('name at least one entry, e.g. host:*.outbound.protection.outlook.com')
  const entries: Entry[] = []
  let bad = false
  for (const text of texts) {
    const r = parseEntry(text, 'argument', isPublicSuffix)
    if ('message' in r) {
      io.err(`refused "${text}": ${r.message}`)
      bad = true
    } else if (hostBitsSet(r)) {
      io.err(`refused "${text}": host bits are set below the prefix; did you mean the network address of that range?`)
      bad = true
    } else entries.push(r)
  }
  return bad ? null : entries
}

/** The entries the plugin finds in the admin's file (breadth not judged: for finding lines). */
function entriesOf(lines: string[]): Entry[] {
  return parseWhitelist(lines, FILES.whitelist).entries
}

export const whitelistAdd = defineCommand({
  name: 'whitelist add',
  summary: 'add entries to smart-greylist.whitelist (validated; duplicates refused)',
  usage: 'ENTRY... [--comment TEXT] [--config DIR] [--json]',
  description: [
    'ENTRY is kind:pattern with kind host, helo, ip, from or to, e.g.',
    '  smart-greylist whitelist add host:*.outbound.protection.outlook.com',
    "Plesk's form (host:*outbound.protection.outlook.com) is accepted. Either every entry is added or",
    'none: a bad entry (exit 2) or one already listed (exit 1) leaves the file as it was.',
  ],
  options: { comment: { type: 'string' } },
  optionHelp: { comment: 'a comment written after each new entry' },
  allowPositionals: true,
  async run({ values, positionals, io, ctx }) {
    await ctx.load() // the public-suffix list, as the plugin has it
    const entries = validate(positionals, io)
    if (!entries) return EXIT.failure
    const comment = values.comment ? `  # ${(optionText(values.comment) ?? '').replace(/[\r\n]+/g, ' ')}` : ''
    const added = entries.map((e) => `${e.kind}:${e.pattern}${comment}`)
    const { file, result: dup } = await ctx.edit(FILES.whitelist, (current) => {
      const listed = entriesOf(current)
      const existing = new Map(listed.map((e) => [canonicalEntry(e), e.origin]))
      const seen = new Set<string>()
      let refused = false
      for (const e of entries) {
        const c = canonicalEntry(e)
        const cover = coveringRange(e, listed)
        const where = existing.get(c) ?? (cover ? `inside ${cover.kind}:${cover.pattern}, ${cover.origin}` : seen.has(c) ? 'this command' : undefined)
        if (where) {
          io.err(`refused "${e.kind}:${e.pattern}": already listed (${where})`)
          refused = true
        }
        seen.add(c)
      }
      return refused ? { text: null, result: true } : { text: [...trimEnd(current), ...added].join('\n') + '\n', result: false }
    })
    if (dup) return EXIT.finding
    if (values.json) io.out(jsonText({ file, added: entries.map((e) => `${e.kind}:${e.pattern}`) }))
    else for (const a of added) io.out(`added ${a}  (${file})`)
    return EXIT.ok
  },
})

export const whitelistRemove = defineCommand({
  name: 'whitelist remove',
  summary: 'remove entries from smart-greylist.whitelist',
  usage: 'ENTRY... [--config DIR] [--json]',
  description: [
    'Removes the lines that hold these entries (in any spelling the parser takes as the same); every other line stays. An entry not listed: exit 1, nothing written.',
  ],
  allowPositionals: true,
  async run({ values, positionals, io, ctx }) {
    // Removal takes any spelling the parser accepts, even one add would now refuse.
    const entries = positionals.map((t) => parseEntry(t, 'argument'))
    for (const e of entries) if ('message' in e) io.err(`not an entry "${e.text}": ${e.message}`)
    if (!positionals.length) throw new UsageError('name at least one entry to remove')
    if (entries.some((e) => 'message' in e)) return EXIT.failure
    const wanted = new Set((entries as Entry[]).map(canonicalEntry))
    const { file, result: found } = await ctx.edit(FILES.whitelist, (lines) => {
      // Lines are found by the entries' own line numbers in the text read under the lock.
      const hits = entriesOf(lines).filter((e) => wanted.has(canonicalEntry(e)))
      const drop = new Set(hits.map((e) => Number(e.origin.split(':').pop()) - 1))
      const found = new Set(hits.map(canonicalEntry))
      const missing = [...wanted].filter((w) => !found.has(w))
      for (const m of missing) io.err(`not listed: ${m}`)
      return missing.length ? { text: null, result: null } : { text: trimEnd(lines.filter((_, i) => !drop.has(i))).join('\n') + '\n', result: found }
    })
    if (!found) return EXIT.finding
    if (values.json) io.out(jsonText({ file, removed: [...found] }))
    else for (const f of found) io.out(`removed ${f}  (${file})`)
    return EXIT.ok
  },
})

export const whitelistList = defineCommand({
  name: 'whitelist list',
  summary: 'show the whitelist entries, and any line the plugin would ignore',
  usage: '[--config DIR] [--json]',
  async run({ values, io, ctx }) {
    await ctx.load() // the public-suffix list, as the plugin has it
    // Read directly, so a file that cannot be read is an error here (haraka-config reads it as empty).
    const text = fs.readFileSync(ctx.filePath(FILES.whitelist), 'utf8')
    const { entries, errors } = parseWhitelist(text.split(/\r?\n/), FILES.whitelist, isPublicSuffix)
    if (values.json) io.out(jsonText({ file: ctx.filePath(FILES.whitelist), entries, errors }, 2))
    else {
      io.out(`# ${ctx.filePath(FILES.whitelist)}`)
      for (const e of entries) io.out(`${`${e.kind}:${e.pattern}`.padEnd(48)} ${e.origin}`)
      for (const e of errors) io.err(`${e.origin}: ignored "${e.text}": ${e.message}`)
    }
    return errors.length ? EXIT.finding : EXIT.ok
  },
})

function trimEnd(lines: string[]): string[] {
  const out = [...lines]
  while (out.length && out.at(-1)?.trim() === '') out.pop()
  return out
}
