// The plugin as Haraka's own test fixtures load it: the compiled package (package.json main),
// its config from a directory the test controls.
import fs from 'node:fs'
import type { ProviderIndex } from '../../plugins/smart-greylist/core/providers'
import os from 'node:os'
import path from 'node:path'
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const fixtures = require('haraka-test-fixtures') as {
  makePlugin(name: string, opts?: { register?: boolean; configDir?: string }): FixturePlugin
  makeConnection(this: void, opts: Record<string, unknown>): FixtureConnection
  callRcptOk(this: void, plugin: FixturePlugin, conn: FixtureConnection, rcpt: string): Promise<{ rc?: number; msg?: unknown }>
  callData(this: void, plugin: FixturePlugin, conn: FixtureConnection): Promise<{ rc?: number; msg?: unknown }>
}

export interface FixturePlugin {
  name: string
  db?: RedisClient
  sg: { deps: { config: { main: Record<string, unknown> }; whitelist: { size: number }; providers: ProviderIndex } }
  [k: string]: unknown
}

export interface FixtureConnection {
  remote: { ip: string; is_private: boolean; is_local?: boolean }
  relaying: boolean
  transaction: {
    results: { get(p: unknown): Record<string, unknown> | undefined; add(p: unknown, o: Record<string, unknown>): void }
    notes: Record<string, unknown>
  } | null
  results: { add(p: unknown, o: Record<string, unknown>): void }
  notes: Record<string, unknown>
}

export const { makeConnection, callRcptOk, callData } = fixtures

/** A config directory holding config/<name> for each file given. */
export function configDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgl-cfg-'))
  fs.mkdirSync(path.join(dir, 'config'))
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, 'config', name), text)
  return dir
}

export function makePlugin(dir: string, db?: RedisClient): FixturePlugin {
  process.env.HARAKA_LOGS_SUPPRESS = 'true'
  const plugin = fixtures.makePlugin('smart-greylist', { configDir: dir })
  plugin.db = db
  return plugin
}

export function connection(opts: { ip: string; from?: string; helo?: string; relaying?: boolean; isPrivate?: boolean }): FixtureConnection {
  const conn = fixtures.makeConnection({
    ip: opts.ip,
    helo: opts.helo ?? 'client.example.net',
    mailFrom: opts.from ?? 'alice@sender.example.org',
    relaying: opts.relaying ?? false,
    silent: true,
  })
  conn.remote.is_private = opts.isPrivate ?? false
  return conn
}
