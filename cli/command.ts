// The shape every subcommand of `smart-greylist` declares; help is generated from it.
import type { ParseArgsConfig } from 'node:util'
import { Context } from './context'

/** 0 ok, 1 a finding (see the command), 2 usage error or failure, 3 an answer needs Redis, which is unreachable. */
export const EXIT = { ok: 0, finding: 1, failure: 2, unknown: 3 } as const

export class UsageError extends Error {}

/** A string option's value as parseArgs gives it (undefined when not given). */
export function optionText(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

/**
 * What `--json` prints: JSON whose text is ASCII only. The values stay as stored (a client's
 * U+0085 or U+2028 is still one in the parsed value), but JSON.stringify writes those characters
 * raw, which a reader of the text that splits on Unicode line breaks would take for a new line;
 * as `\uXXXX` escapes they are the same JSON.
 */
export function jsonText(value: unknown, indent?: number, replacer?: (key: string, value: unknown) => unknown): string {
  return JSON.stringify(value, replacer, indent).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

export interface Io {
  out(line: string): void
  err(line: string): void
}

export interface Command {
  /** Words that select it, e.g. "pools refresh". */
  readonly name: string
  readonly summary: string
  /** Usage line after the command name. */
  readonly usage: string
  /** Longer description, one string per paragraph. */
  readonly description?: readonly string[]
  readonly options: NonNullable<ParseArgsConfig['options']>
  /** Explanations of the options, by name. */
  readonly optionHelp: Readonly<Record<string, string>>
  readonly allowPositionals?: boolean
  run(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number>
}

export const COMMON_OPTIONS = {
  config: { type: 'string', default: './config' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const

export const COMMON_HELP: Readonly<Record<string, string>> = {
  config: 'directory holding smart-greylist.ini, the lists and redis.ini (default ./config)',
  json: 'print the result as JSON',
  help: 'show this help',
}

/** What a command's run is given: the parsed options, and --config DIR as the plugin reads it. */
export interface RunArgs {
  readonly values: Record<string, unknown>
  readonly positionals: string[]
  readonly io: Io
  readonly ctx: Context
}

/** A command as declared: its own options only (every command takes --config, --json and --help). */
export interface CommandSpec extends Omit<Command, 'options' | 'optionHelp' | 'run'> {
  readonly options?: Command['options']
  readonly optionHelp?: Command['optionHelp']
  readonly run: (args: RunArgs) => Promise<number>
}

/** The one setup of a command: the common options and their help added, its Context made from --config. */
export function defineCommand(spec: CommandSpec): Command {
  const { run, options, optionHelp, ...rest } = spec
  return {
    ...rest,
    options: { ...COMMON_OPTIONS, ...options },
    optionHelp: { ...COMMON_HELP, ...optionHelp },
    run: (values, positionals, io) => run({ values, positionals, io, ctx: new Context(String(values.config)) }),
  }
}
