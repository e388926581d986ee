import Logging
import RelayCore
import RelayForwarder
import RelayTesting
import Synchronization
import Testing

/// A transport that answers from a script (then `fallback`), records what it was asked to
/// send, and can hold every request until its task is cancelled. A fake allowed for policy
/// tests: what is tested here is the scheduler's timing, not HTTP.
final class ScriptedTransport: HTTPTransport {
    private let script: Mutex<[Result<TransportResponse, TransportFailure>]>
    private let fallback: Result<TransportResponse, TransportFailure>
    private let requests = Mutex<[OutboundRequest]>([])
    private let hang: Bool

    init(_ script: [Result<TransportResponse, TransportFailure>] = [], fallback: Result<TransportResponse, TransportFailure> = .success(TransportResponse(status: 204)), hang: Bool = false) {
        self.script = Mutex(script)
        self.fallback = fallback
        self.hang = hang
    }

    var sent: [OutboundRequest] { requests.withLock { $0 } }

    func send(_ request: OutboundRequest) async -> Result<TransportResponse, TransportFailure> {
        requests.withLock { $0.append(request) }
        if hang {
            try? await Task.sleep(for: .seconds(3_600))  // ends when the attempt's task is cancelled
            return .failure(TransportFailure(kind: .cancelled, message: "cancelled"))
        }
        return script.withLock { $0.isEmpty ? fallback : $0.removeFirst() }
    }
}

/// The scheduler as an executor, with no HTTP and no real sleeps: the in-memory store, a
/// scripted transport and a clock the test moves. Each timing is read off the clock's sleepers
/// (what the scheduler is waiting for), then reached by moving the clock.
@Suite struct DeliverySchedulerTests {
    static let t0 = Timestamp(milliseconds: 1_800_000_000_000)
    let clock = ManualClock(start: DeliverySchedulerTests.t0)
    let events = TestEvents(start: DeliverySchedulerTests.t0)

    func at(_ millis: Int64) -> Timestamp { Timestamp(milliseconds: Self.t0.milliseconds + millis) }

    func destination(_ name: String, maxInFlight: Int = 16, retry: RetryPolicy = RetryPolicy()) -> DestinationConfig {
        DestinationConfig(name: name, url: "http://127.0.0.1:9/\(name)", maxInFlight: maxInFlight, retry: retry)
    }

