import Logging
@testable import RelayCore
@testable import RelayJournal
import RelayTesting
import Synchronization
import Testing

/// A clock tests can move.
func fastSpringBody(ids: [String]) -> [UInt8] {
    let events = ids.map { "{\"id\":\"\($0)\",\"type\":\"order.completed\",\"data\":{\"id\":\"o-\($0)\",\"items\":[{\"product\":\"p\"}]}}" }
    return Array("{\"events\":[\(events.joined(separator: ","))]}".utf8)
}

func signedFastSpring(ids: [String]) -> (HeaderList, [UInt8]) {
    let body = fastSpringBody(ids: ids)
    return (["X-FS-Signature": Fixtures.fastSpringSignature(secret: Fixtures.fastSpringSecret, body: body)], body)
}

@Suite struct DeduplicationTests {
    @Test func indexExpiresByWindowAndEvictsOverCap() {
        let index = DeduplicationIndex(configuration: .init(windowMillis: 60_000, maxKeys: 3))
        let t0 = Timestamp(seconds: 1_700_000_000)
        let keys = (0..<5).map { DeduplicationIndex.Key(source: "s", providerEventID: "e\($0)") }
        let ids = (0..<5).map { EventIDGenerator.format(millis: 1_700_000_000_000 + Int64($0), high: 7, low: UInt64($0)) }
        #expect(index.claim(keys[0], now: t0) == .new)
        #expect(index.claim(keys[0], now: t0) == .busy)
        index.commit([(keys[0], ids[0], t0)])
        #expect(index.claim(keys[0], now: t0) == .duplicate(id: ids[0]))
        for i in 1..<4 {
            #expect(index.claim(keys[i], now: t0) == .new)
            index.commit([(keys[i], ids[i], t0)])
        }
        #expect(index.count == 3, "capped at maxKeys, oldest evicted")
        #expect(index.claim(keys[1], now: t0) == .duplicate(id: ids[1]))
        #expect(index.claim(keys[0], now: t0) == .new)
        index.release([keys[0]])
        // After the window everything is forgotten.
        #expect(index.claim(keys[3], now: Timestamp(seconds: 1_700_000_061)) == .new)
        #expect(index.count == 0)
    }

    /// Compacting after start-up keeps every key, its id and its place in the eviction order,
    /// also when the order list has an evicted prefix (`head` > 0).
    @Test func compactKeepsKeysAndEvictionOrder() {
        let index = DeduplicationIndex(configuration: .init(windowMillis: 3_600_000, maxKeys: 1_000))
        let t0 = Timestamp(seconds: 1_700_000_000)
        let keys = (0..<1_500).map { DeduplicationIndex.Key(source: "s", providerEventID: "e\($0)") }
        let ids = (0..<1_500).map { EventIDGenerator.format(millis: 1_700_000_000_000 + Int64($0), high: 7, low: UInt64($0)) }
        for i in 0..<1_500 {
            let at = Timestamp(seconds: t0.seconds + Int64(i / 100))  // times increase, as they do
            #expect(index.claim(keys[i], now: at) == .new)
            index.commit([(keys[i], ids[i], at)])
        }
        #expect(index.count == 1_000, "the 500 oldest were evicted")
        index.compact()
        #expect(index.count == 1_000)
        let later = Timestamp(seconds: t0.seconds + 20)
        #expect((500..<1_500).allSatisfy { index.claim(keys[$0], now: later) == .duplicate(id: ids[$0]) })
        for i in 0..<500 {
            #expect(index.claim(keys[i], now: later) == .new)
            index.release([keys[i]])
        }
        // Over the cap, the oldest still goes first (a lost `head` would evict a newer one).
        let extra = DeduplicationIndex.Key(source: "s", providerEventID: "extra")
        #expect(index.claim(extra, now: later) == .new)
        index.commit([(extra, ids[0], later)])
        #expect(index.count == 1_000)
        #expect(index.claim(keys[500], now: later) == .new)
        index.release([keys[500]])
        #expect(index.claim(keys[501], now: later) == .duplicate(id: ids[501]))
        // Expiry still walks the order: an hour after t0 + 5 s, the keys stored by then (up to
        // e599) are gone and those stored from t0 + 6 s on stay.
        let expired = Timestamp(seconds: t0.seconds + 6 + 3_600)
        #expect(index.claim(keys[550], now: expired) == .new)
        index.release([keys[550]])
        #expect(index.claim(keys[650], now: expired) == .duplicate(id: ids[650]))
        #expect(index.claim(keys[1_450], now: expired) == .duplicate(id: ids[1_450]))
    }

