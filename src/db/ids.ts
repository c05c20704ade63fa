// Row ids: 26-character ULIDs (48-bit millisecond time + 80 random bits, Crockford base32), sortable by creation.
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Random bytes drawn 4 KiB at a time: one randomBytes call per id costs more than the rest of newId. */
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

function random10(): Buffer {
  if (offset + 10 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  offset += 10;
  return pool.subarray(offset - 10, offset);
}

/** A new ULID, e.g. "01JDQ3Z5K8W8G4QF2Q6N2D7M9T". Ids made in the same millisecond are not ordered among themselves. */
export function newId(now: number = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  // 80 random bits, 5 at a time from the most significant (no BigInt: ids are made on every hot path).
  const bytes = random10();
  let random = time;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    acc = ((acc << 8) | (bytes[i] as number)) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      random += ALPHABET[(acc >> bits) & 31];
    }
  }
  return random;
}

/** Whether a string has the shape of an id made by newId. */
export function isId(value: string): boolean {
  return /^[0-9A-HJKMNP-TV-Z]{26}$/.test(value);
}
