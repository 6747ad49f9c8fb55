// The shipped Prometheus rules checked by Prometheus's own tool (Debian's `prometheus` package;
// .ci/run installs it): `promtool check rules` finds nothing to fix, and `promtool test rules`
// passes test/prometheus/smart-greylist.test.yml, where every alert fires on series that should
// raise it and stays quiet on others (a condition shorter than its `for` among them).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { hasPrometheus, promtool } from '../../scripts/harness/prometheus'
import { RULE_TESTS_FILE, RULES_FILE } from '../helpers/prometheus-files'

describe('the shipped Prometheus rules, by promtool', function () {
  this.timeout(60_000)
  let tmp = ''

  before(() => {
    assert.ok(hasPrometheus(), 'promtool is not installed (Debian: apt-get install prometheus; .ci/run does)')
    tmp = mkdtempSync(path.join(os.tmpdir(), 'sgl-promtool-'))
  })
  after(() => rmSync(tmp, { recursive: true, force: true }))

  it('promtool check rules: the file parses and has nothing to fix', () => {
    const r = promtool(['check', 'rules', RULES_FILE])
    assert.equal(r.status, 0, r.output)
    assert.match(r.output, /SUCCESS: 13 rules found/)
  })

  it('promtool test rules: every alert fires where it should and stays quiet where it should not', () => {
    const r = promtool(['test', 'rules', RULE_TESTS_FILE])
    assert.equal(r.status, 0, r.output)
    assert.match(r.output, /SUCCESS/)
  })

  it('the unit tests fail for rules that alert too late or parse no more (the tests can fail)', () => {
    const rules = readFileSync(RULES_FILE, 'utf8')
    const tests = readFileSync(RULE_TESTS_FILE, 'utf8')
    const run = (mutated: string): { status: number | null; output: string } => {
      writeFileSync(path.join(tmp, 'rules.yml'), mutated)
      writeFileSync(path.join(tmp, 'test.yml'), tests.replace('../../docs/prometheus/smart-greylist.rules.yml', 'rules.yml'))
      return promtool(['test', 'rules', path.join(tmp, 'test.yml')])
    }
    assert.equal(run(rules).status, 0, 'the copy passes as the original does')
    const later = run(rules.replace('> 3600\n', '> 7200\n'))
    assert.notEqual(later.status, 0)
    assert.match(later.output, /alertname: SmartGreylistDelayHigh/)
    const sooner = run(rules.replace(/(alert: SmartGreylistSendersStuck\n\s+expr: .*\n\s+for:) 1h/, '$1 30m'))
    assert.notEqual(sooner.status, 0)
    assert.match(sooner.output, /alertname: SmartGreylistSendersStuck/)
    writeFileSync(path.join(tmp, 'broken.yml'), rules.replace('max by (job) (smart_greylist_site_up) == 0', 'max by (job) (smart_greylist_site_up == 0'))
    const broken = promtool(['check', 'rules', path.join(tmp, 'broken.yml')])
    assert.notEqual(broken.status, 0)
    assert.match(broken.output, /unclosed left parenthesis|parse error/)
  })
})
