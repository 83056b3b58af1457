import { describe, expect, it } from "vitest";
import {
  DEFAULT_SOUND, SOUND_KEY, codecsHaveSound, elementSound, heard, liveHasSound, playMutedAfter, readSound,
  recordedHasSound, sliderValue, toggled, withVolume, writeSound, type KeyValueStore,
} from "./sound";

/** localStorage's behaviour that matters here: strings in, strings out, and a store that may refuse. */
class MemoryStore implements KeyValueStore {
  readonly items = new Map<string, string>();
  constructor(private readonly refuses = false) {}
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (this.refuses) throw new DOMException("quota", "QuotaExceededError");
    this.items.set(key, value);
  }
}

describe("the remembered choice", () => {
  it("starts muted at full volume", () => {
    expect(readSound(new MemoryStore())).toEqual({ muted: true, volume: 1 });
    expect(readSound(null)).toEqual(DEFAULT_SOUND);
  });

  it("reads back what was written", () => {
    const store = new MemoryStore();
    writeSound(store, { muted: false, volume: 0.4 });
    expect(readSound(store)).toEqual({ muted: false, volume: 0.4 });
    expect(JSON.parse(store.items.get(SOUND_KEY)!)).toEqual({ muted: false, volume: 0.4 });
  });

  it.each([
    ["not JSON", "{muted"],
    ["not an object", "true"],
    ["null", "null"],
    ["a field missing", '{"muted": false}'],
    ["a field of another type", '{"muted": "no", "volume": 1}'],
  ])("falls back to the default for %s", (_, text) => {
    const store = new MemoryStore();
    store.items.set(SOUND_KEY, text);
    expect(readSound(store)).toEqual(DEFAULT_SOUND);
  });

  it("keeps a stored volume within 0..1 and never at 0", () => {
    const store = new MemoryStore();
    store.items.set(SOUND_KEY, '{"muted": false, "volume": 7}');
    expect(readSound(store).volume).toBe(1);
    store.items.set(SOUND_KEY, '{"muted": false, "volume": -1}');
    expect(readSound(store).volume).toBeGreaterThan(0);
  });

  it("a store that refuses leaves the choice unremembered, without an error", () => {
    const store = new MemoryStore(true);
    expect(() => writeSound(store, { muted: false, volume: 1 })).not.toThrow();
    expect(readSound(store)).toEqual(DEFAULT_SOUND);
  });
});

describe("the controls", () => {
  it("the button unmutes and mutes, keeping the volume", () => {
    const unmuted = toggled({ muted: true, volume: 0.3 }, false);
    expect(unmuted).toEqual({ muted: false, volume: 0.3 });
    expect(toggled(unmuted, false)).toEqual({ muted: true, volume: 0.3 });
  });

  it("after the browser refused sound, the button (showing muted) gives sound", () => {
    expect(toggled({ muted: false, volume: 1 }, true)).toEqual({ muted: false, volume: 1 });
  });

  it("the slider at 0 mutes and keeps the volume to come back to; above 0 it unmutes", () => {
    expect(withVolume({ muted: false, volume: 0.6 }, 0)).toEqual({ muted: true, volume: 0.6 });
    expect(withVolume({ muted: true, volume: 0.6 }, 0.25)).toEqual({ muted: false, volume: 0.25 });
    expect(withVolume({ muted: true, volume: 0.6 }, Number.NaN)).toEqual({ muted: true, volume: 0.6 });
    expect(withVolume({ muted: true, volume: 0.6 }, 3)).toEqual({ muted: false, volume: 1 });
  });

  it("the slider shows 0 while muted or refused, else the volume", () => {
    expect(sliderValue({ muted: true, volume: 0.6 }, false)).toBe(0);
    expect(sliderValue({ muted: false, volume: 0.6 }, true)).toBe(0);
    expect(sliderValue({ muted: false, volume: 0.6 }, false)).toBe(0.6);
  });
});

describe("which element is audible", () => {
  it("the shown element plays as chosen, muted while the browser refuses", () => {
    expect(heard({ muted: false, volume: 0.5 }, false)).toEqual({ muted: false, volume: 0.5 });
    expect(heard({ muted: false, volume: 0.5 }, true)).toEqual({ muted: true, volume: 0.5 });
    expect(heard({ muted: true, volume: 0.5 }, false)).toEqual({ muted: true, volume: 0.5 });
  });

  it("the hidden element (the next window loading) is always muted", () => {
    const shown = heard({ muted: false, volume: 0.5 }, false);
    expect(elementSound(shown, true)).toEqual({ muted: false, volume: 0.5 });
    expect(elementSound(shown, false)).toEqual({ muted: true, volume: 0.5 });
    expect(elementSound(heard({ muted: true, volume: 0.5 }, false), true).muted).toBe(true);
  });

  it("of the two recorded elements, exactly the active one sounds, before and after a swap", () => {
    const shown = heard({ muted: false, volume: 1 }, false);
    for (const active of [0, 1]) {
      const muted = [0, 1].map((n) => elementSound(shown, n === active).muted);
      expect(muted.filter((m) => !m)).toHaveLength(1);
      expect(muted[active]).toBe(false);
    }
  });
});

describe("a refused play()", () => {
  it.each([
    ["NotAllowedError", false, true],
    ["NotAllowedError", true, false], // refused even muted: the browser plays nothing unasked
    ["AbortError", false, false], // a newer load interrupted it: not about sound
    ["NotSupportedError", false, false],
  ])("%s while muted=%s: play muted instead = %s", (name, muted, expected) => {
    expect(playMutedAfter(name, muted)).toBe(expected);
  });
});

describe("whether a stream has sound", () => {
  it.each([
    ["avc1.64001f,mp4a.40.2", true],
    ["mp4a.40.2,avc1.64001f", true],
    ["avc1.64001f, opus", true],
    ["avc1.64001f", false],
    ["hvc1.1.6.L93.B0", false],
    ["", false],
  ])("codecs %j: %s", (codecs, expected) => {
    expect(codecsHaveSound(codecs)).toBe(expected);
  });

  it("live: the stream message's audio, or both codecs in its mime", () => {
    expect(liveHasSound({ mime: 'video/mp4; codecs="avc1.64001f,mp4a.40.2"', audio: { codec: "aac" } })).toBe(true);
    expect(liveHasSound({ mime: 'video/mp4; codecs="avc1.64001f,mp4a.40.2"' })).toBe(true);
    expect(liveHasSound({ mime: 'video/mp4; codecs="avc1.64001f"' })).toBe(false);
    expect(liveHasSound({ mime: "video/mp4" })).toBe(false);
  });

  it("recorded: hls.js's BUFFER_CODECS for a chunk with both tracks in one init, or an audio track", () => {
    expect(recordedHasSound({ audiovideo: { codec: "mp4a.40.2,avc1.64001f" } })).toBe(true);
    expect(recordedHasSound({ audio: { codec: "mp4a.40.2" }, video: {} } as object)).toBe(true);
    expect(recordedHasSound({ video: { codec: "avc1.64001f" } } as object)).toBe(false);
    expect(recordedHasSound({})).toBe(false);
  });
});
