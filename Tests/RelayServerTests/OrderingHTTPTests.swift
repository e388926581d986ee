import Foundation
import RelayCore
import RelayJournal
import RelayTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// README "Ordering", against the real binary: 5,000 events over 100 order ids to a destination
/// with `"ordering": {"key": "order_id"}` whose sink fails 30% of requests and delays some, with
/// a `kill -9` in the middle. Per order id the sink's first successes arrive in receive order,
/// and no delivery for an order starts while an earlier one for it is unfinished, as the sink's
/// timestamps and the journaled attempts both show.
/// The ingest port of the relay running now; 0 while none is.
private final class IngestPort: Sendable {
    private let port = Atomic<Int>(0)
    var value: Int { port.load(ordering: .relaxed) }
    func set(_ value: Int) { port.store(value, ordering: .relaxed) }
}

private struct PostFailed: Error, CustomStringConvertible {
    var description: String
}

@Suite struct OrderingHTTPTests {
    static let keys = 100
    static let total = 5_000

    static func payload(_ n: Int) -> String {
        "{\"id\":\"e\(n)\",\"type\":\"order.updated\",\"order_id\":\"o\(n % keys)\",\"n\":\(n)}"
    }

    /// Posts events `range` with 8 posters, each owning some order ids and posting its events
    /// one at a time, so that each order's events are received in `n` order. A post that fails
    /// (the relay is down: `ingest` is 0 or refuses) is sent again, as a provider would, until a
    /// relay answers 200 (a duplicate answers with the stored id). Returns id → n.
    fileprivate static func post(_ range: Range<Int>, to ingest: IngestPort) async throws -> [String: Int] {
        try await withThrowingTaskGroup(of: [String: Int].self) { group in
            for poster in 0..<8 {
                group.addTask {
                    var ids: [String: Int] = [:]
                    for n in range where (n % keys) % 8 == poster {
                        let deadline = ContinuousClock.now + .seconds(60)
                        while true {
                            let port = ingest.value
                            if port != 0, let response = try? await TestHTTPClient.send(port: port, method: "POST", path: "/webhooks/shop", body: Array(payload(n).utf8)),
                               response.status == 200, let id = try JSONParser.parse(response.body)["ids"]?.arrayValue?.first?.stringValue {
                                ids[id] = n
                                break
                            }
                            guard ContinuousClock.now < deadline else { throw PostFailed(description: "event \(n) was not acknowledged within 60 s") }
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    return ids
                }
            }
            var all: [String: Int] = [:]
            for try await ids in group { all.merge(ids) { first, _ in first } }
            return all
        }
    }

    @Test(.timeLimit(.minutes(4)))
    func eachOrdersEventsGoOutOneAtATimeInReceiveOrderAcrossKillNine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let downstream = TestDownstream()
        let port = try await downstream.start()
        try dir.write("routes.json", """
        { "sources": { "shop": { "provider": "generic", "fields": { "id": "/id", "type": "/type", "order_id": "/order_id" } } },
          "destinations": { "ordered": { "url": "http://127.0.0.1:\(port)/chaos/30/10/40", "max_in_flight": 32,
                                         "retry": { "max_attempts": 1000, "initial_backoff_ms": 10, "max_backoff_ms": 40 },
                                         "ordering": { "key": "order_id" } } },
          "routes": [ { "name": "all", "to": ["ordered"] } ] }
        """)
        func start(_ run: Int) async throws -> (RelayProcess, Int) {
            let process = try RelayProcess(
                arguments: ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data",
                            "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
                logPath: dir.path + "/relay-\(run).log"
            )
            return (process, try await process.waitForPort(message: "ingest listening"))
        }
        func succeeded(_ requests: [TestDownstream.Received]) -> Set<String> {
            Set(requests.lazy.filter { $0.status == 204 }.compactMap { $0.header("webhook-id") })
        }

        let ingest = IngestPort()
        let (first, port1) = try await start(0)
        ingest.set(port1)
        let posting = Task { try await Self.post(0..<Self.total, to: ingest) }
        // Kill while events arrive and deliveries are under way: some orders mid-way, some
        // posts and attempts in flight.
        try #require(await downstream.wait(timeout: .seconds(60)) { succeeded($0).count >= 1_000 }, "the first run delivered too little")
        ingest.set(0)
        first.signal(SIGKILL)
        _ = await first.waitForExit()
        let killed = ContinuousClock.now
        let deliveredBeforeKill = succeeded(downstream.requests).count

        let (second, port2) = try await start(1)
        ingest.set(port2)
        let numbers = try await posting.value
        try #require(numbers.count == Self.total)
        #expect(deliveredBeforeKill < Self.total / 2, "the kill came late (\(deliveredBeforeKill) delivered): it tested little")
        let all = await downstream.wait(timeout: .seconds(150)) { succeeded($0).count >= Self.total }
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
        await downstream.stop()
        let requests = downstream.requests
        #expect(all, "\(succeeded(requests).count) of \(Self.total) events were delivered")

        // The sink: per order id, the first successes in receive order.
        var firstSuccess: [Int: [Int]] = [:]
        var seen: Set<Int> = []
        var perKey: [Int: [TestDownstream.Received]] = [:]
        for request in requests {
            guard let id = request.header("webhook-id"), let n = numbers[id] else {
                Issue.record("the sink got a request the test did not send: \(request.header("webhook-id") ?? "no webhook-id")")
                continue
            }
            perKey[n % Self.keys, default: []].append(request)
            if request.status == 204, seen.insert(n).inserted { firstSuccess[n % Self.keys, default: []].append(n) }
        }
        for key in 0..<Self.keys {
            let order = firstSuccess[key] ?? []
            #expect(order == Array(stride(from: key, to: Self.total, by: Self.keys)), "order o\(key): first successes \(order.prefix(20))…")
        }
        // The sink: no request for an order arrived before the previous one for it was answered.
        // A request the killed relay had in flight is abandoned, not answered to anyone; its
        // retry by the next run may overlap it, so each run is checked on its own.
        var overlaps: [String] = []
        for (key, list) in perKey {
            for run in [list.filter { $0.time < killed }, list.filter { $0.time >= killed }] {
                let sorted = run.sorted { $0.time < $1.time }
                for (earlier, later) in zip(sorted, sorted.dropFirst()) {
                    guard let answered = earlier.answered, later.time >= answered else {
                        overlaps.append("o\(key): \(later.header("webhook-id") ?? "") started while \(earlier.header("webhook-id") ?? "") was unanswered")
                        continue
                    }
                }
            }
        }
        #expect(overlaps.isEmpty, "\(overlaps.count) overlaps, e.g. \(overlaps.prefix(5))")
        #expect(requests.count > Self.total + Self.total / 5, "the sink failed too few requests (\(requests.count) for \(Self.total) events) to test retries")

        // The journal: events stored in each order's receive order, and each event's attempts
        // start after the earlier event's last attempt ended (attempt times are their ends, in ms).
        let reader = JournalReader(directory: dir.path + "/data/journal")
        var eventOrder: [Int: [UInt64]] = [:]
        var attempts: [UInt64: [DeliveryRecord]] = [:]
        var sequenceNumbers: [UInt64: Int] = [:]
        while let record = try reader.next() {
            switch record.type {
            case .event:
                let event = try Event(decoding: record.payload)
                guard let n = numbers[event.id] else { continue }
                eventOrder[n % Self.keys, default: []].append(record.sequence)
                sequenceNumbers[record.sequence] = n
            case .deliveryAttempt:
                let attempt = try DeliveryRecord(decoding: record.payload)
                attempts[attempt.eventSequence, default: []].append(attempt)
            default:
                break
            }
        }
        var journalProblems: [String] = []
        for key in 0..<Self.keys {
            let sequences = eventOrder[key] ?? []
            let order = sequences.compactMap { sequenceNumbers[$0] }
            if order != Array(stride(from: key, to: Self.total, by: Self.keys)) { journalProblems.append("o\(key) stored out of receive order") }
            for (earlier, later) in zip(sequences, sequences.dropFirst()) {
                guard let done = attempts[earlier]?.last, done.outcome == .succeeded else {
                    journalProblems.append("o\(key): event \(earlier) has no journaled success")
                    continue
                }
                for attempt in attempts[later] ?? [] where attempt.time.milliseconds - Int64(attempt.durationMillis) < done.time.milliseconds - 2 {
                    journalProblems.append("o\(key): attempt \(attempt.attempt) of \(later) started before \(earlier) finished")
                }
            }
        }
        #expect(journalProblems.isEmpty, "\(journalProblems.count) problems, e.g. \(journalProblems.prefix(5))")
        print("ordering crash test: \(Self.total) events over \(Self.keys) orders, \(requests.count) requests at the sink, \(deliveredBeforeKill) delivered before the kill")
    }
}
