// A private Redis Cluster (3 masters, 3 replicas) and a private Sentinel set (1 master, 1
// replica, 3 sentinels) on loopback, for the tests and the benchmark. Everything comes with
// Debian's redis-server package (redis-server, redis-cli); nothing is kept on disk but the
// cluster's and sentinels' own state files, in a temporary directory removed at stop.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort, redisEnv, startPrivateRedis, type PrivateRedis } from './redis-server'

/** One Redis command over a fresh connection, through redis-cli (no client library needed). */
export function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000, env: redisEnv() })
  if (r.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')}: ${r.stderr || r.stdout || `exit ${String(r.status)}`}`)
  return r.stdout.trim()
}

async function until(what: string, ms: number, test: () => boolean): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if (test()) return
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export interface ClusterNode extends PrivateRedis {
  /** Kills the node (SIGKILL); `stop()` afterwards returns at once. */
  kill(): void
}

export interface PrivateCluster {
  readonly nodes: readonly ClusterNode[]
  /** The nodes that are masters now, as seen by a live node. */
  masters(): number[]
  /** The master of a key's slot now. */
  masterOf(key: string): number
  /** The replica of a master (by port). */
  replicaOf(master: number): number
  stop(): Promise<void>
}

/** Resolves once every replica of `master` has what the master had written when called. */
export async function replicated(master: number, ms = 5000): Promise<void> {
  const offset = Number(/master_repl_offset:(\d+)/.exec(redisCli(master, 'INFO', 'replication'))![1])
  await until(`replicas of ${master} at offset ${offset}`, ms, () => {
    const info = redisCli(master, 'INFO', 'replication')
    const replicas = [...info.matchAll(/^slave\d+:.*offset=(\d+)/gm)].map((m) => Number(m[1]))
    return replicas.length > 0 && replicas.every((o) => o >= offset)
  })
}

function wrap(r: PrivateRedis): ClusterNode {
  return { ...r, kill: () => void r.process.kill('SIGKILL') }
}

/** `nodeTimeoutMs`: cluster-node-timeout, after which a silent master is failed over. */
export async function startPrivateCluster(nodeTimeoutMs = 1000): Promise<PrivateCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-cluster-'))
  const ports: number[] = []
  while (ports.length < 6) {
    const p = await freePort()
    // The cluster bus listens on port + 10000: both must be free.
    if (!ports.includes(p) && p + 10_000 < 65_536) ports.push(p)
  }
  const nodes: ClusterNode[] = []
  try {
    for (const p of ports) {
      nodes.push(
        wrap(
          await startPrivateRedis(p, [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            path.join(dir, `nodes-${p}.conf`),
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            '--dir',
            dir,
          ]),
        ),
      )
    }
    redisCli(ports[0], '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes')
    await until('cluster state ok on every node', 20_000, () => ports.every((p) => redisCli(p, 'CLUSTER', 'INFO').includes('cluster_state:ok')))
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()))
    fs.rmSync(dir, { recursive: true, force: true })
    throw err
  }
  const live = (): number => {
    for (const n of nodes) {
      try {
        redisCli(n.port, 'PING')
        return n.port
      } catch {
        // try the next one
      }
    }
    throw new Error('no cluster node answers')
  }
  return {
    nodes,
    masters: () =>
      redisCli(live(), 'CLUSTER', 'NODES')
        .split('\n')
        .filter((l) => / master /.test(l.replace(/,/g, ' ')) && !/fail/.test(l.split(' ')[2]))
        .map((l) => Number(/:(\d+)@/.exec(l)![1])),
    masterOf(key) {
      const slot = Number(redisCli(live(), 'CLUSTER', 'KEYSLOT', key))
      const shards = redisCli(live(), '--json', 'CLUSTER', 'SLOTS')
      for (const [from, to, master] of JSON.parse(shards) as [number, number, [string, number]][]) {
        if (slot >= from && slot <= to) return master[1]
      }
      throw new Error(`slot ${slot} has no master`)
    },
    replicaOf(master) {
      const lines = redisCli(live(), 'CLUSTER', 'NODES')
        .split('\n')
        .map((l) => l.split(' '))
      const id = lines.find((f) => f[1].startsWith(`127.0.0.1:${master}@`))?.[0]
      const replica = lines.find((f) => f[3] === id)
      if (!replica) throw new Error(`no replica of ${master}`)
      return Number(/:(\d+)@/.exec(replica[1])![1])
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()))
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface PrivateSentinelSet {
  readonly name: string
  readonly master: ClusterNode
  readonly replica: ClusterNode
  readonly sentinels: readonly PrivateRedis[]
  /** The master's port as the sentinels report it now. */
  masterPort(): number
  stop(): Promise<void>
}

/** `downAfterMs`: how long the master must be silent before the sentinels fail it over. */
export async function startPrivateSentinelSet(name = 'mymaster', downAfterMs = 1000): Promise<PrivateSentinelSet> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-sentinel-'))
  const started: PrivateRedis[] = []
  try {
    const master = wrap(await startPrivateRedis(undefined, ['--dir', dir]))
    started.push(master)
    const replica = wrap(await startPrivateRedis(undefined, ['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)]))
    started.push(replica)
    await until('replica in sync', 10_000, () => redisCli(replica.port, 'INFO', 'replication').includes('master_link_status:up'))
    const sentinels: PrivateRedis[] = []
    for (let i = 0; i < 3; i++) {
      // A sentinel rewrites its config file: each gets its own.
      const conf = path.join(dir, `sentinel-${i}.conf`)
      fs.writeFileSync(
        conf,
        [
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      )
      const s = await startPrivateRedis(undefined, [conf, '--sentinel', '--dir', dir])
      started.push(s)
      sentinels.push(s)
    }
    // A failover needs the sentinels to know the replica and each other (hello messages, every 2 s).
    await until('sentinels know the replica and each other', 20_000, () =>
      sentinels.every((s) => {
        const info = redisCli(s.port, 'SENTINEL', 'MASTER', name)
        const field = (f: string): number => Number(info.split('\n')[info.split('\n').indexOf(f) + 1])
        return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2
      }),
    )
    return {
      name,
      master,
      replica,
      sentinels,
      masterPort: () => Number(redisCli(sentinels.find((s) => s.process.exitCode === null)!.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).split('\n')[1]),
      async stop() {
        await Promise.all(started.map((n) => n.stop()))
        fs.rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await Promise.all(started.map((n) => n.stop()))
    fs.rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
