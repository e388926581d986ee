import Logging
import RelayCore
import Synchronization

/// Turns stored deliveries into HTTP attempts and keeps each one trying until the destination
/// accepts it, refuses it for good, or its retry policy runs out.
///
/// A thin executor: the store hands out due deliveries (`DeliveryStore.claim`, which applies
/// each lane's `max_in_flight`, breaker and 410 pause), `AttemptResolution.resolve` decides
/// what an answer means, and the store applies and records it. Attempts run as child tasks of
/// `run()`; replays run in lanes of their own (`ReplayLane.swift`).
public actor DeliveryScheduler: DeliveryEngine {
    public struct Configuration: Sendable {
        /// Consecutive failures that open a destination's circuit breaker.
        public var breakerThreshold: Int
        /// With the breaker open, the wait before the next probe: this after the failure that
        /// opened it, doubling per failed probe up to `breakerMaxCooldownMillis`.
        public var breakerCooldownMillis: Int64 = 1_000
        public var breakerMaxCooldownMillis: Int64 = 60_000
        /// How long shutdown waits for attempts in flight before cancelling them.
        public var drainTimeout: Duration
        /// Pending deliveries kept in memory per destination (a store that keeps them in memory).
        public var windowPerDestination: Int
        /// A checkpoint is written after this many new journal records…
        public var checkpointEveryRecords: Int
        /// …or after this long with any new record, and at shutdown.
        public var checkpointInterval: Duration
        /// How often retention looks for journal segments to delete.
        public var retentionInterval: Duration = .seconds(60)

        /// The breaker every lane runs.
        public var breaker: CircuitBreaker.Configuration {
            CircuitBreaker.Configuration(threshold: breakerThreshold, cooldownMillis: breakerCooldownMillis, maxCooldownMillis: breakerMaxCooldownMillis)
        }

        public init(
            breakerThreshold: Int = 5, drainTimeout: Duration = .seconds(10), windowPerDestination: Int = 10_000,
            checkpointEveryRecords: Int = 200_000, checkpointInterval: Duration = .seconds(600)
        ) {
            self.breakerThreshold = breakerThreshold
            self.drainTimeout = drainTimeout
            self.windowPerDestination = max(2, windowPerDestination)
            self.checkpointEveryRecords = max(1, checkpointEveryRecords)
            self.checkpointInterval = checkpointInterval
        }
    }

    public typealias LaneStatus = DestinationStatus

    let store: any DeliveryStore
    private let transport: any HTTPTransport
    /// Fetches `enrich` data at send time; nil: enrichment is unavailable (a failed attempt).
    private let enricher: (any DeliveryEnricher)?
    /// Wall time: receive times, due times, records.
    let clock: any RelayClock
    /// What the scheduler's timers sleep on (a test moves it by hand).
    let timer: any Clock<Duration>
    let random: @Sendable (Int64) -> Int64
    let logger: Logger
    private let configuration: Configuration
    let observer: (any DeliveryObserver)?
    /// The configured destinations and their body templates.
    var destinations: [String: DestinationConfig]
    var templates: [String: BodyTemplate] = [:]
    /// Replays by id: running ones and the last finished ones (their progress stays readable).
    var replays: [String: ReplayRun] = [:]
    var replayOrder: [String] = []
    /// What the store has not been told about replays yet.
    var replayNotes: [ReplayNote] = []
    /// When to look next for replays of stopped instances.
    var nextAdoption = Timestamp(milliseconds: Int64.min)
    /// Attempts running (live and replay).
    var running = 0
    private let signal = WakeSignal()
    /// Results of batch-started attempts (`startAttempts`), waiting for the dispatch loop.
    private let arrived = ArrivedResults()
    /// Batch-started attempts still running, by number: shutdown cuts them short.
    private var batchedInFlight: [UInt64: TransferCancel] = [:]
    private var nextBatchedAttempt: UInt64 = 0
    /// What running replays still send, for the store's retention.
    let replaysNeed = ReplayFloor()
    private var stopping = false

    public init(
        store: any DeliveryStore, transport: any HTTPTransport, destinations: [String: DestinationConfig],
        configuration: Configuration = Configuration(), clock: any RelayClock = SystemClock(), timer: some Clock<Duration> = ContinuousClock(),
        random: @escaping @Sendable (Int64) -> Int64 = { Int64.random(in: 0...max(0, $0)) }, observer: (any DeliveryObserver)? = nil,
        enricher: (any DeliveryEnricher)? = nil, logger: Logger
    ) {
        self.store = store
        self.transport = transport
        self.enricher = enricher
        self.configuration = configuration
        self.clock = clock
        self.timer = timer
        self.random = random
        self.observer = observer
        self.logger = logger
        self.destinations = destinations
        self.templates = Self.templates(destinations)
    }

    private static func templates(_ destinations: [String: DestinationConfig]) -> [String: BodyTemplate] {
        destinations.compactMapValues { $0.bodyTemplate.flatMap { try? BodyTemplate($0) } }
    }

    /// Applies a reloaded config: new destinations get lanes, changed ones their new settings,
    /// and lanes paused by a 410 resume (an operator's pause holds). Deliveries to a destination that was removed wait until it returns.
    public func updateDestinations(_ destinations: [String: DestinationConfig]) async {
        self.destinations = destinations
        templates = Self.templates(destinations)
        await store.configure(destinations)
        wake()
    }

    public func setOperatorPause(_ destination: String, paused: Bool) async throws {
        try await store.setOperatorPause(destination, paused: paused)
        wake()
    }

    public func releaseHeldKey(_ destination: String, event: EventReference, eventID: String) async throws -> Bool {
        let released = try await store.releaseHeldKey(destination, event: event, eventID: eventID, now: clock.now())
        if released {
            logger.info("held ordering key released by an operator", metadata: ["destination": "\(destination)", "event_id": "\(eventID)"])
            wake()
        }
        return released
    }

    public func laneStatuses() async -> [String: LaneStatus] {
        await store.statuses()
    }

    public func status(of destination: String) async -> LaneStatus? {
        await store.statuses()[destination]
    }

    public func holdRetention() async {
        await store.holdRetention()
    }

    public func releaseRetention() async {
        await store.releaseRetention()
    }

    /// Follows the store and delivers until `stop()`.
    public func run() async throws {
        let store = self.store
        let (signal, replaysNeed) = (self.signal, self.replaysNeed)
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await store.run(newWork: { signal.wake() }, replaysNeed: replaysNeed) }
                await self.dispatchLoop()
                await store.close()
                await group.waitForAll()
            }
        } onCancel: {
            Task { await self.stop() }
        }
    }

    func isStopping() -> Bool { stopping }

    /// Stops taking new work, waits (bounded) for attempts in flight, then returns from `run`.
    public func stop() {
        stopping = true
        wake()
    }

    // MARK: - Sending

    /// Starts due attempts until stopped, then drains them. Attempts whose events the store
    /// reads as a batch start as one (`startAttempts`); the rest (enrichment, a store that reads
    /// events one at a time) run as child tasks.
    private func dispatchLoop() async {
        await withDiscardingTaskGroup { group in
            while !stopping {
                await applyArrived()
                let now = clock.now()
                let batch = await store.claim(now: now)
                var next = batch.nextDue
                var attempts: [LiveAttempt] = []
                for claim in batch.claims {
                    guard let destination = destinations[claim.destination] else {
                        await store.release(claim)  // removed by a reload just now
                        continue
                    }
                    running += 1
                    attempts.append(LiveAttempt(claim: claim, destination: destination, template: templates[claim.destination]))
                }
                for attempt in await startAttempts(attempts) {
                    group.addTask { await self.attempt(attempt.claim, destination: attempt.destination, template: attempt.template) }
                }
                await adoptReplays(now: now)
                let (replayAttempts, replayDue) = dispatchReplays(now: now)
                for start in replayAttempts {
                    running += 1
                    group.addTask { await self.replayAttempt(start) }
                }
                await writeReplayNotes()
                if let replayDue { next = min(next ?? replayDue, replayDue) }
                await sleep(until: next)
            }
            await drain()
            group.cancelAll()
        }
        timerTask?.cancel()
    }

    /// A claimed live delivery about to be attempted.
    private struct LiveAttempt {
        var claim: DeliveryClaim
        var destination: DestinationConfig
        var template: BodyTemplate?
    }

    /// Starts attempts from this actor, their events read as one batch and each request handed
    /// to the transport with a completion: no task, no continuation and no hop back here per
    /// attempt. Their results come back together (`applyArrived`). Returns the attempts left
    /// for a task each: those that enrich (a call of their own first), or all of them when the
    /// store reads events one at a time.
    private func startAttempts(_ attempts: [LiveAttempt]) async -> [LiveAttempt] {
        var inTasks: [LiveAttempt] = [], batched: [LiveAttempt] = []
        for attempt in attempts {
            if attempt.destination.enrich != nil && attempt.template != nil { inTasks.append(attempt) } else { batched.append(attempt) }
        }
        guard !batched.isEmpty else { return inTasks }
        guard let events = await store.events(batched.map(\.claim.event)), events.count == batched.count else { return attempts }
        let now = clock.now()
        let (arrived, signal) = (self.arrived, self.signal)
        for (attempt, event) in zip(batched, events) {
            let number = nextBatchedAttempt
            nextBatchedAttempt += 1
            let (claim, policy) = (attempt.claim, attempt.destination.retry)
            let completion: @Sendable (Result<TransportResponse, TransportFailure>) -> Void = { result in
                arrived.append(ArrivedResults.Result(number: number, claim: claim, policy: policy, result: result))
                signal.wake()
            }
            switch event {
            case .success(let stored):
                let request = Self.outbound(stored, attempt: claim.attempts + 1, destination: attempt.destination, template: attempt.template, replay: false, now: now, extra: [:])
                batchedInFlight[number] = transport.start(request, completion: completion)
            case .failure(let error):
                completion(.failure(TransportFailure(kind: .other, message: "cannot read the event from the store: \(error)")))
            }
        }
        return inTasks
    }

    /// The batch-started attempts that finished: resolved, then handed to the store together.
    private func applyArrived() async {
        let finished = arrived.takeAll()
        guard !finished.isEmpty else { return }
        let now = clock.now()
        var completed: [CompletedAttempt] = []
        completed.reserveCapacity(finished.count)
        for item in finished {
            batchedInFlight[item.number] = nil
            if case .failure(let failure) = item.result, failure.kind == .cancelled {
                await store.release(item.claim)  // shutdown: the next start retries it
                continue
            }
            let resolution = resolve(item.claim, policy: item.policy, result: item.result, now: now)
            completed.append(CompletedAttempt(item.claim, resolution, maxBackoffMillis: item.policy.maxBackoffMillis))
        }
        await store.completeAll(completed, now: now)
        running -= finished.count
    }

    /// One attempt of a live delivery in a task of its own: send, resolve, hand the result to the store.
    private nonisolated func attempt(_ claim: DeliveryClaim, destination: DestinationConfig, template: BodyTemplate?) async {
        let result = await send(claim.event, attempt: claim.attempts + 1, destination: destination, template: template, replay: false)
        await finish(claim, policy: destination.retry, result: result)
    }

    /// Reads the event from the store and sends it.
    nonisolated func send(_ event: EventReference, attempt: Int, destination: DestinationConfig, template: BodyTemplate?, replay: Bool) async -> Result<TransportResponse, TransportFailure> {
        let stored: Event
        do {
            stored = try await store.event(event)
        } catch {
            return .failure(TransportFailure(kind: .other, message: "cannot read the event from the store: \(error)"))
        }
        var extra: [String: JSONValue] = [:]
        if let enrichment = destination.enrich, template != nil {
            guard let enricher else { return .failure(TransportFailure(kind: .other, message: "enrich \(enrichment.rawValue): not available in this relay")) }
            switch await enricher.values(for: stored, enrichment) {
            case .success(let values): extra = values
            case .failure(let failure): return .failure(failure)
            }
        }
        return await transport.send(Self.outbound(stored, attempt: attempt, destination: destination, template: template, replay: replay, now: clock.now(), extra: extra))
    }

    /// The request an attempt sends.
    private static func outbound(
        _ event: Event, attempt: Int, destination: DestinationConfig, template: BodyTemplate?, replay: Bool, now: Timestamp, extra: [String: JSONValue]
    ) -> OutboundRequest {
        let request = DeliveryRequest(event: event, destination: destination, template: template, attempt: attempt, replay: replay, now: now, extra: extra)
        return OutboundRequest(
            url: request.url, headers: request.headers, body: request.body,
            timeoutMillis: destination.timeoutMillis, connectTimeoutMillis: destination.connectTimeoutMillis
        )
    }

    /// Resolves an attempt and hands the result to the store; only then is the attempt over
    /// (shutdown waits for it, so its outcome is recorded before the store closes).
    private func finish(_ claim: DeliveryClaim, policy: RetryPolicy, result: Result<TransportResponse, TransportFailure>) async {
        defer {
            running -= 1
            wake()
        }
        if case .failure(let failure) = result, failure.kind == .cancelled {
            await store.release(claim)  // shutdown: the next start retries it
            return
        }
        let now = clock.now()
        let resolution = resolve(claim, policy: policy, result: result, now: now)
        await store.complete(claim, resolution, now: now, maxBackoffMillis: policy.maxBackoffMillis)
    }

    /// What an attempt's result means, logged and counted.
    private func resolve(_ claim: DeliveryClaim, policy: RetryPolicy, result: Result<TransportResponse, TransportFailure>, now: Timestamp) -> AttemptResolution {
        let resolution = AttemptResolution.resolve(
            Self.facts(of: result), eventSequence: claim.event.sequence, eventID: claim.eventID, destination: claim.destination,
            attempt: claim.attempts + 1, since: claim.receivedAt, now: now, policy: policy, random: random
        )
        Self.log(resolution.record, logger: logger)
        observer?.attempted(destination: claim.destination, outcome: resolution.record.outcome, duration: .milliseconds(resolution.record.durationMillis), replay: false)
        return resolution
    }

    /// Waits (at most the drain timeout, in real time) for the attempts in flight, then cuts
    /// the batch-started ones still running short and waits (at most 5 s more) for them to end:
    /// their claims go back to the store. (Attempts in tasks are cut by cancelling the tasks.)
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.drainTimeout
        while running > 0 && ContinuousClock.now < deadline {
            await applyArrived()
            if running == 0 { break }
            await pause(.milliseconds(50))
        }
        for cancel in batchedInFlight.values { cancel() }
        let cutoff = ContinuousClock.now + .seconds(5)
        while !batchedInFlight.isEmpty && ContinuousClock.now < cutoff {
            await pause(.milliseconds(10))
            await applyArrived()
        }
    }

    /// Shutdown may come as a cancellation: its waits are bounded and must not spin, so each
    /// sleeps in a task of its own, which the cancellation does not reach.
    private func pause(_ duration: Duration) async {
        await Task { try? await Task.sleep(for: duration) }.value
    }

    // MARK: - Waking

    func wake() {
        signal.wake()
    }

    /// Sleeps until `deadline` (relay-clock time) or a `wake()`. Without a deadline it waits for
    /// a wake alone. One timer is kept for the earliest deadline and reused: a timer per sleep
    /// would pile up thousands of cancelled-but-registered timers when every commit wakes the loop.
    private func sleep(until deadline: Timestamp?) async {
        if Task.isCancelled { stopping = true }
        if let deadline {
            let millis = deadline.milliseconds - clock.now().milliseconds
            if millis <= 0 { return }
            // A timer set for an earlier deadline is kept; one whose deadline has already passed
            // by the clock (the clock jumped ahead of its sleep) is replaced.
            if timerDeadline.map({ deadline < $0 || $0 <= clock.now() }) ?? true {
                timerDeadline = deadline
                timerTask?.cancel()
                let timer = self.timer
                timerTask = Task {
                    try? await timer.sleep(for: .milliseconds(min(millis, 60_000)))
                    self.timerFired(deadline)
                }
            }
        }
        await signal.wait()
    }

    private var timerDeadline: Timestamp?
    private var timerTask: Task<Void, Never>?

    private func timerFired(_ deadline: Timestamp) {
        if timerDeadline == deadline {
            timerDeadline = nil
            timerTask = nil
        }
        wake()
    }
}

/// Where the transport's thread leaves the results of batch-started attempts for the dispatch
/// loop, which takes them all at once.
final class ArrivedResults: Sendable {
    struct Result: Sendable {
        var number: UInt64
        var claim: DeliveryClaim
        var policy: RetryPolicy
        var result: Swift.Result<TransportResponse, TransportFailure>
    }

    private let results = Mutex<[Result]>([])

    func append(_ result: Result) {
        results.withLock { $0.append(result) }
    }

    func takeAll() -> [Result] {
        results.withLock { results in
            defer { results = [] }
            return results
        }
    }
}
