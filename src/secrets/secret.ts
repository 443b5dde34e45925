/**
 * A secret value that cannot be printed by accident (tokenizer's model): every string
 * conversion, JSON serialisation and util.inspect shows `[redacted:name]`. `reveal()` is the only
 * way to the value, and only the injection and scrubbing code call it.
 */
import { inspect } from 'node:util';

const VALUE = Symbol('value');

export class Secret {
  private readonly [VALUE]: string;
  constructor(
    readonly name: string,
    value: string,
  ) {
    this[VALUE] = value;
  }

  reveal(): string {
    return this[VALUE];
  }

  toString(): string {
    return `[redacted:${this.name}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
