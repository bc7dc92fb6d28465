// Newline-delimited JSON arriving in arbitrary chunks (a line may be split anywhere).

export class NdjsonSplitter {
  private buffer = "";

  /** The complete lines of `chunk` (with what was left from before), parsed. */
  push(chunk: string): unknown[] {
    this.buffer += chunk;
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop() ?? "";
    return lines.filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as unknown);
  }

  /** Whatever remains once the stream ended (a last line without its newline). */
  end(): unknown[] {
    const rest = this.buffer.trim();
    this.buffer = "";
    return rest ? [JSON.parse(rest) as unknown] : [];
  }
}