    @Test func packedIDsRoundTrip() {
        let generator = EventIDGenerator()
        for _ in 0..<100 {
            let id = generator.next()
            #expect(EventIDGenerator.unpack(EventIDGenerator.pack(id)) == id)
        }
        #expect(EventIDGenerator.unpack(EventIDGenerator.pack("not-an-id")) == "")
    }

    @Test func duplicateWithinOneBatchIsStoredOnce() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path), logger: makeLogger().0)
        let pipeline = IngestPipeline(config: RelayConfig(sources: ["fastspring": fastSpringSource()]), store: JournalIngestStore(journal: journal, logger: makeLogger().0))
        let (headers, body) = signedFastSpring(ids: ["a", "b", "a"])
        let result = try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body)
        #expect(result.accepted == 2)
        #expect(result.duplicates == 1)
        #expect(result.ids.count == 3 && result.ids[0] == result.ids[2] && result.ids[0] != result.ids[1])
        await journal.close()
        #expect(try readAll(dir.path).filter { $0.type == .event }.count == 2)
    }

    @Test func redeliveryAfterRestartIsADuplicate() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (headers, body) = signedFastSpring(ids: ["x1", "x2"])
        let first: IngestResult
        do {
            let journal = try Journal.open(JournalConfiguration(directory: dir.path), logger: makeLogger().0)
            let pipeline = IngestPipeline(config: RelayConfig(sources: [:]), store: JournalIngestStore(journal: journal, logger: makeLogger().0))
            first = try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body)
            #expect(first.accepted == 2)
            await journal.close()
        }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path), logger: makeLogger().0)
        let store = JournalIngestStore(journal: journal, logger: makeLogger().0)
        let pipeline = IngestPipeline(config: RelayConfig(sources: [:]), store: store)
        try store.recover(from: journal.reader(), now: SystemClock().now())
        let again = try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body)
        #expect(again.accepted == 0)
        #expect(again.duplicates == 2)
        #expect(again.ids == first.ids, "a duplicate answers with the original relay ids")
        // One new event in an otherwise repeated batch is stored.
        let (h2, b2) = signedFastSpring(ids: ["x2", "x3"])
        let mixed = try await pipeline.ingest(source: fastSpringSource(), headers: h2, body: b2)
        #expect(mixed.accepted == 1 && mixed.duplicates == 1)
        await journal.close()
        #expect(try readAll(dir.path).filter { $0.type == .event }.count == 3)
    }

    @Test func concurrentIdenticalDeliveriesStoreExactlyOne() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path), logger: makeLogger().0)
        let pipeline = IngestPipeline(config: RelayConfig(sources: [:]), store: JournalIngestStore(journal: journal, logger: makeLogger().0))
        // Overlapping batches in different orders must neither deadlock nor double-store.
        let batches = [["k1", "k2", "k3"], ["k3", "k2", "k1"], ["k2", "k4"], ["k4", "k1"]]
        let results = try await withThrowingTaskGroup(of: IngestResult.self) { group in
            for copy in 0..<40 {
                let (headers, body) = signedFastSpring(ids: batches[copy % batches.count])
                group.addTask { try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body) }
            }
            var all: [IngestResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.reduce(0) { $0 + $1.accepted } == 4)
        await journal.close()
        let stored = try readAll(dir.path).filter { $0.type == .event }.map { try Event(decoding: $0.payload).providerEventID }
        #expect(stored.sorted() == ["k1", "k2", "k3", "k4"])
    }

    @Test func aFailedAppendReleasesTheKeySoTheRetryIsStored() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let faults = FaultyFileSystem()
        let journal = try Journal.open(JournalConfiguration(directory: dir.path, fileSystem: faults), logger: makeLogger().0)
        let pipeline = IngestPipeline(config: RelayConfig(sources: [:]), store: JournalIngestStore(journal: journal, logger: makeLogger().0))
        let (headers, body) = signedFastSpring(ids: ["r1"])
        faults.failWrites(28)  // ENOSPC
        let refused = await #expect(throws: IngestError.self) { try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body) }
        #expect(refused?.code == .unavailable && refused?.httpStatus == 503)
        faults.failWrites(nil)
        let retry = try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body)
        #expect(retry.accepted == 1 && retry.duplicates == 0)
        await journal.close()
    }

    @Test func anEventTooLargeForTheJournalIs413NotARetryLoop() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path, maxRecordSize: 512), logger: makeLogger().0)
        let store = JournalIngestStore(journal: journal, logger: makeLogger().0)
        let pipeline = IngestPipeline(config: RelayConfig(sources: [:]), store: store)
        let (headers, body) = signedFastSpring(ids: ["huge-\(String(repeating: "x", count: 600))"])
        do {
            _ = try await pipeline.ingest(source: fastSpringSource(), headers: headers, body: body)
            Issue.record("an event over the record limit was accepted")
        } catch {
            #expect(error.code == .tooLarge)
            #expect(error.httpStatus == 413)
        }
        // Its de-duplication key was released.
        #expect(store.deduplication.count == 0)
        await journal.close()
    }
}

