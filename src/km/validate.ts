// Input rules of the KM service: ids, types, secret fields and labels, with every violation named at once.
import { InvalidArgumentError, type FieldViolation } from "../errors.js";

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const TYPE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
const JOB_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const CREDENTIAL_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const MAX_FIELDS = 32;
const MAX_FIELD_BYTES = 16 * 1024;
const MAX_LABELS = 32;

export class Violations {
  readonly list: FieldViolation[] = [];

  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new InvalidArgumentError(this.list);
  }

  accountId(field: string, value: string): void {
    if (!value) this.add(field, "required");
    else if (!ACCOUNT_ID.test(value)) this.add(field, "1 to 64 letters, digits, '.', '_', ':' or '-'");
  }

  credentialId(field: string, value: string): void {
    if (!value) this.add(field, "required");
    else if (!CREDENTIAL_ID.test(value)) this.add(field, "not a credential id");
  }

  type(field: string, value: string): void {
    if (!value) this.add(field, "required, e.g. aws-access-key");
    else if (!TYPE.test(value)) this.add(field, "1 to 64 lower-case letters, digits, '.', '_' or '-'");
  }

  /** Optional job id (audit trail). */
  jobId(field: string, value: string): void {
    if (value && !JOB_ID.test(value)) this.add(field, "at most 64 letters, digits, '.', '_', ':' or '-'");
  }

  /** Optional free text for the audit trail: short and printable. */
  note(field: string, value: string, max = 128): void {
    if (value.length > max || !PRINTABLE.test(value)) this.add(field, `at most ${max} printable ASCII characters`);
  }

  /** Secret fields: names are checked; values only for size (their content is never echoed). */
  secretFields(field: string, fields: Record<string, string>): void {
    const names = Object.keys(fields);
    if (names.length === 0) this.add(field, "at least one field is required");
    if (names.length > MAX_FIELDS) this.add(field, `at most ${MAX_FIELDS} fields`);
    for (const name of names) {
      if (!FIELD_NAME.test(name)) this.add(`${field}[${JSON.stringify(name.slice(0, 64))}]`, "field names are 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or '_'");
      else if (Buffer.byteLength(fields[name] as string) > MAX_FIELD_BYTES) this.add(`${field}[${name}]`, `at most ${MAX_FIELD_BYTES} bytes`);
      else if ((fields[name] as string) === "") this.add(`${field}[${name}]`, "empty");
    }
  }

  labels(field: string, labels: Record<string, string>): void {
    const names = Object.keys(labels);
    if (names.length > MAX_LABELS) this.add(field, `at most ${MAX_LABELS} labels`);
    for (const name of names) {
      if (!FIELD_NAME.test(name)) this.add(`${field}[${JSON.stringify(name.slice(0, 64))}]`, "label names are 1 to 64 letters, digits, '_', '.' or '-'");
      else if ((labels[name] as string).length > 255 || !PRINTABLE.test(labels[name] as string)) this.add(`${field}[${name}]`, "at most 255 printable ASCII characters");
    }
  }
}
