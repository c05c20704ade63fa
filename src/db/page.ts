// One page of a list read in key order: the items, and the key after which the next page starts.

export interface Page<T> {
  items: T[];
  /** Key (id, code) of the last item when more may follow; undefined at the end. */
  nextAfter?: string | undefined;
}

/**
 * The page of `rows` read with a limit of `pageSize + 1`: the first `pageSize` rows, and the key of the last of them
 * when the extra row says that more follow.
 */
export function pageOf<T>(rows: readonly T[], pageSize: number, keyOf: (item: T) => string): Page<T> {
  const items = rows.slice(0, pageSize);
  const last = items.at(-1);
  return { items, nextAfter: rows.length > pageSize && last !== undefined ? keyOf(last) : undefined };
}
