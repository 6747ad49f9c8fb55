// Ambient types for the Haraka helper packages that ship none.
declare module 'haraka-constants' {
  export const cont: number
  export const ok: number
  export const deny: number
  export const denysoft: number
}

declare module 'haraka-dsn' {
  class DSN {
    code: number
    reply: string
    static sec_unauthorized(msg: string, code?: number): DSN
    static sys_unspecified(msg: string, code?: number): DSN
  }
  export = DSN
}

declare module 'haraka-tld' {
  export const ready: Promise<void>
  export function get_organizational_domain(host: string): string | null
  export function is_public_suffix(host: string): boolean
}

// The types of haraka-plugin-spf's lib/spf.js, carried in vendor/spf.js.
declare module 'haraka-plugin-spf/lib/spf' {
  export class SPF {
    helo: string
    resolver: unknown
    dns_timeout_ms: number
    log_debug(msg: string): void
    check_host(ip: string, domain: string, mail_from?: string): Promise<number>
    result(value: number): string
  }
}

declare module 'haraka-config' {
  interface HarakaConfig {
    get(name: string, opts?: unknown, cb?: () => void): unknown
    module_config(defaults: string, overrides?: string): HarakaConfig
    overrides_path?: string
  }
  const config: HarakaConfig
  export = config
}

declare module 'haraka-net-utils' {
  export function is_private_ip(ip: string): boolean
}
