// The one way a list file (smart-greylist.whitelist, .domains, .providers and .providers.local) is
// read: line by line, `#` comments and blank lines dropped, each line named by file:line for what
// it gives and for the error reported against it, so a bad line is skipped and the good ones load.

export interface LineError {
  /** Where it was written: `smart-greylist.whitelist:12`. */
  readonly origin: string
  readonly text: string
  readonly message: string
}

export function isLineError(x: unknown): x is LineError {
  return typeof x === 'object' && x !== null && 'message' in x && 'origin' in x && 'text' in x
}

/**
 * Parses each line that says something with `parse` (given its text and origin): what it returns
 * is kept, a LineError reported, undefined (a line that only changes the parser's state) neither.
 */
export function parseListFile<T>(
  lines: readonly string[],
  source: string,
  parse: (text: string, origin: string) => T | LineError | undefined,
): { items: T[]; errors: LineError[] } {
  const items: T[] = []
  const errors: LineError[] = []
  lines.forEach((raw, i) => {
    const text = raw.replace(/(^|\s)#.*$/, '').trim()
    if (!text) return
    const r = parse(text, `${source}:${i + 1}`)
    if (isLineError(r)) errors.push(r)
    else if (r !== undefined) items.push(r)
  })
  return { items, errors }
}
