import Logging
import RelayCore
import Synchronization

/// Turns routing decisions into deliveries and keeps each one trying until the destination
/// accepts it, refuses it for good, or its retry policy runs out.
///
/// The journal is the queue: the scheduler tails it (durable records only), so a decision is
/// picked up exactly once and in order; at start it reads the journal back, applying recorded
/// attempt outcomes, so every unfinished delivery resumes at its due time. Every attempt's
/// outcome is journaled. Event bodies are read back from the journal when sent, never kept.
///
/// Each destination is its own lane with its own `max_in_flight`, so a slow or dead destination
/// holds only its own slots. After `breakerThreshold` consecutive failures a lane sends one
/// request at a time (a probe) until one succeeds. A 410 pauses the lane until a config reload.
public actor DeliveryScheduler {
    public struct Configuration: Sendable {
        /// Consecutive failures that open a destination's circuit breaker.
        public var breakerThreshold: Int
        /// How long shutdown waits for attempts in flight before cancelling them.
        public var drainTimeout: Duration
        /// Pending deliveries kept in memory per destination. Beyond it, deliveries stay in the
        /// journal and are read back as the window drains, so a destination that is down for
        /// days holds a bounded amount of memory.
        public var windowPerDestination: Int

        public init(breakerThreshold: Int = 5, drainTimeout: Duration = .seconds(10), windowPerDestination: Int = 10_000) {
            self.breakerThreshold = breakerThreshold
            self.drainTimeout = drainTimeout
            self.windowPerDestination = max(2, windowPerDestination)
        }
    }

    /// What one destination's lane looks like, for the admin API and tests.
    public struct LaneStatus: Sendable, Equatable {
        public var pending: Int
        public var inFlight: Int
        public var succeeded: Int
        public var dead: Int
        public var paused: Bool
        public var breakerOpen: Bool
        /// Whether more pending deliveries wait in the journal beyond the in-memory window.
        public var overflowing: Bool
    }

    final class Lane {
        var destination: DestinationConfig?
        var template: BodyTemplate?
        var queue = DeliveryQueue()
        var inFlight = 0
        var consecutiveFailures = 0
        var paused = false
        var succeeded = 0
        var dead = 0
        /// The sequence of the first routing decision for this destination not loaded into
        /// memory (the window was full); nil when everything is loaded.
        var overflowFrom: UInt64?
        /// Where the event of that first decision starts (the record just before it), so the
        /// read-back starts there instead of scanning its segment from the beginning.
        var overflowEventPosition: JournalPosition?
        /// Deliveries beyond the window whose final outcome was read during recovery.
        var finishedBeyondWindow: Set<UInt64> = []
    }

    private let journal: Journal
    private let transport: any HTTPTransport
    private let clock: any RelayClock
    private let random: @Sendable (Int64) -> Int64
    private let logger: Logger
    private let configuration: Configuration
    private var lanes: [String: Lane] = [:]
    private var lastSequence: UInt64 = 0
    private var lastEvent: EventReference?
    private var attempts: [UInt64: Task<Void, Never>] = [:]
    private var nextAttemptID: UInt64 = 0
    private var wakeup: CheckedContinuation<Void, Never>?
    private var stopping = false

    public init(
        journal: Journal, transport: any HTTPTransport, destinations: [String: DestinationConfig],
        configuration: Configuration = Configuration(), clock: any RelayClock = SystemClock(),
        random: @escaping @Sendable (Int64) -> Int64 = { Int64.random(in: 0...max(0, $0)) }, logger: Logger
    ) {
        self.journal = journal
        self.transport = transport
        self.configuration = configuration
        self.clock = clock
        self.random = random
        self.logger = logger
        var lanes: [String: Lane] = [:]
        for (name, destination) in destinations {
            let lane = Lane()
            lane.destination = destination
            lane.template = destination.bodyTemplate.flatMap { try? BodyTemplate($0) }
            lanes[name] = lane
        }
        self.lanes = lanes
    }

    /// Applies a reloaded config: new destinations get lanes, changed ones their new settings,
    /// and paused lanes resume. Deliveries to a destination that was removed wait until it returns.
    public func updateDestinations(_ destinations: [String: DestinationConfig]) {
        for (name, lane) in lanes where destinations[name] == nil { lane.destination = nil }
        for (name, destination) in destinations {
            let lane = lane(name)
            lane.destination = destination
            lane.template = destination.bodyTemplate.flatMap { try? BodyTemplate($0) }
            lane.paused = false
        }
        wake()
    }

    public func status(of destination: String) -> LaneStatus? {
        guard let lane = lanes[destination] else { return nil }
        return LaneStatus(
            pending: lane.queue.count, inFlight: lane.inFlight, succeeded: lane.succeeded, dead: lane.dead,
            paused: lane.paused, breakerOpen: lane.consecutiveFailures >= configuration.breakerThreshold,
            overflowing: lane.overflowFrom != nil
        )
    }

    /// Rebuilds state from the journal, then tails it and delivers until `stop()`.
    public func run() async throws {
        try recover()
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.tail() }
                group.addTask { await self.dispatchLoop() }
                await group.waitForAll()
            }
        } onCancel: {
            Task { await self.stop() }
        }
    }

    /// Stops taking new work, waits (bounded) for attempts in flight, then returns from `run`.
    public func stop() {
        stopping = true
        tailWaiter?.cancel()
        wake()
    }

    // MARK: - Reading the journal

    private func lane(_ name: String) -> Lane {
        if let lane = lanes[name] { return lane }
        let lane = Lane()
        lanes[name] = lane
        return lane
    }

    /// Reads every durable record, applying attempt outcomes too (they are not in memory yet).
    private func recover() throws {
        let reader = journal.reader()
        var count = 0
        while let record = try reader.next() {
            apply(record, recovering: true)
            count += 1
        }
        let pending = lanes.values.reduce(0) { $0 + $1.queue.count }
        logger.info("deliveries recovered from the journal", metadata: ["records": "\(count)", "pending": "\(pending)"])
    }

    /// What a delivery needs of its event, kept while reading the journal.
    struct EventReference {
        let sequence: UInt64
        let position: JournalPosition
        let id: String
        let receivedAt: Timestamp

        init?(_ record: JournalRecord) {
            guard let event = try? Event(decoding: record.payload) else { return nil }
            (sequence, position, id, receivedAt) = (record.sequence, record.position, event.id, event.receivedAt)
        }

        func pending(due: Timestamp) -> PendingDelivery {
            PendingDelivery(eventSequence: sequence, eventPosition: position, eventID: id, receivedAt: receivedAt, attempts: 0, due: due)
        }
    }

    /// The routing decision in `record`, if it belongs to `event`: the ingest pipeline writes each
    /// decision right after its event, in one commit.
    private static func decision(in record: JournalRecord, of event: EventReference?) -> (RoutingDecision, EventReference)? {
        guard let decision = try? RoutingDecision(decoding: record.payload), let event,
              event.sequence == record.sequence - 1, event.id == decision.eventID
        else { return nil }
        return (decision, event)
    }

    private func apply(_ record: JournalRecord, recovering: Bool) {
        lastSequence = record.sequence
        switch record.type {
        case .event:
            lastEvent = EventReference(record)
        case .routingDecision:
            guard let (decision, event) = Self.decision(in: record, of: lastEvent) else { return }
            pendingCount += decision.destinations.count
            for name in decision.destinations {
                let lane = lane(name)
                // A full window, or older deliveries still in the journal: leave this one there too
                // (deliveries load in journal order), to be read back as the window drains.
                if lane.overflowFrom != nil || lane.queue.count >= configuration.windowPerDestination {
                    if lane.overflowFrom == nil {
                        lane.overflowFrom = record.sequence
                        lane.overflowEventPosition = event.position
                    }
                    continue
                }
                lane.queue.insert(event.pending(due: event.receivedAt))
            }
        case .deliveryAttempt:
            // Live outcomes were applied when they happened; only recovery replays them.
            guard recovering, let outcome = try? DeliveryRecord(decoding: record.payload) else { return }
            let lane = lane(outcome.destination)
            if lane.queue.pending[outcome.eventSequence] == nil, let from = lane.overflowFrom, outcome.eventSequence + 1 >= from {
                // Beyond this run's window (the previous run's window held it): remember a final
                // outcome so the read-back skips it; a retry is read back with its attempts reset.
                if outcome.outcome != .retry { lane.finishedBeyondWindow.insert(outcome.eventSequence) }
                return
            }
            switch outcome.outcome {
            case .succeeded:
                lane.queue.remove(outcome.eventSequence)
                lane.succeeded += 1
            case .dead:
                lane.queue.remove(outcome.eventSequence)
                lane.dead += 1
                if outcome.pausedDestination { lane.paused = true }
            case .retry:
                lane.queue.reschedule(outcome.eventSequence, attempts: outcome.attempt, due: outcome.nextDue ?? outcome.time)
            }
        default:
            break
        }
    }

    /// Follows the journal as it grows, picking up new routing decisions.
    private func tail() async {
        let reader = journal.reader(from: lastSequence + 1)
        while !stopping {
            do {
                let before = pendingCount
                while let record = try reader.next() {
                    apply(record, recovering: false)
                }
                if pendingCount != before { wake() }
            } catch {
                logger.error("cannot read the journal for deliveries; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
            // A closing journal answers every wait at once: stop instead of spinning.
            if journal.isClosing || Task.isCancelled { break }
            let seen = lastSequence
            let waiter = Task { await journal.waitForDurable(after: seen) }
            tailWaiter = waiter
            await waiter.value
            tailWaiter = nil
        }
    }

    private var tailWaiter: Task<Void, Never>?

    /// Deliveries created from decisions so far (only to tell whether the tail added work).
    private var pendingCount = 0

    // MARK: - Sending

    private func dispatchLoop() async {
        while !stopping {
            let next = dispatchDue()
            await sleep(until: next)
        }
        tailWaiter?.cancel()
        await drain()
        timerTask?.cancel()
    }

    /// Reads deliveries for `lane` back from the journal, from where its window overflowed up to
    /// what the tail has seen, until the window is full again.
    private func refill(_ name: String, _ lane: Lane) {
        guard let from = lane.overflowFrom else { return }
        // The event record comes just before its decision.
        let reader = lane.overflowEventPosition.map { journal.reader(at: $0, sequence: from - 1) } ?? journal.reader(from: from - 1)
        var lastRead: EventReference?
        do {
            while let record = try reader.next(), record.sequence <= lastSequence {
                switch record.type {
                case .event:
                    lastRead = EventReference(record)
                case .routingDecision where record.sequence >= from:
                    guard let (decision, event) = Self.decision(in: record, of: lastRead), decision.destinations.contains(name) else { continue }
                    if lane.finishedBeyondWindow.remove(event.sequence) != nil { continue }
                    if lane.queue.count >= configuration.windowPerDestination {
                        lane.overflowFrom = record.sequence
                        lane.overflowEventPosition = event.position
                        return
                    }
                    lane.queue.insert(event.pending(due: clock.now()))
                default:
                    continue
                }
            }
        } catch {
            logger.error("cannot read deliveries back from the journal; will retry", metadata: ["destination": "\(name)", "error": "\(error)"])
            return
        }
        lane.overflowFrom = nil
        lane.overflowEventPosition = nil
        lane.finishedBeyondWindow = []
    }

    /// Starts every due delivery that fits in its lane; returns the earliest future due time.
    private func dispatchDue() -> Timestamp? {
        let now = clock.now()
        var earliest: Timestamp?
        for (name, lane) in lanes {
            if lane.overflowFrom != nil && lane.queue.count <= configuration.windowPerDestination / 2 {
                refill(name, lane)
            }
            guard let destination = lane.destination, !lane.paused else { continue }
            let limit = lane.consecutiveFailures >= configuration.breakerThreshold ? 1 : destination.maxInFlight
            while lane.inFlight < limit, let delivery = lane.queue.takeDue(now: now) {
                lane.inFlight += 1
                start(delivery, destination: destination, template: lane.template, laneName: name)
            }
            if lane.inFlight < limit, let due = lane.queue.nextDue(), due > now {
                earliest = min(earliest ?? due, due)
            }
        }
        return earliest
    }

    private func start(_ delivery: PendingDelivery, destination: DestinationConfig, template: BodyTemplate?, laneName: String) {
        nextAttemptID += 1
        let id = nextAttemptID
        attempts[id] = Task {
            let result = await self.send(delivery, destination: destination, template: template)
            await self.finish(id: id, delivery: delivery, destination: laneName, policy: destination.retry, result: result)
        }
    }

    /// Reads the event back from the journal and sends it (off the actor).
    private nonisolated func send(_ delivery: PendingDelivery, destination: DestinationConfig, template: BodyTemplate?) async -> Result<TransportResponse, TransportFailure> {
        let event: Event
        do {
            event = try Event(decoding: try journal.read(at: delivery.eventPosition).payload)
        } catch {
            return .failure(TransportFailure(kind: .other, message: "cannot read the event from the journal: \(error)"))
        }
        let request = DeliveryRequest(event: event, destination: destination, template: template, attempt: delivery.attempts + 1, replay: false, now: clock.now())
        return await transport.send(OutboundRequest(
            url: request.url, headers: request.headers, body: request.body,
            timeoutMillis: destination.timeoutMillis, connectTimeoutMillis: destination.connectTimeoutMillis
        ))
    }

    private func finish(id: UInt64, delivery: PendingDelivery, destination name: String, policy: RetryPolicy, result: Result<TransportResponse, TransportFailure>) async {
        attempts[id] = nil
        let lane = lane(name)
        lane.inFlight -= 1
        defer { wake() }
        if case .failure(let failure) = result, failure.kind == .cancelled {
            lane.queue.release(delivery.eventSequence)  // shutdown: the next start retries it
            return
        }
        let now = clock.now()
        let attempt = delivery.attempts + 1
        var status = 0
        var error = ""
        var retryAfter: String?
        var duration = 0
        switch result {
        case .success(let response):
            status = response.status
            retryAfter = response.retryAfter
            duration = response.durationMillis
        case .failure(let failure):
            error = failure.description
            duration = failure.durationMillis
        }
        let decision = DeliveryPolicy.decide(
            status: status == 0 ? nil : status, retryAfter: retryAfter, attempt: attempt,
            receivedAt: delivery.receivedAt, now: now, policy: policy, random: random
        )
        var record = DeliveryRecord(
            eventSequence: delivery.eventSequence, eventID: delivery.eventID, destination: name, attempt: attempt, time: now,
            outcome: .retry, status: status, error: error, durationMillis: duration, nextDue: nil
        )
        switch decision {
        case .succeeded:
            record.outcome = .succeeded
            lane.queue.remove(delivery.eventSequence)
            lane.succeeded += 1
            lane.consecutiveFailures = 0
        case .retry(let due):
            record.nextDue = due
            lane.queue.reschedule(delivery.eventSequence, attempts: attempt, due: due)
            lane.consecutiveFailures += 1
            logger.warning("delivery failed; will retry", metadata: [
                "destination": "\(name)", "event_id": "\(delivery.eventID)", "attempt": "\(attempt)",
                "status": "\(status)", "error": "\(error)", "next_attempt": "\(due.rfc3339)",
            ])
        case .dead(let reason):
            record.outcome = .dead
            record.error = error.isEmpty ? reason : "\(reason); \(error)"
            lane.queue.remove(delivery.eventSequence)
            lane.dead += 1
            if DeliveryPolicy.classify(status: status) == .permanent(pausesDestination: true) {
                record.pausedDestination = true
                lane.paused = true
            }
            if status != 0 && DeliveryPolicy.classify(status: status) != .retryable { lane.consecutiveFailures = 0 } else { lane.consecutiveFailures += 1 }
            logger.error("delivery dead", metadata: [
                "destination": "\(name)", "event_id": "\(delivery.eventID)", "attempt": "\(attempt)",
                "status": "\(status)", "reason": "\(record.error)", "paused_destination": "\(record.pausedDestination)",
            ])
        }
        lane.queue.release(delivery.eventSequence)
        do {
            _ = try await journal.append(record.journalEntry)
        } catch {
            // The outcome stays in memory; after a restart the delivery is retried (at-least-once).
            logger.error("cannot journal a delivery outcome", metadata: ["destination": "\(name)", "event_id": "\(delivery.eventID)", "error": "\(error)"])
        }
    }

    private func drain() async {
        let deadline = ContinuousClock.now + configuration.drainTimeout
        while !attempts.isEmpty && ContinuousClock.now < deadline {
            await sleep(until: Timestamp(milliseconds: clock.now().milliseconds + 50))
        }
        for task in attempts.values { task.cancel() }
        for task in attempts.values { await task.value }
    }

    // MARK: - Waking

    private func wake() {
        let continuation = wakeup
        wakeup = nil
        continuation?.resume()
    }

    /// Sleeps until `deadline` or a `wake()`. Without a deadline it waits for a wake alone. One
    /// timer is kept for the earliest deadline and reused: a timer per sleep would pile up
    /// thousands of cancelled-but-registered timers when every commit wakes the loop.
    private func sleep(until deadline: Timestamp?) async {
        if Task.isCancelled { stopping = true }
        if let deadline {
            let millis = deadline.milliseconds - clock.now().milliseconds
            if millis <= 0 { return }
            if timerDeadline == nil || deadline < timerDeadline! {
                timerDeadline = deadline
                timerTask?.cancel()
                timerTask = Task {
                    try? await Task.sleep(for: .milliseconds(min(millis, 60_000)))
                    await self.timerFired(deadline)
                }
            }
        }
        await withCheckedContinuation { continuation in
            if let previous = wakeup { previous.resume() }
            wakeup = continuation
        }
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
