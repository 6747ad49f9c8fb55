// A Redis client for tests, made by haraka-plugin-redis exactly as the plugin gets its own.
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const harakaRedis = require('haraka-plugin-redis') as {
  get_redis_client(this: object, opts: unknown): Promise<TestRedis>
}

export interface TestRedis extends Omit<RedisClient, 'hGetAll' | 'pTTL' | 'hGet' | 'zRangeWithScores'>, Required<Pick<RedisClient, 'hGetAll' | 'pTTL' | 'hGet' | 'zRangeWithScores'>> {
  flushDb(): Promise<unknown>
  hSet(key: string, field: string, value: string): Promise<unknown>
  keys(pattern: string): Promise<string[]>
  exists(key: string): Promise<number>
  info(section?: string): Promise<string>
  memoryUsage(key: string): Promise<number | null>
  dbSize(): Promise<number>
  sendCommand(args: string[]): Promise<unknown>
  quit(): Promise<unknown>
}

const quiet = { loginfo: () => undefined, logerror: () => undefined, logwarn: () => undefined }

export function connectRedis(port: number): Promise<TestRedis> {
  return harakaRedis.get_redis_client.call(quiet, { socket: { host: '127.0.0.1', port } })
}
