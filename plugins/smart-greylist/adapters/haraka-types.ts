// The few parts of Haraka's objects this plugin touches, typed structurally so that
// neither Haraka nor its test fixtures are needed to compile or to unit-test the core.

export type Next = (code?: number, msg?: unknown) => void

export interface Results {
  add(plugin: object | string, obj: Record<string, unknown>): void
  get(plugin: object | string): Record<string, unknown> | undefined
}

/** Haraka <= 3.1 exposes address() as a method, >= 3.2 as a property. */
export interface Address {
  user?: string | null
  host?: string | null
  address?: string | (() => string)
  isNull?: () => boolean
}

export interface Transaction {
  uuid: string
  mail_from: Address | null
  rcpt_to: Address[]
  results: Results
  notes: Record<string, unknown>
  add_header?(name: string, value: string): void
}

export interface Connection {
  uuid: string
  remote: { ip: string | null; is_private?: boolean; is_local?: boolean; host?: string | null }
  hello: { host?: string | null; verb?: string | null }
  relaying: boolean
  transaction: Transaction | null
  results: Results
  notes: Record<string, unknown>
  loginfo(plugin: object, msg: string): void
  logwarn(plugin: object, msg: string): void
  logerror(plugin: object, msg: string): void
}

export interface ServerLike {
  notes: Record<string, unknown>
}

/** The subset of node-redis (v4/v5) this plugin calls. */
export interface RedisClient {
  isReady?: boolean
  isOpen?: boolean
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  get(key: string): Promise<string | null>
  set(key: string, value: string, options?: { PX?: number }): Promise<unknown>
  // Used by the operator command (list, flush, stats, check) only.
  hmGet?(key: string, fields: string[]): Promise<(string | null)[]>
  hGet?(key: string, field: string): Promise<string | null | undefined>
  hGetAll?(key: string): Promise<Record<string, string>>
  pTTL?(key: string): Promise<number>
  del?(keys: string[]): Promise<number>
  zRangeWithScores?(key: string, start: number, stop: number, options?: { REV: true }): Promise<{ value: string; score: number }[]>
  quit?(): Promise<unknown>
  close?(): Promise<unknown>
  disconnect?(): Promise<unknown>
  destroy?(): unknown
  sendCommand?(args: string[]): Promise<unknown>
  /** Set on Cluster and Sentinel clients (redis-client.ts): a plain client per master. */
  sgMasters?(): Promise<RedisNodeClient[]>
  /** Set on Cluster clients: the address (host:port) of the master that holds a key's slot now. */
  sgMasterOf?(key: string): string | undefined
}

/** One Redis server (a master), for what goes to every master rather than by key. */
export interface RedisNodeClient {
  /** host:port, when there can be several masters (Cluster). */
  readonly address?: string
  sendCommand(args: string[]): Promise<unknown>
}

export function addressOf(addr: Address | null | undefined): string {
  if (!addr) return ''
  if (typeof addr.address === 'function') return addr.address() ?? ''
  if (typeof addr.address === 'string') return addr.address
  if (addr.user && addr.host) return `${addr.user}@${addr.host}`
  return ''
}
