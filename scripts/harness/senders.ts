// DNS facts of real senders that the tests and the bench both present (no packet goes to them).
import type { Zone } from './dns-server'

/**
 * outlook.com's SPF as Microsoft publishes it in substance: the domain that names Exchange
 * Online's machines authorises their ranges, which is what lets their per-address names group.
 */
export const OUTLOOK_SPF: Zone['txt'] = {
  'outlook.com': ['v=spf1 include:spf2.outlook.com -all'],
  'spf2.outlook.com': ['v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/14 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/48 -all'],
}
