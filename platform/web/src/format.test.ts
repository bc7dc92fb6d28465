import { describe, expect, it } from "vitest";
import { bytes } from "./format";

describe("bytes", () => {
  it("writes binary units with three significant digits", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536 * 1024 ** 2)).toBe("1.50 GiB");
    expect(bytes(80 * 1024 ** 3)).toBe("80.0 GiB");
    expect(bytes(300 * 1024 ** 2)).toBe("300 MiB");
    expect(bytes(null)).toBe("–");
  });
});
