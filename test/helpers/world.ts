// The simulated senders of the end-to-end tests: realistic public addresses (presented through
// PROXY headers, never contacted) and the DNS records that describe them.
import type { Zone } from '../../scripts/harness/dns-server'
import { OUTLOOK_SPF } from '../../scripts/harness/senders'

/** An Exchange-Online-like pool: six addresses in six different /16s, production-style names. */
export const EXCHANGE_IPS = ['40.107.22.92', '40.92.17.41', '52.100.133.7', '52.101.4.200', '104.47.58.11', '52.102.91.65']

export function exchangeName(ip: string): string {
  const [, , c, d] = ip.split('.')
  return `mail-eopbgr${c}0${d.padStart(3, '0')}.outbound.protection.outlook.com`
}

export const EXCHANGE_HELO = 'EUR01-DB5-obe.outbound.protection.outlook.com'

export function exchangeZone(): Zone {
  const zone: Zone = { ptr: {}, a: {}, txt: { ...OUTLOOK_SPF } }
  for (const ip of EXCHANGE_IPS) {
    zone.ptr![ip] = [exchangeName(ip)]
    zone.a![exchangeName(ip)] = [ip]
  }
  return zone
}

/** A client whose PTR claims an Exchange name that does not resolve back to it. */
export const FORGED_PTR_IP = '91.198.174.33'
export const FORGED_PTR_NAME = 'mail-eopbgr999999.outbound.protection.outlook.com'

export function forgedZone(): Zone {
  return { ptr: { [FORGED_PTR_IP]: [FORGED_PTR_NAME] }, a: { [FORGED_PTR_NAME]: ['40.107.99.99'] } }
}

/** An Amazon-SES-like sender: per-address names in several regions, SPF include:amazonses.com. */
export const SES_IPS = ['54.240.8.12', '54.240.27.5', '69.169.231.70']
export const SES_NAMES = ['a8-12.smtp-out.us-west-2.amazonses.com', 'a27-5.smtp-out.eu-west-1.amazonses.com', 'a231-70.smtp-out.amazonses.com']

/** A pool without any PTR, authorised by SPF. */
export const NOPTR_IPS = ['185.250.236.10', '185.250.238.99']

/** A domain whose SPF record lets the whole Internet send for it. */
export const OPEN_IPS = ['94.23.1.1', '94.23.77.1']

export function identityZone(): Zone {
  const zone: Zone = {
    ptr: {},
    a: {},
    txt: {
      'shop.example': ['v=spf1 include:amazonses.com -all'],
      'amazonses.com': ['v=spf1 ip4:54.240.0.0/18 ip4:69.169.224.0/20 -all'],
      'news.example': ['v=spf1 ip4:185.250.236.0/22 -all'],
      'open.example': ['v=spf1 +all'],
    },
  }
  SES_IPS.forEach((ip, i) => {
    zone.ptr![ip] = [SES_NAMES[i]]
    zone.a![SES_NAMES[i]] = [ip]
  })
  return zone
}
