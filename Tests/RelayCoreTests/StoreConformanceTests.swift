import RelayCore
import RelayJournal
import RelayTesting
import Synchronization
import Testing

/// The contract every store implements (the ingest, event store and attempt recorder ports),
/// run against each: the journal, the in-memory store, and any store added later. A store that
/// passes behaves the same to the server, the CLI and the console.
@Suite struct StoreConformanceTests {
    static let t0 = Timestamp(milliseconds: 1_800_000_000_000)

    typealias Events = TestEvents

    func attempt(_ id: String, _ sequence: UInt64, _ destination: String, _ number: Int, _ outcome: DeliveryRecord.Outcome, replay: String = "") -> DeliveryRecord {
        DeliveryRecord(
            eventSequence: sequence, eventID: id, destination: destination, attempt: number, time: Timestamp(milliseconds: Self.t0.milliseconds + 1000),
            outcome: outcome, status: outcome == .succeeded ? 204 : 503, error: outcome == .succeeded ? "" : "HTTP 503", durationMillis: 5,
            nextDue: outcome == .retry ? Timestamp(milliseconds: Self.t0.milliseconds + 2000) : nil, replayID: replay
        )
    }

    func filter(_ query: [(String, String)]) throws -> EventFilter {
        try EventFilter(query: query.map { (name: $0.0, value: $0.1) }, now: Timestamp(milliseconds: Self.t0.milliseconds + 3_600_000))
    }

    @Test(arguments: StoreKind.allCases)
    func newEventsAreStoredAndDuplicatesAnsweredWithTheFirstID(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let a = events.candidate("a"), b = events.candidate("b"), a2 = events.candidate("a")
        let first = try await store.ingest.store([a, b, a2])
        #expect(first == [.stored(id: a.event.id), .stored(id: b.event.id), .duplicate(id: a.event.id)], "a copy within one batch is a duplicate of the first")
        // The same provider ids again, and one new; the same id from another source is new.
        let c = events.candidate("c"), b2 = events.candidate("b"), other = events.candidate("a", source: "other")
        let second = try await store.ingest.store([b2, c, other])
        #expect(second == [.duplicate(id: b.event.id), .stored(id: c.event.id), .stored(id: other.event.id)])
        // An event without a provider id is never a duplicate.
        let anonymous1 = events.candidate(""), anonymous2 = events.candidate("")
        #expect(try await store.ingest.store([anonymous1, anonymous2]) == [.stored(id: anonymous1.event.id), .stored(id: anonymous2.event.id)])
        #expect(try await store.ingest.store([]) == [])
        let page = try await store.events.page(filter: EventFilter(), cursor: nil, limit: 100)
        #expect(page.events.map(\.event.id) == [anonymous2, anonymous1, other, c, b, a].map(\.event.id), "newest first, each stored once")
        #expect(page.events.last?.event.body == a.event.body && page.events.last?.event.headers.first?.value == "application/json")
        await store.close()
    }