@Suite struct KeyTableTests {
    /// Random inserts, overwrites and removals against a Dictionary: same contents after each
    /// step, through growth, wrap-around and backward-shift deletions (small key space: long runs).
    @Test func behavesLikeADictionary() {
        var generator = SystemRandomNumberGenerator()
        var table = KeyTable(minimumCapacity: 16)
        var model: [DeduplicationIndex.Key: DeduplicationIndex.Entry] = [:]
        // A pool of keys: most uniform, some with the largest low words (their runs wrap past the last slot).
        let pool = (0..<3_000).map { index in
            DeduplicationIndex.Key(high: UInt64.random(in: 0...3, using: &generator), low: index < 200 ? UInt64.max - UInt64(index) : UInt64.random(in: 0...UInt64.max, using: &generator))
        }
        for step in 0..<60_000 {
            let key = pool[Int.random(in: 0..<pool.count, using: &generator)]
            switch UInt8.random(in: 0...9, using: &generator) {
            case 0...5:
                let entry = DeduplicationIndex.Entry(id: EventIDGenerator.Packed(high: UInt64(step), low: 7), seconds: UInt32(step))
                table[key] = entry
                model[key] = entry
            default:
                table[key] = nil
                model[key] = nil
            }
            if step % 997 == 0 || step == 59_999 {
                #expect(table.count == model.count)
                var seen = 0
                table.forEach { key, entry in
                    seen += 1
                    #expect(model[key]?.id == entry.id && model[key]?.seconds == entry.seconds)
                }
                #expect(seen == model.count)
                for (key, entry) in model { #expect(table[key]?.id == entry.id) }
            }
        }
    }

    @Test func theEmptyMarkerKeyIsNeverProduced() {
        #expect(DeduplicationIndex.Key(high: 0, low: 0) == DeduplicationIndex.Key(high: 0, low: 1))
        var table = KeyTable()
        table[DeduplicationIndex.Key(high: 0, low: 0)] = DeduplicationIndex.Entry(id: EventIDGenerator.Packed(high: 1, low: 2), seconds: 3)
        #expect(table.count == 1)
        #expect(table[DeduplicationIndex.Key(high: 0, low: 0)]?.seconds == 3)
    }
}
