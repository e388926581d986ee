import Logging
@testable import RelayCore
@testable import RelayJournal
import RelayTesting
import Testing

// README "De-duplication": keys are kept for 7 days, at most 1,000,000 of them (oldest evicted
// first). These check the defaults themselves, not a configuration a test chose.

@Suite struct DeduplicationDefaultTests {
    @Test func theDefaultsAreSevenDaysAndAMillionKeys() async throws {
        let configuration = DeduplicationIndex.Configuration()
        #expect(configuration.windowMillis == 7 * 86_400_000)
        #expect(configuration.maxKeys == 1_000_000)
        #expect(DeduplicationIndex().configuration.windowMillis == 7 * 86_400_000)
        // The journal's ingest store uses the index's defaults.
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path), logger: makeLogger().0)
        let store = JournalIngestStore(journal: journal, logger: makeLogger().0)
        #expect(store.deduplication.configuration.windowMillis == 7 * 86_400_000)
        #expect(store.deduplication.configuration.maxKeys == 1_000_000)
        await journal.close()
    }

    /// With the default index, a key is known for exactly 7 days after its event was received:
    /// still a duplicate at 7 days, forgotten a second later; a younger key stays.
    @Test func aKeyIsForgottenOnlyAfterSevenDays() {
        let index = DeduplicationIndex()
        let t0 = Timestamp(seconds: 1_800_000_000)
        let old = DeduplicationIndex.Key(source: "shop", providerEventID: "old")
        let young = DeduplicationIndex.Key(source: "shop", providerEventID: "young")
        let oldID = EventIDGenerator.format(millis: t0.milliseconds, high: 1, low: 1)
        let youngID = EventIDGenerator.format(millis: t0.milliseconds + 3_600_000, high: 1, low: 2)
        #expect(index.claim(old, now: t0) == .new)
        index.commit([(old, oldID, t0)])
        let hourLater = Timestamp(seconds: t0.seconds + 3600)
        #expect(index.claim(young, now: hourLater) == .new)
        index.commit([(young, youngID, hourLater)])

        #expect(index.claim(old, now: Timestamp(seconds: t0.seconds + 6 * 86_400)) == .duplicate(id: oldID))
        #expect(index.claim(old, now: Timestamp(seconds: t0.seconds + 7 * 86_400)) == .duplicate(id: oldID), "kept for the whole 7 days")
        let justOver = Timestamp(seconds: t0.seconds + 7 * 86_400 + 1)
        #expect(index.claim(old, now: justOver) == .new, "forgotten once older than 7 days")
        index.release([old])
        #expect(index.claim(young, now: justOver) == .duplicate(id: youngID), "a key younger than 7 days is kept")
        #expect(index.count == 1)
    }

    /// With the default index, the 1,000,001st key evicts the oldest one and only that one.
    /// Seconds of CPU: built on a thread of its own, not one of the few cooperative threads the
    /// relays of the tests running beside it need.
    @Test func aMillionKeysAreKeptAndTheOldestGoesFirst() async throws {
        let now = Timestamp(seconds: 1_800_000_000)
        let id = EventIDGenerator.format(millis: now.milliseconds, high: 1, low: 1)
        let (index, keys) = try await runOffPool("million-keys") {
            let index = DeduplicationIndex()
            var random = SplitMix64(state: 42)
            var keys: [DeduplicationIndex.Key] = []
            keys.reserveCapacity(1_000_001)
            for _ in 0...1_000_000 { keys.append(DeduplicationIndex.Key(high: random.next(), low: random.next())) }
            var batch: [(key: DeduplicationIndex.Key, id: String, receivedAt: Timestamp)] = []
            batch.reserveCapacity(10_000)
            for start in stride(from: 0, to: 1_000_000, by: 10_000) {
                batch.removeAll(keepingCapacity: true)
                for key in keys[start..<(start + 10_000)] { batch.append((key, id, now)) }
                index.commit(batch)
            }
            return (index, keys)
        }
        #expect(index.count == 1_000_000)
        #expect(index.claim(keys[0], now: now) == .duplicate(id: id), "the millionth key did not evict anything")
        index.commit([(keys[1_000_000], id, now)])
        #expect(index.count == 1_000_000)
        #expect(index.claim(keys[0], now: now) == .new, "the oldest key went first")
        index.release([keys[0]])
        #expect(index.claim(keys[1], now: now) == .duplicate(id: id))
        #expect(index.claim(keys[999_999], now: now) == .duplicate(id: id))
        #expect(index.claim(keys[1_000_000], now: now) == .duplicate(id: id))
    }
}