    /// A scheduler over `store` running until the returned stop is called.
    func start(
        _ store: MemoryStore, _ transport: ScriptedTransport, _ destinations: [String: DestinationConfig],
        drainTimeout: Duration = .seconds(10)
    ) async -> (DeliveryScheduler, @Sendable () async throws -> Void) {
        await store.configure(destinations)
        let scheduler = DeliveryScheduler(
            store: store, transport: transport, destinations: destinations,
            configuration: DeliveryScheduler.Configuration(breakerThreshold: 2, drainTimeout: drainTimeout), clock: clock.wall, timer: clock,
            random: { $0 }, logger: Logger(label: "scheduler-test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let running = Task { try await scheduler.run() }
        return (scheduler, {
            await scheduler.stop()
            try await running.value
        })
    }

    /// Waits (bounded) until the scheduler sleeps until `time`, with `count` requests sent.
    func expectWaiting(until time: Timestamp, sent count: Int, _ transport: ScriptedTransport, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let waiting = await eventually(timeout: .seconds(30)) { clock.deadlines.contains(time) && transport.sent.count == count }
        #expect(waiting, "sleeping until \(time.milliseconds - Self.t0.milliseconds) ms: \(clock.deadlines.map { $0.milliseconds - Self.t0.milliseconds }); sent \(transport.sent.count) of \(count)", sourceLocation: sourceLocation)
    }

    @Test func aFailedAttemptIsRetriedAtItsBackoffAndNotBefore() async throws {
        let store = MemoryStore()
        let transport = ScriptedTransport([.success(TransportResponse(status: 503))])
        let (_, stop) = await start(store, transport, ["a": destination("a")])
        _ = try await store.store([events.candidate("e1", to: ["a"])])
        // random(n) = n: the first retry waits the whole initial backoff, 1 s.
        try await expectWaiting(until: at(1_000), sent: 1, transport)
        clock.advance(to: at(999))
        try await expectWaiting(until: at(1_000), sent: 1, transport)
        clock.advance(to: at(1_000))
        let delivered = await eventually(timeout: .seconds(30)) { await store.statuses()["a"]?.succeeded == 1 }
        #expect(delivered)
        #expect(transport.sent.count == 2)
        #expect(transport.sent.last?.headers.first { $0.name == "x-relay-attempt" }?.value == "2")
        try await stop()
    }

    @Test func retryAfterSetsTheNextAttemptAndMaxAgeEndsIt() async throws {
        let store = MemoryStore()
        let transport = ScriptedTransport(fallback: .success(TransportResponse(status: 429, headers: [("retry-after", "30")])))
        let (_, stop) = await start(store, transport, ["a": destination("a", retry: RetryPolicy(maxAgeMillis: 45_000))])
        let event = events.candidate("e2", to: ["a"])
        _ = try await store.store([event])
        try await expectWaiting(until: at(30_000), sent: 1, transport)
        clock.advance(to: at(30_000))
        // The next Retry-After would land at 60 s, past max_age (45 s): dead.
        let dead = await eventually(timeout: .seconds(30)) { await store.statuses()["a"]?.dead == 1 }
        #expect(dead)
        #expect(transport.sent.count == 2)
        let attempts = try #require(try await store.detail(id: event.event.id)).attempts
        #expect(attempts.map(\.outcome) == [.retry, .dead])
        #expect(attempts.last?.error.contains("max_age") == true)
        try await stop()
    }

    @Test func anOpenBreakerProbesOncePerCooldownDoublingAfterAFailedProbe() async throws {
        let store = MemoryStore(breaker: CircuitBreaker.Configuration(threshold: 2, cooldownMillis: 1_000, maxCooldownMillis: 60_000))
        let refused = Result<TransportResponse, TransportFailure>.failure(TransportFailure(kind: .connect, message: "connection refused"))
        let transport = ScriptedTransport(fallback: refused)
        let (scheduler, stop) = await start(store, transport, ["down": destination("down", maxInFlight: 1)])
        _ = try await store.store((0..<4).map { events.candidate("b\($0)", to: ["down"]) })
        // Two refusals in a row open the breaker: nothing more until one cool-down later.
        try await expectWaiting(until: at(1_000), sent: 2, transport)
        #expect(await scheduler.status(of: "down")?.breakerOpen == true)
        clock.advance(to: at(1_000))
        // One probe; it fails: the next waits twice as long.
        try await expectWaiting(until: at(3_000), sent: 3, transport)
        #expect(await scheduler.status(of: "down")?.inFlight == 0)
        clock.advance(to: at(3_000))
        try await expectWaiting(until: at(7_000), sent: 4, transport)
        try await stop()
    }

    @Test func attemptsCutAtShutdownAreGivenBackUnattempted() async throws {
        let store = MemoryStore()
        let transport = ScriptedTransport(hang: true)
        let (scheduler, stop) = await start(store, transport, ["slow": destination("slow", maxInFlight: 2)], drainTimeout: .milliseconds(100))
        let stored = (0..<3).map { events.candidate("s\($0)", to: ["slow"]) }
        _ = try await store.store(stored)
        let started = await eventually(timeout: .seconds(30)) { transport.sent.count == 2 }
        #expect(started)
        #expect(await scheduler.status(of: "slow")?.inFlight == 2)
        try await stop()
        let lane = try #require(await store.statuses()["slow"])
        #expect(lane.inFlight == 0 && lane.pending == 3, "both cut attempts are pending again")
        #expect(try await store.detail(id: stored[0].event.id)?.attempts.isEmpty == true, "a cut attempt is not recorded")
        #expect(await store.claim(now: at(10)).claims.map(\.attempts) == [0, 0], "handed out again as never attempted")
    }
}
