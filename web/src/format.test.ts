import { describe, expect, it } from "vitest";
import { formatAge, formatBitrate, formatBytes, formatFps, formatScore, formatWhen, fromLocalInput, toLocalInput } from "./format";

describe("ages", () => {
  it.each([
    [null, "—"],
    [Number.NaN, "—"],
    [-1, "0.0 s"],
    [0.42, "0.4 s"],
    [9.96, "10.0 s"],
    [12.7, "12 s"],
    [60, "1 min"],
    [3599, "59 min"],
    [3600, "1 h"],
    [3600 + 5 * 60 + 30, "1 h 5 min"],
    [86_400 * 3 + 5, "3 d"],
  ])("%s s is %s", (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });
});

describe("bitrates and sizes", () => {
  it.each([
    [null, "—"],
    [0, "0 bit/s"],
    [999, "999 bit/s"],
    [850_000, "850 kbit/s"],
    [2_400_000, "2.40 Mbit/s"],
    [12_345_678, "12.3 Mbit/s"],
    [3e9, "3.00 Gbit/s"],
  ])("%s bit/s is %s", (bps, text) => {
    expect(formatBitrate(bps)).toBe(text);
  });

  it.each([
    [512, "512 B"],
    [1500, "1.50 kB"],
    [1_500_000_000, "1.50 GB"],
    [2.5e15, "2500 TB"],
  ])("%s bytes is %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it.each([[29.97, "30.0"], [7.5, "7.50"], [120, "120"], [null, "—"]])("%s fps is %s", (fps, text) => {
    expect(formatFps(fps)).toBe(text);
  });

  it("writes scores as percentages", () => {
    expect(formatScore(0.873)).toBe("87 %");
    expect(formatScore(1)).toBe("100 %");
  });
});

describe("local times", () => {
  const at = new Date(2026, 10, 27, 14, 3, 10).getTime() / 1000;

  it("shows the time alone today and the date on other days", () => {
    expect(formatWhen(at, new Date(2026, 10, 27, 23, 0))).toBe("14:03:10");
    expect(formatWhen(at, new Date(2026, 10, 28, 0, 1))).toBe("2026-11-27 14:03:10");
  });

  it("round-trips datetime-local values to the minute", () => {
    expect(toLocalInput(at)).toBe("2026-11-27T14:03");
    expect(fromLocalInput("2026-11-27T14:03")).toBe(at - 10);
    expect(fromLocalInput("2026-11-27T14:03:10")).toBe(at);
  });

  it.each(["", "yesterday", "2026-11-27", "2026-13-01T00:00x"])("reads %j as no time", (text) => {
    expect(fromLocalInput(text)).toBeNull();
  });
});
