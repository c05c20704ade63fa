// Map and Set stand-ins for tables whose entries come and go once per call (open streams, calls in flight), kept in
// plain arrays of slots.
//
// Why not Map or Set: a long-lived Map or Set that gains and loses an entry per call kept those calls' objects alive
// through young-generation collections until a full one. Measured on Node 20 with a grpc-js echo (16 calls in flight):
// the server promoted 12 % of what it allocated and the client 21 %, with scavenges of 2–6 ms; with these tables in
// node:http2's sessions and grpc-js's transports, under 1 % and ~1 ms. The likely mechanism: V8 rebuilds such a
// table every few additions once deletions have filled it, and the table it abandons in the old generation (where
// only full collections look) still points at the entries it held and at its successor. A slot array is never
// rebuilt (it only grows, to the most entries it ever held) and a deleted entry's slot is overwritten with undefined,
// so nothing outlives its call.
//
// Lookups scan the slots in use (keys compare with ===): these tables hold the calls of one connection or one
// process's publications in flight, tens to a few hundred.

/** A Map's subset that node:http2 uses for a session's streams: get, set, has, delete, size, forEach, iteration. */
export class SlotMap<K, V> {
  #keys: (K | undefined)[] = [];
  #values: (V | undefined)[] = [];
  /** Slots below this index may be in use; all above are free. */
  #high = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(key: K): V | undefined {
    const i = this.#find(key);
    return i < 0 ? undefined : this.#values[i];
  }

  has(key: K): boolean {
    return this.#find(key) >= 0;
  }

  set(key: K, value: V): this {
    let i = this.#find(key);
    if (i < 0) {
      i = this.#free();
      this.#keys[i] = key;
      this.#size++;
    }
    this.#values[i] = value;
    return this;
  }

  delete(key: K): boolean {
    const i = this.#find(key);
    if (i < 0) return false;
    this.#keys[i] = undefined;
    this.#values[i] = undefined;
    this.#size--;
    while (this.#high > 0 && this.#keys[this.#high - 1] === undefined) this.#high--;
    return true;
  }

  clear(): void {
    this.#keys.fill(undefined);
    this.#values.fill(undefined);
    this.#high = 0;
    this.#size = 0;
  }

  /** Calls `fn` for the entries present when it starts (so `fn` may delete them, as stream.destroy() does). */
  forEach(fn: (value: V, key: K, table: this) => void): void {
    for (const [key, value] of this.#snapshot()) fn(value, key, this);
  }

  *entries(): IterableIterator<[K, V]> {
    yield* this.#snapshot();
  }

  *keys(): IterableIterator<K> {
    for (const [key] of this.#snapshot()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.#snapshot()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  #find(key: K): number {
    const keys = this.#keys;
    for (let i = 0; i < this.#high; i++) if (keys[i] === key) return i;
    return -1;
  }

  /** The lowest free slot (so the slots in use stay packed at the front). */
  #free(): number {
    const keys = this.#keys;
    for (let i = 0; i < this.#high; i++) if (keys[i] === undefined) return i;
    if (this.#high === keys.length) {
      keys.push(undefined);
      this.#values.push(undefined);
    }
    return this.#high++;
  }

  #snapshot(): [K, V][] {
    const out: [K, V][] = [];
    for (let i = 0; i < this.#high; i++) if (this.#keys[i] !== undefined) out.push([this.#keys[i] as K, this.#values[i] as V]);
    return out;
  }
}

/** A Set's subset (add, has, delete, size, forEach, iteration) over a SlotMap. */
export class SlotSet<T> {
  readonly #map = new SlotMap<T, T>();

  get size(): number {
    return this.#map.size;
  }

  add(value: T): this {
    this.#map.set(value, value);
    return this;
  }

  has(value: T): boolean {
    return this.#map.has(value);
  }

  delete(value: T): boolean {
    return this.#map.delete(value);
  }

  clear(): void {
    this.#map.clear();
  }

  forEach(fn: (value: T, again: T, set: this) => void): void {
    this.#map.forEach((value) => fn(value, value, this));
  }

  values(): IterableIterator<T> {
    return this.#map.values();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.#map.values();
  }
}
