// A plain JavaScript RESP parser, written for comparison with the wasm one: the straightforward incremental
// design a Node client would start from. Bytes are appended as they arrive; each complete command (an array of
// bulk strings, or an inline command) is handed out as an array of Uint8Array views; an incomplete tail waits for
// the next chunk. No copies of arguments, no string decoding: the same work the wasm parser does.
const CR = 13;
const LF = 10;

export class JsRespParser {
  constructor() {
    this.buffer = new Uint8Array(0);
    this.offset = 0;
  }

  /** Appends `chunk` and returns every command now complete. */
  push(chunk) {
    if (this.offset < this.buffer.length) {
      const joined = new Uint8Array(this.buffer.length - this.offset + chunk.length);
      joined.set(this.buffer.subarray(this.offset));
      joined.set(chunk, this.buffer.length - this.offset);
      this.buffer = joined;
    } else {
      this.buffer = chunk;
    }
    this.offset = 0;
    const commands = [];
    for (;;) {
      const command = this.next();
      if (command === null) break;
      commands.push(command);
    }
    return commands;
  }

  /** One command from `offset`, or null (and `offset` unchanged) when it is not all here yet. */
  next() {
    const buf = this.buffer;
    let pos = this.offset;
    if (pos >= buf.length) return null;
    if (buf[pos] !== 0x2a) {
      const end = this.lineEnd(pos);
      if (end < 0) return null;
      this.offset = end + 2;
      return [buf.subarray(pos, end)];
    }
    const header = this.integer(pos + 1);
    if (header === null) return null;
    const args = new Array(header.value);
    pos = header.next;
    for (let i = 0; i < args.length; i++) {
      if (pos >= buf.length) return null;
      if (buf[pos] !== 0x24) throw new Error(`expected '$' at ${pos}, found ${buf[pos]}`);
      const length = this.integer(pos + 1);
      if (length === null || length.next + length.value + 2 > buf.length) return null;
      args[i] = buf.subarray(length.next, length.next + length.value);
      pos = length.next + length.value + 2;
    }
    this.offset = pos;
    return args;
  }

  /** The decimal integer at `pos`, ended by CRLF, and where the next line starts; null if incomplete. */
  integer(pos) {
    const buf = this.buffer;
    let value = 0;
    for (; pos < buf.length && buf[pos] !== CR; pos++) value = value * 10 + (buf[pos] - 48);
    if (pos + 1 >= buf.length) return null;
    if (buf[pos + 1] !== LF) throw new Error(`expected LF at ${pos + 1}`);
    return { value, next: pos + 2 };
  }

  lineEnd(pos) {
    const buf = this.buffer;
    for (; pos + 1 < buf.length; pos++) if (buf[pos] === CR && buf[pos + 1] === LF) return pos;
    return -1;
  }
}

/** The same interface as the wasm `RespBench` (`len`, `parse(chunk)` → `[commands, …]`), for measure.js. */
export class JsRespBench {
  constructor(stream) {
    this.stream = stream;
    this.len = stream.length;
  }

  parse(chunk) {
    const parser = new JsRespParser();
    const size = chunk || this.stream.length;
    let commands = 0;
    let args = 0;
    for (let at = 0; at < this.stream.length; at += size) {
      for (const command of parser.push(this.stream.subarray(at, at + size))) {
        commands += 1;
        args += command.length;
      }
    }
    return [commands, args];
  }
}
