// The command's file edits: concurrent edits both land, a dead holder's lock is taken over, mode and owner are kept, a symlinked
// list stays a symlink and its target is edited.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { runCli } from '../helpers/cli'
import { configDir } from '../../scripts/harness/fixtures'

describe('smart-greylist whitelist edits (files)', function () {
  this.timeout(30_000)
  const list = (dir: string): string => fs.readFileSync(path.join(dir, 'smart-greylist.whitelist'), 'utf8')

  it('five concurrent adds all land (the edit is locked)', async () => {
    const dir = path.join(configDir({ 'smart-greylist.whitelist': '# mine\n' }), 'config')
    const runs = await Promise.all([1, 2, 3, 4, 5].map((i) => runCli(['whitelist', 'add', `ip:85.214.${i}.0/24`, '--config', dir])))
    for (const r of runs) assert.equal(r.code, 0, r.stderr)
    for (const i of [1, 2, 3, 4, 5]) assert.match(list(dir), new RegExp(`^ip:85\\.214\\.${i}\\.0/24$`, 'm'))
    assert.ok(!fs.existsSync(path.join(dir, 'smart-greylist.whitelist.lock')), 'the lock is released')
  })

  it('names the file it edits the same way (absolute) whether it made it or it was there, with a relative --config', async () => {
    const dir = path.join(configDir({}), 'config')
    fs.rmSync(path.join(dir, 'smart-greylist.whitelist'), { force: true })
    const relative = path.relative(process.cwd(), dir)
    const first = await runCli(['whitelist', 'add', 'ip:85.214.11.0/24', '--config', relative])
    const second = await runCli(['whitelist', 'add', 'ip:85.214.12.0/24', '--config', relative])
    const file = path.join(fs.realpathSync(dir), 'smart-greylist.whitelist')
    assert.equal(first.stdout, `added ip:85.214.11.0/24  (${file})\n`, first.stderr)
    assert.equal(second.stdout, `added ip:85.214.12.0/24  (${file})\n`, second.stderr)
  })

  it('takes over a lock whose holder is gone, whatever the age of the file', async () => {
    const dir = path.join(configDir({ 'smart-greylist.whitelist': '# mine\n' }), 'config')
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    fs.writeFileSync(path.join(dir, 'smart-greylist.whitelist.lock'), `${gone.stdout}\n`)
    const r = await runCli(['whitelist', 'add', 'ip:85.214.7.0/24', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.match(list(dir), /^ip:85\.214\.7\.0\/24$/m)
  })

  it('keeps the mode (and, as root, the owner) of the list', async () => {
    const dir = path.join(configDir({ 'smart-greylist.whitelist': '# mine\n' }), 'config')
    const file = path.join(dir, 'smart-greylist.whitelist')
    fs.chmodSync(file, 0o640)
    const root = process.getuid?.() === 0
    if (root) fs.chownSync(file, 4321, 4321)
    const r = await runCli(['whitelist', 'add', 'ip:85.214.9.0/24', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    const st = fs.statSync(file)
    assert.equal(st.mode & 0o777, 0o640)
    if (root) assert.deepEqual([st.uid, st.gid], [4321, 4321])
  })

  it('edits the target of a symlinked list and leaves the link', async () => {
    const base = configDir({})
    const dir = path.join(base, 'config')
    const target = path.join(base, 'shared-whitelist')
    fs.writeFileSync(target, '# shared\n')
    fs.symlinkSync(target, path.join(dir, 'smart-greylist.whitelist'))
    const r = await runCli(['whitelist', 'add', 'host:*.outbound.protection.outlook.com', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(fs.lstatSync(path.join(dir, 'smart-greylist.whitelist')).isSymbolicLink())
    assert.equal(fs.readFileSync(target, 'utf8'), '# shared\nhost:*.outbound.protection.outlook.com\n')
  })
})
