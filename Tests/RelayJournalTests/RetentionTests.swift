import Foundation
import Logging
import RelayCore
@testable import RelayJournal
import RelayTesting
import Testing

/// Journal retention on a real journal with small segments: events back-dated by their receive
/// time, so days pass without waiting.
@Suite struct RetentionTests {
    static let day: Int64 = 86_400_000
    static let now = Timestamp(milliseconds: 1_900_000_000_000)

    /// A journal of `days` days of events (one event and its decision per hour, oldest first)
    /// in segments of about 4 KiB.
    func filledJournal(days: Int, in directory: TemporaryDirectory, logger: Logger) async throws -> (Journal, [UInt64]) {
        let journal = try Journal.open(JournalConfiguration(directory: directory.path + "/journal", segmentSize: 4096), logger: logger)
        var sequences: [UInt64] = []
        for hour in 0..<(days * 24) {
            let time = Timestamp(milliseconds: Self.now.milliseconds - Int64(days) * Self.day + Int64(hour) * 3_600_000)
            let ids = EventIDGenerator(clock: SettableClock(time))
            let event = Event(id: ids.next(), source: "shop", provider: "generic", providerEventID: "p\(hour)", receivedAt: time, body: Array(repeating: UInt8(ascii: "x"), count: 200))
            let decision = RoutingDecision(eventID: event.id, configVersion: "v", routes: ["r"], destinations: ["d"])
            sequences.append(try await journal.append([event.journalEntry, decision.journalEntry])[0])
        }
        return (journal, sequences)
    }

    func segments(_ journal: Journal) throws -> [UInt64] {
        try FileManager.default.contentsOfDirectory(atPath: journal.configuration.directory).compactMap(JournalFormat.segmentBase(fileName:)).sorted()
    }

