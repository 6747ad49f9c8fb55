// A Redis client for tests and benchmarks, made by redis-client.ts's openRedis exactly as the
// plugin makes its own (node-redis, given its one master).
import type { RedisClient } from '../../plugins/smart-greylist/adapters/haraka-types'
import { openRedis } from '../../plugins/smart-greylist/adapters/redis-client'

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
  /** Subscribes to a channel pattern (the client then does nothing else): what haraka-plugin-watch reads. */
  pSubscribe(pattern: string, listener: (message: string, channel: string) => void): Promise<void>
}

const quiet = { loginfo: () => undefined, logerror: () => undefined, logwarn: () => undefined }

export async function connectRedis(port: number): Promise<TestRedis> {
  // The same node-redis client object, with the commands the tests use typed.
  return (await openRedis({ client: { socket: { host: '127.0.0.1', port } }, topology: { kind: 'single' }, use: 'command' }, quiet)) as TestRedis
}
