// A Redis client for tests and benchmarks, made by haraka-plugin-redis exactly as the plugin gets
// its own, and given its one master as redis-client.ts gives every client it opens.
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'
import { withOneMaster, type SingleClient } from '../../plugins/smart-greylist/adapters/redis-client'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const harakaRedis = require('haraka-plugin-redis') as {
  get_redis_client(this: object, opts: unknown): Promise<SingleClient>
}

/** The client's commands the tests use besides the plugin's. */
export interface TestRedis extends RedisClient {
  flushDb(): Promise<unknown>
  hSet(key: string, field: string, value: string): Promise<number>
  hSet(key: string, fields: Record<string, string>): Promise<number>
  keys(pattern: string): Promise<string[]>
  exists(key: string): Promise<number>
  info(section?: string): Promise<string>
  memoryUsage(key: string): Promise<number | null>
  dbSize(): Promise<number>
  sendCommand(args: string[]): Promise<unknown>
  quit(): Promise<unknown>
}

const quiet = { loginfo: () => undefined, logerror: () => undefined, logwarn: () => undefined }

export async function connectRedis(port: number): Promise<TestRedis> {
  // The same node-redis client object, with the commands the tests use typed.
  return withOneMaster(await harakaRedis.get_redis_client.call(quiet, { socket: { host: '127.0.0.1', port } })) as TestRedis
}