    /// A JSON string may hold NUL (`"\u0000"`), which PostgreSQL text cannot: such an event is
    /// stored (not refused with a 503 its provider would retry forever), de-duplicated, listed
    /// and matched by its status, on every store, and its own fields come back as they came.
    @Test(arguments: StoreKind.allCases)
    func fieldsWithNULAreStoredDeduplicatedAndFound(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let odd = events.candidate("a\u{0}b", type: "order.\u{0}paid", status: "PAID\u{0}"), plain = events.candidate("ab")
        #expect(try await store.ingest.store([odd, plain]) == [.stored(id: odd.event.id), .stored(id: plain.event.id)], "stored beside an event of the same batch")
        #expect(try await store.ingest.store([events.candidate("a\u{0}b")]) == [.duplicate(id: odd.event.id)])
        var filter = EventFilter()
        filter.statuses = ["PAID\u{0}"]
        let page = try await store.events.page(filter: filter, cursor: nil, limit: 10)
        #expect(page.events.map(\.event.id) == [odd.event.id])
        #expect(page.events.first?.event.providerEventID == "a\u{0}b" && page.events.first?.event.type == "order.\u{0}paid")
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func fiftyConcurrentIdenticalRequestsStoreExactlyOne(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let copies = (0..<50).map { _ in events.candidate("same") }
        let outcomes = try await withThrowingTaskGroup(of: IngestOutcome.self) { group in
            for copy in copies { group.addTask { try await store.ingest.store([copy])[0] } }
            var all: [IngestOutcome] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        let stored = outcomes.filter { if case .stored = $0 { true } else { false } }
        #expect(stored.count == 1)
        #expect(Set(outcomes.map(\.id)).count == 1, "every copy is answered with the id stored")
        #expect(try await store.events.page(filter: EventFilter(), cursor: nil, limit: 100).events.count == 1)
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func pagesFollowCursorsAndNewEventsNeverShiftThem(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        var ids: [String] = []
        for i in 0..<25 {
            let candidate = events.candidate("p\(i)", at: Int64(i) * 1000)
            _ = try await store.ingest.store([candidate])
            ids.append(candidate.event.id)
        }
        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await store.events.page(filter: EventFilter(), cursor: cursor, limit: 10)
            seen += page.events.map(\.event.id)
            cursor = page.nextCursor
            pages += 1
            if pages == 1 {
                // Events stored while a listing is paged do not shift the later pages.
                _ = try await store.ingest.store([events.candidate("late", at: 100_000)])
            }
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen == ids.reversed(), "every event once, newest first, across pages")
        let bad = await #expect(throws: FilterError.self) { try await store.events.page(filter: EventFilter(), cursor: "not-a-cursor", limit: 10) }
        #expect(bad?.parameter == "cursor")
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func filtersSelectByEveryField(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let paid = events.candidate("f1", source: "shop", type: "order.paid", status: "COMPLETED", products: ["cloud-s"], at: 0)
        let failed = events.candidate("f2", source: "shop", type: "order.failed", status: "FAILED", products: ["cloud-m", "desk"], at: 60_000)
        let refund = events.candidate("f3", source: "runa", type: "refund.created", status: "COMPLETED", products: [], at: 120_000)
        _ = try await store.ingest.store([paid, failed, refund])
        func ids(_ query: [(String, String)]) async throws -> [String] {
            try await store.events.page(filter: try filter(query), cursor: nil, limit: 100).events.map(\.event.id)
        }
        #expect(try await ids([("source", "shop")]) == [failed, paid].map(\.event.id))
        #expect(try await ids([("type", "order.*")]) == [failed, paid].map(\.event.id))
        #expect(try await ids([("status", "FAILED")]) == [failed.event.id])
        #expect(try await ids([("product", "cloud-*")]) == [failed, paid].map(\.event.id))
        #expect(try await ids([("product", "desk")]) == [failed.event.id])
        #expect(try await ids([("id", refund.event.id)]) == [refund.event.id])
        let since = Timestamp(milliseconds: Self.t0.milliseconds + 30_000).rfc3339
        let until = Timestamp(milliseconds: Self.t0.milliseconds + 90_000).rfc3339
        #expect(try await ids([("since", since)]) == [refund, failed].map(\.event.id))
        #expect(try await ids([("since", since), ("until", until)]) == [failed.event.id])
        #expect(try await ids([("source", "shop"), ("status", "COMPLETED")]) == [paid.event.id])
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func detailHasTheEventItsRoutingAndEveryAttempt(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let candidate = events.candidate("d1", to: ["a", "b"])
        _ = try await store.ingest.store([candidate, events.candidate("d2")])
        let id = candidate.event.id
        let reference = try #require(try await store.events.detail(id: id)).summary.reference
        let records = [
            attempt(id, reference.sequence, "a", 1, .retry), attempt(id, reference.sequence, "b", 1, .succeeded),
            attempt(id, reference.sequence, "a", 2, .dead),
        ]
        try await store.recorder.record(records)
        let detail = try #require(try await store.events.detail(id: id))
        #expect(detail.summary.event == candidate.event)
        #expect(detail.summary.decision == candidate.decision)
        #expect(detail.attempts == records, "every attempt, in order")
        #expect(detail.summary.deliveries.map(\.destination) == ["a", "b"])
        #expect(detail.summary.deliveries.map(\.state) == [.dead, .succeeded])
        #expect(detail.summary.deliveryState == .dead)
        #expect(try await store.events.event(reference) == candidate.event, "the event by reference")
        #expect(try await store.events.detail(id: events.ids.next()) == nil, "an unknown id")
        #expect(try await store.events.detail(id: "not-an-id") == nil)
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func deliveryStateFollowsOutcomesAndOnlyASuccessfulReplayChangesIt(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let pending = events.candidate("s1"), dead = events.candidate("s2"), ok = events.candidate("s3"), unrouted = events.candidate("s4", to: [])
        _ = try await store.ingest.store([pending, dead, ok, unrouted])
        func sequence(_ c: IngestCandidate) async throws -> UInt64 { try #require(try await store.events.detail(id: c.event.id)).summary.sequence }
        try await store.recorder.record([
            attempt(pending.event.id, try await sequence(pending), "a", 1, .retry),
            attempt(dead.event.id, try await sequence(dead), "a", 1, .dead),
            attempt(ok.event.id, try await sequence(ok), "a", 1, .succeeded),
            // A replay that fails changes nothing; one that succeeds delivers.
            attempt(ok.event.id, try await sequence(ok), "a", 1, .dead, replay: "rpl_1"),
        ])
        func states() async throws -> [String: DeliveryState?] {
            let page = try await store.events.page(filter: EventFilter(), cursor: nil, limit: 10)
            return Dictionary(uniqueKeysWithValues: page.events.map { ($0.event.providerEventID, $0.deliveryState) })
        }
        #expect(try await states() == ["s1": .pending, "s2": .dead, "s3": .succeeded, "s4": nil])
        try await store.recorder.record([attempt(dead.event.id, try await sequence(dead), "a", 1, .succeeded, replay: "rpl_2")])
        #expect(try await states() == ["s1": .pending, "s2": .succeeded, "s3": .succeeded, "s4": nil])
        let stillPending = try await store.events.page(filter: try filter([("delivery_state", "pending")]), cursor: nil, limit: 10)
        #expect(stillPending.events.map(\.event.id) == [pending.event.id])
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func deliveriesPageKeepsAnEventsDeliveriesTogether(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let three = events.candidate("x1", to: ["a", "b", "c"]), one = events.candidate("x2", to: ["a"]), other = events.candidate("x3", to: ["b"])
        _ = try await store.ingest.store([three, one, other])
        let first = try await store.events.deliveries(filter: EventFilter(), state: nil, destinations: [], cursor: nil, limit: 2)
        #expect(first.deliveries.map { "\($0.eventID == other.event.id ? "x3" : $0.eventID == one.event.id ? "x2" : "x1"):\($0.destination)" } == ["x3:b", "x2:a"])
        let nextCursor: String = try #require(first.nextCursor)
        let second = try await store.events.deliveries(filter: EventFilter(), state: nil, destinations: [], cursor: nextCursor, limit: 2)
        #expect(second.deliveries.map(\.destination) == ["a", "b", "c"], "the last event's deliveries stay together")
        #expect(second.deliveries.allSatisfy { $0.eventID == three.event.id && $0.state == .pending })
        #expect(second.nextCursor == nil)
        let toB = try await store.events.deliveries(filter: EventFilter(), state: .pending, destinations: ["b"], cursor: nil, limit: 10)
        #expect(toB.deliveries.map(\.eventID) == [other.event.id, three.event.id])
        await store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func replayMatchingSeesExactlyTheEventsStoredUpToTheMark(_ kind: StoreKind) async throws {
        let store = try await kind.make()
        let events = Events()
        let before = (0..<5).map { events.candidate("m\($0)", status: $0 % 2 == 0 ? "FAILED" : "COMPLETED") }
        _ = try await store.ingest.store(before)
        let mark = try await store.events.mark()
        _ = try await store.ingest.store([events.candidate("after", status: "FAILED")])
        var found: [StoredEventMatch] = []
        for try await match in store.events.matches(filter: try filter([("status", "FAILED")]), through: mark, prepare: { PreparedRouting(destinations: [$0.status], orderingKeys: ["x": $0.orderID]) }) {
            found.append(match)
        }
        #expect(found.map(\.id) == [before[4], before[2], before[0]].map(\.event.id), "newest first, none stored after the mark")
        #expect(found.allSatisfy { $0.prepared.destinations == ["FAILED"] && $0.prepared.orderingKeys["x"]?.hasPrefix("o-m") == true && $0.decision?.destinations == ["a"] && $0.deliveries.map(\.state) == [.pending] })
        // Leaving the stream early stops the scan.
        var one = 0
        for try await _ in store.events.matches(filter: EventFilter(), through: try await store.events.mark(), prepare: { _ in .none }) {
            one += 1
            break
        }
        #expect(one == 1)
        for match in found { #expect(try await store.events.event(match.reference).id == match.id) }
        await store.close()
    }
}
