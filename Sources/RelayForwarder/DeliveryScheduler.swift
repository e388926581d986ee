import CRelayMemory
import Foundation
import Logging
import RelayCore
import RelayJournal
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
        /// Pending deliveries kept in memory per destination. Beyond it, deliveries stay in the
        /// journal and are read back as the window drains, so a destination that is down for
        /// days holds a bounded amount of memory.
        public var windowPerDestination: Int
        /// A checkpoint is written after this many new journal records…
        public var checkpointEveryRecords: Int
        /// …or after this long with any new record, and at shutdown.
        public var checkpointInterval: Duration
        /// How often retention looks for journal segments to delete.
        public var retentionInterval: Duration = .seconds(60)

        /// The breaker every lane runs.
        var breaker: CircuitBreaker.Configuration {
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

    let journal: Journal
    private let transport: any HTTPTransport
    let clock: any RelayClock
    let random: @Sendable (Int64) -> Int64
    let logger: Logger
    private let configuration: Configuration
    let ledger: DeliveryLedger
    let observer: (any DeliveryObserver)?
    /// Replays by id: running ones and the last finished ones (their progress stays readable).
    var replays: [String: ReplayRun] = [:]
    var replayOrder: [String] = []
    private let checkpoints: CheckpointStore?
    /// Where checkpoint saves and retention passes run.
    private let io: any BlockingIO
    /// Deletes expired journal segments; nil keeps everything.
    private let retention: JournalRetention?
    /// The first pass waits a little (at most 10 s): start-up has work enough.
    private lazy var retentionDueAt = ContinuousClock.now + min(configuration.retentionInterval, .seconds(10))
    private var pruning = false
    private let participants: [any CheckpointParticipant]
    /// The last record a saved checkpoint reflects, and when it was saved.
    private var checkpointedSequence: UInt64
    private var checkpointedAt = ContinuousClock.now
    private var checkpointing = false
    /// Outcome records the journal failed to write, ever (counted on the writer thread), and
    /// those waiting to be written again.
    private let outcomeFailures = FailureCount()
    private var retryingOutcomes = 0
    /// After a failed save, no new attempt before this.
    private var checkpointRetryAfter = ContinuousClock.now
    /// Journal records read at start-up (after the checkpoint, if one was used).
    public nonisolated let recoveredRecords: Int
    /// The sequence of the checkpoint start-up began from, nil if it read the whole journal.
    public nonisolated let recoveredFromCheckpoint: UInt64?
    var attempts: [UInt64: Task<Void, Never>] = [:]
    var nextAttemptID: UInt64 = 0
    private var wakeup: CheckedContinuation<Void, Never>?
    private var stopping = false

    /// Rebuilds every unfinished delivery from the journal (from the last checkpoint in
    /// `checkpoints` when there is a usable one), feeding each event read to `participants`
    /// (the de-duplication index), whose state checkpoints save too. Blocking: it reads files.
    public init(
        journal: Journal, transport: any HTTPTransport, destinations: [String: DestinationConfig],
        configuration: Configuration = Configuration(), checkpoints: CheckpointStore? = nil, participants: [any CheckpointParticipant] = [], io: any BlockingIO, retention: JournalRetention? = nil,
        clock: any RelayClock = SystemClock(),
        random: @escaping @Sendable (Int64) -> Int64 = { Int64.random(in: 0...max(0, $0)) }, observer: (any DeliveryObserver)? = nil, logger: Logger
    ) throws {
        self.observer = observer
        self.journal = journal
        self.transport = transport
        self.configuration = configuration
        self.clock = clock
        self.random = random
        self.logger = logger
        self.checkpoints = checkpoints
        self.io = io
        self.retention = retention
        self.participants = participants
        let (ledger, recovery) = try DeliveryLedger.recover(
            journal: journal, checkpoints: checkpoints, participants: participants,
            window: configuration.windowPerDestination, destinations: destinations, breaker: configuration.breaker, now: clock.now(), logger: logger
        )
        self.ledger = ledger
        self.recoveredRecords = recovery.records
        self.recoveredFromCheckpoint = recovery.checkpoint
        // Counted from the checkpoint on disk: a long replay at start-up is saved at once, so the
        // next start does not repeat it.
        self.checkpointedSequence = recovery.checkpoint ?? 0
        logger.info("deliveries recovered from the journal", metadata: [
            "checkpoint": "\(recovery.checkpoint.map(String.init) ?? "none")", "records": "\(recovery.records)", "pending": "\(ledger.pendingCount)",
        ])
        returnFreedMemory()
    }

    /// Applies a reloaded config: new destinations get lanes, changed ones their new settings,
    /// and paused lanes resume. Deliveries to a destination that was removed wait until it returns.
    public func updateDestinations(_ destinations: [String: DestinationConfig]) {
        for (name, lane) in ledger.lanes where destinations[name] == nil { lane.configure(nil) }
        for (name, destination) in destinations {
            let lane = ledger.lane(name)
            lane.configure(destination)
            lane.paused = false
        }
        wake()
    }

    /// Every destination's lane.
    public func laneStatuses() -> [String: LaneStatus] {
        var result: [String: LaneStatus] = [:]
        for name in ledger.lanes.keys { result[name] = status(of: name) }
        return result
    }

    public func status(of destination: String) -> LaneStatus? {
        guard let lane = ledger.lanes[destination] else { return nil }
        return LaneStatus(
            pending: lane.queue.count, inFlight: lane.inFlight, succeeded: lane.succeeded, dead: lane.dead,
            paused: lane.paused, breakerOpen: lane.breaker.isOpen,
            overflowing: lane.overflowFrom != nil
        )
    }

    /// Tails the journal and delivers until `stop()`.
    public func run() async throws {
        startCheckpointIfDue()
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

    /// Follows the journal as it grows, picking up new routing decisions.
    private func tail() async {
        let reader = ledger.lastPosition.map { journal.reader(at: $0, sequence: ledger.lastSequence + 1) } ?? journal.reader(from: ledger.lastSequence + 1)
        while !stopping {
            do {
                let before = ledger.created
                let now = clock.now()
                while let record = try reader.next() {
                    if let event = ledger.apply(record, recovering: false) {
                        for participant in participants { participant.observe(event, now: now) }
                    }
                }
                startCheckpointIfDue()
                // New deliveries, or a change an interval checkpoint must save that the dispatch
                // loop has no timer for yet (an event routed nowhere creates no delivery).
                if ledger.created != before || checkpointDue().map({ due in timerDeadline.map { due < $0 } ?? true }) == true { wake() }
            } catch {
                logger.error("cannot read the journal for deliveries; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
            // A closing journal answers every wait at once: stop instead of spinning.
            if journal.isClosing || Task.isCancelled { break }
            let seen = ledger.lastSequence
            let waiter = Task { await journal.waitForDurable(after: seen) }
            tailWaiter = waiter
            await waiter.value
            tailWaiter = nil
        }
    }

    private var tailWaiter: Task<Void, Never>?

    // MARK: - Sending

    private func dispatchLoop() async {
        while !stopping {
            // The interval checkpoint is due by time alone: an idle relay saves what changed too.
            startCheckpointIfDue()
            startRetentionIfDue()
            var next = dispatchDue()
            if let due = checkpointDue() { next = min(next ?? due, due) }
            if let due = retentionDue() { next = min(next ?? due, due) }
            await sleep(until: next)
        }
        tailWaiter?.cancel()
        await drain()
        timerTask?.cancel()
        await saveFinalCheckpoint()
    }

    /// Starts every due delivery that fits in its lane; returns the earliest future due time.
    private func dispatchDue() -> Timestamp? {
        let now = clock.now()
        var earliest: Timestamp?
        for (name, lane) in ledger.lanes {
            if lane.overflowFrom != nil && lane.queue.count <= configuration.windowPerDestination / 2 {
                ledger.refill(name, lane, journal: journal, now: now, logger: logger)
            }
            guard let destination = lane.destination, !lane.paused else { continue }
            // An open breaker probes once per cool-down, however many deliveries are due: a dead
            // destination that refuses at once must not be tried in a tight loop.
            let limit: Int
            switch lane.breaker.admission(now: now, maxInFlight: destination.maxInFlight) {
            case .wait(let notBefore):
                if lane.inFlight == 0 { earliest = min(earliest ?? notBefore, notBefore) }
                continue
            case .allow(let maxInFlight):
                limit = maxInFlight
            }
            while lane.inFlight < limit, let delivery = lane.queue.takeDue(now: now) {
                lane.inFlight += 1
                lane.breaker.started()
                start(delivery, destination: destination, template: lane.template, laneName: name)
            }
            if lane.inFlight < limit, let due = lane.queue.nextDue(), due > now {
                earliest = min(earliest ?? due, due)
            }
        }
        if let due = dispatchReplays(now: now) { earliest = min(earliest ?? due, due) }
        return earliest
    }

    private func start(_ delivery: PendingDelivery, destination: DestinationConfig, template: BodyTemplate?, laneName: String) {
        nextAttemptID += 1
        let id = nextAttemptID
        attempts[id] = Task {
            let result = await self.send(delivery, destination: destination, template: template, replay: false)
            self.finish(id: id, delivery: delivery, destination: laneName, policy: destination.retry, result: result)
        }
    }

    /// Reads the event back from the journal and sends it (off the actor).
    nonisolated func send(_ delivery: PendingDelivery, destination: DestinationConfig, template: BodyTemplate?, replay: Bool) async -> Result<TransportResponse, TransportFailure> {
        let event: Event
        do {
            event = try Event(decoding: try journal.read(at: delivery.eventPosition).payload)
        } catch {
            return .failure(TransportFailure(kind: .other, message: "cannot read the event from the journal: \(error)"))
        }
        let request = DeliveryRequest(event: event, destination: destination, template: template, attempt: delivery.attempts + 1, replay: replay, now: clock.now())
        return await transport.send(OutboundRequest(
            url: request.url, headers: request.headers, body: request.body,
            timeoutMillis: destination.timeoutMillis, connectTimeoutMillis: destination.connectTimeoutMillis
        ))
    }

    private func finish(id: UInt64, delivery: PendingDelivery, destination name: String, policy: RetryPolicy, result: Result<TransportResponse, TransportFailure>) {
        attempts[id] = nil
        let lane = ledger.lane(name)
        lane.inFlight -= 1
        defer { wake() }
        if case .failure(let failure) = result, failure.kind == .cancelled {
            lane.queue.release(delivery.eventSequence)  // shutdown: the next start retries it
            return
        }
        let now = clock.now()
        let resolution = AttemptResolution.resolve(
            Self.facts(of: result), eventSequence: delivery.eventSequence, eventID: delivery.eventID, destination: name,
            attempt: delivery.attempts + 1, since: delivery.receivedAt, now: now, policy: policy, random: random
        )
        let record = resolution.record
        switch resolution.next {
        case .succeeded:
            lane.queue.remove(delivery.eventSequence)
            lane.succeeded += 1
        case .retry(let due):
            lane.queue.reschedule(delivery.eventSequence, attempts: record.attempt, due: due)
        case .dead(let pausesDestination):
            lane.queue.remove(delivery.eventSequence)
            lane.dead += 1
            if pausesDestination { lane.paused = true }
        }
        lane.breaker.record(resolution.breaker, now: now, maxBackoffMillis: policy.maxBackoffMillis)
        Self.log(record, logger: logger)
        lane.queue.release(delivery.eventSequence)
        observer?.attempted(destination: name, outcome: record.outcome, duration: .milliseconds(record.durationMillis), replay: false)
        journalOutcome(record)
    }

    /// Journals an outcome without waiting: it is already applied in memory, and if a crash
    /// loses the record the attempt is only made again after the restart (at-least-once). One
    /// that cannot be written is written again a second later; a checkpoint is saved only when
    /// every outcome it reflects is in the journal (see `saveCheckpoint`).
    func journalOutcome(_ record: DeliveryRecord) {
        let failures = outcomeFailures
        journal.append([record.journalEntry]) { result in
            guard case .failure(let error) = result else { return }
            failures.value.add(1, ordering: .sequentiallyConsistent)  // before any later completion runs
            Task { await self.outcomeFailed(record, error) }
        }
    }

    private func outcomeFailed(_ record: DeliveryRecord, _ error: any Error) async {
        logger.error("cannot journal a delivery outcome; will try again", metadata: ["destination": "\(record.destination)", "event_id": "\(record.eventID)", "error": "\(error)"])
        if journal.isClosing { return }  // the delivery is attempted again after the restart
        retryingOutcomes += 1
        try? await Task.sleep(for: .seconds(1))
        retryingOutcomes -= 1
        journalOutcome(record)
    }

    /// What one checkpoint save needs, taken exactly once by the thread that saves it.
    final class CheckpointInputs: Sendable {
        typealias Value = (deliveries: [UInt8], snapshots: [(String, @Sendable () -> [UInt8])])
        private let value: Mutex<Value?>

        init(deliveries: [UInt8], snapshots: [(String, @Sendable () -> [UInt8])]) {
            value = Mutex((deliveries, snapshots))
        }

        func take() -> Value? {
            value.withLock { value in
                defer { value = nil }
                return value
            }
        }
    }

    final class FailureCount: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Status (0 without a response), error text, Retry-After and duration of an attempt.
    static func facts(of result: Result<TransportResponse, TransportFailure>) -> AttemptResolution.Facts {
        switch result {
        case .success(let response): AttemptResolution.Facts(status: response.status, retryAfter: response.retryAfter, durationMillis: response.durationMillis)
        case .failure(let failure): AttemptResolution.Facts(status: 0, error: failure.description, durationMillis: failure.durationMillis)
        }
    }

    /// One log line per failed attempt: a warning for a retry, an error for a dead delivery
    /// (replays add their id).
    static func log(_ record: DeliveryRecord, logger: Logger) {
        let prefix = record.replayID.isEmpty ? "" : "replay "
        var metadata: Logger.Metadata = [
            "destination": "\(record.destination)", "event_id": "\(record.eventID)", "attempt": "\(record.attempt)", "status": "\(record.status)",
        ]
        if !record.replayID.isEmpty { metadata["replay_id"] = "\(record.replayID)" }
        switch record.outcome {
        case .succeeded:
            return
        case .retry:
            metadata["error"] = "\(record.error)"
            metadata["next_attempt"] = "\(record.nextDue?.rfc3339 ?? "")"
            logger.warning("\(prefix)delivery failed; will retry", metadata: metadata)
        case .dead:
            metadata["reason"] = "\(record.error)"
            if record.replayID.isEmpty { metadata["paused_destination"] = "\(record.pausedDestination)" }
            logger.error("\(prefix)delivery dead", metadata: metadata)
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

    // MARK: - Checkpoints

    private func startCheckpointIfDue() {
        guard checkpoints != nil, !checkpointing, ledger.lastSequence > checkpointedSequence, ContinuousClock.now >= checkpointRetryAfter else { return }
        let records = ledger.lastSequence - checkpointedSequence
        guard records >= UInt64(configuration.checkpointEveryRecords) || ContinuousClock.now - checkpointedAt >= configuration.checkpointInterval else { return }
        checkpointing = true
        checkpointTask = Task { await self.saveCheckpoint() }
    }

    private var checkpointTask: Task<Void, Never>?

    // MARK: - Retention

    private func retentionDue() -> Timestamp? {
        guard retention != nil, !pruning else { return nil }
        return timestamp(at: retentionDueAt)
    }

    /// The relay-clock time at which the monotonic `instant` falls (now, if it is past), for
    /// `sleep(until:)`: timers are kept on the monotonic clock, sleeps on the relay's.
    private func timestamp(at instant: ContinuousClock.Instant) -> Timestamp {
        let wait = instant - ContinuousClock.now
        let millis = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
        return Timestamp(milliseconds: clock.now().milliseconds + max(0, millis) + 1)
    }

    /// The oldest event sequence still needed: by an unfinished delivery, a running replay, or
    /// because the tail has not read it yet (its deliveries are not known yet).
    private func retentionKeepFrom() -> UInt64 {
        [ledger.oldestNeededSequence(), oldestReplayedSequence(), ledger.lastSequence + 1].compactMap { $0 }.min() ?? ledger.lastSequence + 1
    }

    /// Replays being planned: while any is, retention deletes nothing (their events are not
    /// known until the plan is handed over).
    private var retentionHolds = 0

    /// Keeps retention from deleting anything until `releaseRetention()` (a replay is being planned).
    public func holdRetention() {
        retentionHolds += 1
    }

    public func releaseRetention() {
        retentionHolds = max(0, retentionHolds - 1)
    }

    private func startRetentionIfDue() {
        guard let retention, !pruning, ContinuousClock.now >= retentionDueAt else { return }
        pruning = true
        retentionDueAt = ContinuousClock.now + configuration.retentionInterval
        Task { await self.prune(retention) }
    }

    /// One retention pass: which segments may go given what deliveries and replays still need;
    /// before deleting, a barrier record makes every outcome queued so far durable (an outcome
    /// that finished a delivery must be on disk before the event it finished can go).
    private func prune(_ retention: JournalRetention) async {
        defer {
            pruning = false
            wake()  // so the dispatch loop sets the timer for the next pass
        }
        let now = clock.now()
        let failuresBefore = outcomeFailures.value.load(ordering: .sequentiallyConsistent)
        do {
            let needed = retentionKeepFrom()
            var plan = try await io.run { try retention.plan(now: now, keepFrom: needed) }
            if !plan.deletable.isEmpty {
                _ = try await journal.append([JournalEntry(type: .barrier, payload: [])])
                // An outcome that failed to be written: its delivery may be unfinished after a
                // restart, so delete nothing this time.
                if retryingOutcomes > 0 || outcomeFailures.value.load(ordering: .sequentiallyConsistent) != failuresBefore || retentionHolds > 0 {
                    plan.deletable = []
                }
                // What is needed may have grown while the plan was made (a replay started, the
                // tail fell behind): keep those segments too.
                let neededNow = retentionKeepFrom()
                let planned = plan
                plan = try await io.run { try retention.trimmed(planned, keepFrom: neededNow) }
            }
            let ready = plan
            _ = try await io.run { try retention.apply(ready) }
        } catch {
            logger.warning("journal retention pass failed; will try again", metadata: ["error": "\(error)"])
        }
    }

    /// When the interval checkpoint falls due, if anything is not yet saved (and no save runs).
    private func checkpointDue() -> Timestamp? {
        guard checkpoints != nil, !checkpointing, ledger.lastSequence > checkpointedSequence else { return nil }
        return timestamp(at: max(checkpointedAt + configuration.checkpointInterval, checkpointRetryAfter))
    }

    /// Waits for a checkpoint being saved, then saves one as of now if anything is newer (at shutdown).
    private func saveFinalCheckpoint() async {
        await checkpointTask?.value
        guard !checkpointing else { return }
        checkpointing = true
        await saveCheckpoint()
    }

    /// Saves the state as of the last record read, with every participant's, on a thread of its
    /// own (it writes and syncs a file); returns when it is saved or has failed. The caller has
    /// set `checkpointing`, so only one save runs at a time.
    private func saveCheckpoint() async {
        defer { checkpointing = false }
        guard let checkpoints, let position = ledger.lastPosition, ledger.lastSequence > checkpointedSequence, retryingOutcomes == 0 else { return }
        let sequence = ledger.lastSequence
        // Handed to the saving thread in a box it empties, so that every buffer of this
        // checkpoint is gone before it returns freed memory to the system.
        let inputs = CheckpointInputs(deliveries: ledger.encoded(), snapshots: participants.map { ($0.checkpointSection, $0.checkpointSnapshot()) })
        let started = ContinuousClock.now
        // The snapshot may reflect outcomes whose records are still queued. A marker record
        // appended now is durable only after them (the journal writes in order); if any of them
        // failed meanwhile, this checkpoint would claim what the journal lacks: skip it.
        let failuresBefore = outcomeFailures.value.load(ordering: .sequentiallyConsistent)
        let markerSequence: UInt64
        do {
            var marker = ByteWriter(capacity: 16)
            marker.write(UInt8(1))
            marker.write(sequence)
            markerSequence = try await journal.append(JournalEntry(type: .checkpoint, payload: marker.bytes))
        } catch {
            checkpointRetryAfter = ContinuousClock.now + .seconds(30)
            logger.warning("cannot save a checkpoint now; will try again", metadata: ["error": "\(error)"])
            return
        }
        guard outcomeFailures.value.load(ordering: .sequentiallyConsistent) == failuresBefore else {
            checkpointRetryAfter = ContinuousClock.now + .seconds(30)
            return
        }
        // On the blocking-I/O pool: it encodes tens of megabytes and writes and syncs a file.
        let result: Result<Int, any Error>
        do {
            result = .success(try await io.run {
                defer { returnFreedMemory() }
                guard let (deliveries, snapshots) = inputs.take() else { throw CheckpointError("checkpoint inputs already taken") }
                var sections = [DeliveryLedger.checkpointSection: deliveries]
                for (name, encode) in snapshots { sections[name] = encode() }
                return try checkpoints.save(Checkpoint(sequence: sequence, position: position, sections: sections))
            })
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let bytes):
            // The marker changes no state: an idle relay does not save again because of it.
            checkpointedSequence = max(sequence, markerSequence)
            checkpointedAt = ContinuousClock.now
            logger.debug("checkpoint saved", metadata: ["sequence": "\(sequence)", "bytes": "\(bytes)", "duration": "\(ContinuousClock.now - started)"])
        case .failure(let error):
            // Start-up then reads more of the journal; nothing is lost. Not again at once: a full
            // disk would otherwise cost a snapshot of everything on every commit.
            checkpointRetryAfter = ContinuousClock.now + .seconds(30)
            logger.warning("cannot save a checkpoint; will try again", metadata: ["path": "\(checkpoints.path)", "error": "\(error)"])
        }
    }

    // MARK: - Waking

    func wake() {
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
            // A timer set for an earlier deadline is kept; one whose deadline has already passed
            // by the clock (the clock jumped ahead of its real-time sleep) is replaced.
            if timerDeadline.map({ deadline < $0 || $0 <= clock.now() }) ?? true {
                timerDeadline = deadline
                timerTask?.cancel()
                timerTask = Task {
                    try? await Task.sleep(for: .milliseconds(min(millis, 60_000)))
                    self.timerFired(deadline)
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

/// Hands memory freed after a burst of allocation (start-up's replay, a checkpoint's tens of
/// megabytes of buffers) back to the system. glibc keeps freed heap memory for reuse otherwise,
/// and the relay's resident size would stay at its peak.
func returnFreedMemory() {
    _ = relay_malloc_trim()
}
