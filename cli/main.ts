#!/usr/bin/env node
// `smart-greylist`: the operator's command. Usage and help come from each command's declaration.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { packageRoot } from '../plugins/smart-greylist/setup'
import { EXIT, UsageError, type Command, type Io } from './command'
import { check } from './commands/check'
import { configCheck } from './commands/config'
import { poolsList, poolsRefresh } from './commands/pools'
import { correspondentsForget, correspondentsList } from './commands/correspondents'
import { migrate } from './commands/migrate'
import { stats } from './commands/stats'
import { stuck } from './commands/stuck'
import { simulate } from './commands/simulate'
import { flush, list } from './commands/tuples'
import { whitelistAdd, whitelistList, whitelistRemove } from './commands/whitelist'

export const COMMANDS: readonly Command[] = [
  whitelistAdd,
  whitelistRemove,
  whitelistList,
  check,
  stats,
  stuck,
  list,
  flush,
  correspondentsList,
  correspondentsForget,
  poolsList,
  poolsRefresh,
  configCheck,
  migrate,
  simulate,
]

const io: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

export function helpFor(c: Command): string {
  const lines = [`usage: smart-greylist ${c.name} ${c.usage}`, '', c.summary]
  if (c.description?.length) lines.push('', ...c.description)
  lines.push('', 'options:')
  const flags = Object.entries(c.options).map(([name, spec]) => {
    // The value's name as the usage line spells it, so help and usage never disagree (the
    // usage's brackets around an optional option are not part of the name).
    const value = new RegExp(`--${name} ([A-Z][A-Z:]*)`).exec(c.usage)?.[1] ?? 'VALUE'
    return { name, flag: `--${name}${spec.type === 'string' ? ` ${value}` : ''}${spec.short ? `, -${spec.short}` : ''}` }
  })
  // Wide enough for the longest flag, so every explanation starts in one column.
  const width = Math.max(...flags.map((f) => f.flag.length)) + 2
  for (const { name, flag } of flags) lines.push(`  ${flag.padEnd(width)}${c.optionHelp[name] ?? ''}`)
  return lines.join('\n')
}

export function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  return `smart-greylist ${pkg.version}`
}

export function overview(): string {
  // Wide enough for the longest name, so every summary starts in one column.
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2
  return [
    'usage: smart-greylist <command> [options]   (smart-greylist <command> --help for more)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'options: --version, --help',
    '',
    'exit status: 0 ok, 1 a finding (see the command), 2 usage error or failure, 3 unknown: Redis unreachable (check)',
  ].join('\n')
}

/** Finds the command named by the leading words of argv (longest match). */
function select(argv: string[]): { command: Command; rest: string[] } | null {
  let best: { command: Command; rest: string[] } | null = null
  for (const command of COMMANDS) {
    const words = command.name.split(' ')
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.command.name.split(' ').length)) {
      best = { command, rest: argv.slice(words.length) }
    }
  }
  return best
}

export async function main(argv: string[], out: Io = io): Promise<number> {
  // haraka-tld announces its lists on stdout, which is this command's data channel.
  process.env.HARAKA_LOGS_SUPPRESS ??= 'true'
  if (argv[0] === '--version' || argv[0] === '-V') {
    out.out(version())
    return EXIT.ok
  }
  if (!argv.length || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    out.out(overview())
    return argv.length ? EXIT.ok : EXIT.failure
  }
  const found = select(argv)
  if (!found) {
    out.err(`smart-greylist: unknown command "${argv.join(' ')}"\n\n${overview()}`)
    return EXIT.failure
  }
  const { command, rest } = found
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    })
    if (values.help) {
      out.out(helpFor(command))
      return EXIT.ok
    }
    return await command.run(values, positionals, out)
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    out.err(`smart-greylist ${command.name}: ${(err as Error).message}`)
    if (usage) out.err(`usage: smart-greylist ${command.name} ${command.usage}`)
    return EXIT.failure
  }
}

if (require.main === module) {
  // `smart-greylist … | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
  })
  // Every path ends: once the answer is written the process exits, whatever a library left open
  // (a client still waiting on a Redis that accepted the connection and never answered).
  const exit = (code: number): void => {
    process.stdout.write('', () => process.exit(code))
  }
  main(process.argv.slice(2)).then(exit, (err: Error) => {
    io.err(`smart-greylist: ${err.message}`)
    exit(EXIT.failure)
  })
}