    func diskBytes(_ journal: Journal) throws -> Int64 {
        try FileManager.default.contentsOfDirectory(atPath: journal.configuration.directory).filter { $0.hasSuffix(".seg") }.reduce(0) { total, name in
            total + (((try FileManager.default.attributesOfItem(atPath: journal.configuration.directory + "/" + name))[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    @Test func segmentsOlderThanTheRetentionGoAndWhatRemainsStillWorks() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (logger, logs) = makeLogger()
        let (journal, sequences) = try await filledJournal(days: 60, in: directory, logger: logger)
        let before = try segments(journal)
        let bytesBefore = try diskBytes(journal)
        #expect(before.count > 20)
        let retention = JournalRetention(journal: journal, retentionMillis: 30 * Self.day, logger: logger)
        let plan = try retention.plan(now: Self.now, keepFrom: nil)
        #expect(plan.held.isEmpty)
        #expect(plan.deletable == Array(before.prefix(plan.deletable.count)), "only a prefix, oldest first")
        try retention.apply(plan)
        let after = try segments(journal)
        #expect(after.first.map { $0 > before[0] } == true && after.last == before.last, "the active segment stays")
        // About half the disk: 30 of 60 days, within a segment or two.
        let ratio = Double(try diskBytes(journal)) / Double(bytesBefore)
        #expect(ratio > 0.4 && ratio < 0.6, "disk after pruning: \(ratio) of before")

        // Every event still there is younger than... at most a segment older than the cutoff,
        // and every event newer than the cutoff is still there.
        let cutoff = Self.now.milliseconds - 30 * Self.day
        let remaining = try readAll(journal.configuration.directory).filter { $0.type == .event }.map { try Event(decoding: $0.payload) }
        let expectedKept = sequences.indices.filter { Self.now.milliseconds - 60 * Self.day + Int64($0) * 3_600_000 >= cutoff }.count
        #expect(remaining.filter { $0.receivedAt.milliseconds >= cutoff }.count == expectedKept)
        #expect(remaining.count - expectedKept < 40, "at most about one segment of older events is kept")

        // The journal verifies, reopens and reads from its new beginning; the event store's
        // oldest page ends cleanly; a query by time before the cutoff finds what is left.
        await journal.close()
        #expect(try JournalVerifier.verify(directory: journal.configuration.directory).isIntact)
        let reopened = try Journal.open(journal.configuration, logger: logger)
        let io = TestBlockingIO()
        let store = JournalEventStore(journal: reopened, io: io)
        var cursor: String?
        var listed = 0
        repeat {
            let page = try await store.page(filter: EventFilter(), cursor: cursor, limit: 100)
            listed += page.events.count
            cursor = page.nextCursor
        } while cursor != nil
        #expect(listed == remaining.count)
        var old = EventFilter()
        old.until = Timestamp(milliseconds: cutoff)
        let oldPage = try await store.page(filter: old, cursor: nil, limit: 1000)
        #expect(oldPage.events.count == remaining.count - expectedKept && oldPage.nextCursor == nil)
        #expect(try await reopened.append(JournalEntry(type: .event, payload: [1])) == (sequences.last ?? 0) + 2)
        await reopened.close()
        await io.shutdown()
        #expect(!logs.messages.contains { $0.level == .warning }, "nothing was held")
    }

    @Test func segmentsStillNeededAreHeldReportedOnceAndKept() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (logger, logs) = makeLogger()
        let (journal, sequences) = try await filledJournal(days: 60, in: directory, logger: logger)
        let before = try segments(journal)
        let retention = JournalRetention(journal: journal, retentionMillis: 30 * Self.day, logger: logger)
        // A delivery of the event of day 10 is unfinished: nothing from its segment on may go.
        let needed = sequences[10 * 24]
        let plan = try retention.plan(now: Self.now, keepFrom: needed)
        #expect(!plan.deletable.isEmpty && !plan.held.isEmpty)
        #expect(plan.deletable.allSatisfy { base in before.first { $0 > base }.map { $0 <= needed } == true }, "every deleted segment ends before the needed event")
        try retention.apply(plan)
        #expect(retention.heldSegments == plan.held.count)
        #expect(try readAll(journal.configuration.directory).contains { $0.sequence == needed }, "the needed event is kept")
        // A second pass holds the same segments and does not log them again.
        try retention.apply(try retention.plan(now: Self.now, keepFrom: needed))
        let warnings = logs.messages.filter { $0.level == .warning }
        #expect(warnings.count == plan.held.count, "one line per held segment: \(warnings.map(\.message))")
        // Finished: they go.
        try retention.apply(try retention.plan(now: Self.now, keepFrom: nil))
        #expect(retention.heldSegments == 0)
        #expect(try segments(journal).count < before.count - plan.deletable.count)
        await journal.close()
        #expect(try JournalVerifier.verify(directory: journal.configuration.directory).isIntact)
    }

    /// A plan made before a replay started (or before the tail caught up) is trimmed to what is
    /// still not needed once the caller knows more.
    @Test func aPlanIsTrimmedToWhatIsStillNotNeeded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (logger, _) = makeLogger()
        let (journal, sequences) = try await filledJournal(days: 60, in: directory, logger: logger)
        let retention = JournalRetention(journal: journal, retentionMillis: 30 * Self.day, logger: logger)
        let everything = try retention.plan(now: Self.now, keepFrom: nil)
        let needed = sequences[10 * 24]
        let trimmed = try retention.trimmed(everything, keepFrom: needed)
        #expect(trimmed == (try retention.plan(now: Self.now, keepFrom: needed)), "the same as planning with the need known")
        #expect(trimmed.deletable.count < everything.deletable.count && !trimmed.held.isEmpty)
        #expect(try retention.trimmed(everything, keepFrom: nil) == everything)
        await journal.close()
    }

    @Test func zeroKeepsEverythingAndNothingYoungGoes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (logger, _) = makeLogger()
        let (journal, _) = try await filledJournal(days: 10, in: directory, logger: logger)
        #expect(try JournalRetention(journal: journal, retentionMillis: 0, logger: logger).plan(now: Self.now, keepFrom: nil) == .init())
        #expect(try JournalRetention(journal: journal, retentionMillis: 30 * Self.day, logger: logger).plan(now: Self.now, keepFrom: nil) == .init())
        await journal.close()
    }
}

