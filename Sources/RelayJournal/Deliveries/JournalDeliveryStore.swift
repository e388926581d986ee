import CRelayMemory
import Logging
import RelayCore
import Synchronization

/// The journal as the delivery store. The journal is the queue: this store tails it (durable
/// records only), so a routing decision is picked up exactly once and in order; at start it
/// reads the journal back (from the last checkpoint when there is a usable one), applying
/// recorded attempt outcomes, so every unfinished delivery resumes at its due time. Every
/// attempt's outcome is journaled. Event bodies are read back from the journal when sent.
///
/// Pending deliveries are kept in memory up to a window per destination; beyond it they stay in
/// the journal and are read back as the window drains. Checkpoints (with the de-duplication
/// index's state) and retention run here too.
public actor JournalDeliveryStore: DeliveryStore {
    public struct Configuration: Sendable {
        /// Pending deliveries kept in memory per destination.
        public var window: Int
        public var breaker: CircuitBreaker.Configuration
        /// A checkpoint is written after this many new journal records…
        public var checkpointEveryRecords: Int
        /// …or after this long with any new record, and at shutdown.
        public var checkpointInterval: Duration
        /// How often retention looks for journal segments to delete.
        public var retentionInterval: Duration

        public init(
            window: Int = 10_000, breaker: CircuitBreaker.Configuration = .init(), checkpointEveryRecords: Int = 200_000,
            checkpointInterval: Duration = .seconds(600), retentionInterval: Duration = .seconds(60)
        ) {
            self.window = max(2, window)
            self.breaker = breaker
            self.checkpointEveryRecords = max(1, checkpointEveryRecords)
            self.checkpointInterval = checkpointInterval
            self.retentionInterval = retentionInterval
        }
    }

    let journal: Journal
    private let configuration: Configuration
    let ledger: DeliveryLedger
    private let logger: Logger
    private let checkpoints: CheckpointStore?
    /// Where an operator's pauses are saved; nil keeps them in memory only.
    private let pauses: OperatorPauses?
    /// The destinations an operator paused, as last saved, and the change being saved.
    private var savedPauses: Set<String>
    private var pauseSave: Task<Void, any Error>?
    private let participants: [any CheckpointParticipant]
    /// Where checkpoint saves and retention passes run.
    private let io: any BlockingIO
    /// Deletes expired journal segments; nil keeps everything.
    private let retention: JournalRetention?
    private let clock: any RelayClock
    /// Journal records read at start-up (after the checkpoint, if one was used).
    public nonisolated let recoveredRecords: Int
    /// The sequence of the checkpoint start-up began from, nil if it read the whole journal.
    public nonisolated let recoveredFromCheckpoint: UInt64?

    /// The last record a saved checkpoint reflects, and when it was saved.
    private var checkpointedSequence: UInt64
    private var checkpointedAt = ContinuousClock.now
    private var checkpointing = false
    private var checkpointTask: Task<Void, Never>?
    /// After a failed save, no new attempt before this.
    private var checkpointRetryAfter = ContinuousClock.now
    /// Outcome records the journal failed to write, ever (counted on the writer thread), and
    /// those waiting to be written again.
    private let outcomeFailures = FailureCount()
    private var retryingOutcomes = 0
    /// The first retention pass waits a little (at most 10 s): start-up has work enough.
    private var retentionDueAt: ContinuousClock.Instant
    private var pruning = false
    /// Replays being planned: while any is, retention deletes nothing.
    private var retentionHolds = 0
    /// The oldest event sequence running replays still send.
    private var replaysNeed = ReplayFloor()
    private var closing = false
    private var tailWaiter: Task<Void, Never>?
    private var housekeeping: Task<Void, Never>?

    /// Rebuilds every unfinished delivery from the journal (from the last checkpoint in
    /// `checkpoints` when there is a usable one), feeding each event read to `participants`
    /// (the de-duplication index), whose state checkpoints save too. Blocking: it reads files.
    public init(
        journal: Journal, destinations: [String: DestinationConfig], configuration: Configuration = Configuration(),
        checkpoints: CheckpointStore? = nil, participants: [any CheckpointParticipant] = [], io: any BlockingIO,
        retention: JournalRetention? = nil, pauses: OperatorPauses? = nil, clock: any RelayClock = SystemClock(), logger: Logger
    ) throws {
        self.journal = journal
        self.configuration = configuration
        self.checkpoints = checkpoints
        self.participants = participants
        self.io = io
        self.retention = retention
        self.clock = clock
        self.logger = logger
        let (ledger, recovery) = try DeliveryLedger.recover(
            journal: journal, checkpoints: checkpoints, participants: participants,
            window: configuration.window, destinations: destinations, breaker: configuration.breaker, now: clock.now(), logger: logger
        )
        self.ledger = ledger
        self.pauses = pauses
        savedPauses = try pauses?.load() ?? []
        for name in savedPauses { ledger.lane(name).state.operatorPaused = true }
        self.recoveredRecords = recovery.records
        self.recoveredFromCheckpoint = recovery.checkpoint
        // Counted from the checkpoint on disk: a long replay at start-up is saved at once, so the
        // next start does not repeat it.
        self.checkpointedSequence = recovery.checkpoint ?? 0
        self.retentionDueAt = ContinuousClock.now + min(configuration.retentionInterval, .seconds(10))
        logger.info("deliveries recovered from the journal", metadata: [
            "checkpoint": "\(recovery.checkpoint.map(String.init) ?? "none")", "records": "\(recovery.records)", "pending": "\(ledger.pendingCount)",
        ])
        returnFreedMemory()
    }

    // MARK: - Following the journal

    public func run(newWork: @escaping @Sendable () -> Void, replaysNeed: ReplayFloor) async {
        self.replaysNeed = replaysNeed
        housekeeping = Task { await self.keepHouse() }
        await tail(newWork: newWork)
    }

    public func close() async {
        closing = true
        tailWaiter?.cancel()
        housekeeping?.cancel()
        await housekeeping?.value
        await saveFinalCheckpoint()
    }

    /// Follows the journal as it grows, picking up new routing decisions. Records are read on
    /// the blocking-I/O pool, a batch at a time, and applied here.
    ///
    /// Fresh records come from the journal's memory of its last commits (no disk read, no hop to
    /// the pool); the disk is read only for what has dropped out of it: after a restart, or when
    /// the tail fell more than that memory behind.
    private func tail(newWork: @Sendable () -> Void) async {
        var reader: TailReader?
        while !closing {
            do {
                let before = ledger.created
                var caughtUp = false
                while !caughtUp && !closing {
                    let batch: [JournalRecord]
                    if let recent = journal.recentRecords(after: ledger.lastSequence, limit: 4_096) {
                        batch = recent
                        reader = nil  // the disk reader's place is behind now: a new one when needed
                    } else {
                        let disk = reader ?? TailReader(ledger.lastPosition.map { journal.reader(at: $0, sequence: ledger.lastSequence + 1) } ?? journal.reader(from: ledger.lastSequence + 1))
                        reader = disk
                        batch = try await io.run { try disk.next(upTo: 4_096) }
                    }
                    caughtUp = batch.count < 4_096
                    let now = clock.now()
                    for record in batch {
                        if let event = ledger.apply(record, recovering: false) {
                            for participant in participants { participant.observe(event, now: now) }
                        }
                    }
                }
                startCheckpointIfDue()
                if ledger.created != before { newWork() }
            } catch {
                logger.error("cannot read the journal for deliveries; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
            // A closing journal answers every wait at once: stop instead of spinning.
            if journal.isClosing || Task.isCancelled || closing { break }
            let seen = ledger.lastSequence
            let waiter = Task { await journal.waitForDurable(after: seen) }
            tailWaiter = waiter
            await waiter.value
            tailWaiter = nil
        }
    }

    /// The tail's reader, handed to a pool thread for each batch. Only the tail uses it, one
    /// batch at a time, so it is never used by two threads at once.
    final class TailReader: @unchecked Sendable {
        private let reader: JournalReader

        init(_ reader: JournalReader) {
            self.reader = reader
        }

        func next(upTo limit: Int) throws -> [JournalRecord] {
            var records: [JournalRecord] = []
            while records.count < limit, let record = try reader.next() { records.append(record) }
            return records
        }
    }

    /// Starts checkpoints and retention passes when due (by time; by record count the tail
    /// starts them), until closed.
    private func keepHouse() async {
        while !closing && !Task.isCancelled {
            startCheckpointIfDue()
            startRetentionIfDue()
            var next = ContinuousClock.now + .seconds(1)
            if let due = checkpointDue() { next = min(next, due) }
            if retention != nil && !pruning { next = min(next, retentionDueAt) }
            do { try await Task.sleep(until: max(next, ContinuousClock.now + .milliseconds(5)), clock: .continuous) } catch { return }
        }
    }

    // MARK: - Deliveries

    public func configure(_ destinations: [String: DestinationConfig]) {
        for (name, lane) in ledger.lanes where destinations[name] == nil { lane.state.destination = nil }
        for (name, destination) in destinations {
            let lane = ledger.lane(name)
            lane.state.destination = destination
            lane.state.paused = false
        }
    }

    public func setOperatorPause(_ destination: String, paused: Bool) async throws {
        // One change at a time, each from the set the one before saved: the file and the
        // lanes always agree, and a change that could not be saved changes nothing.
        let (previous, io, pauses) = (pauseSave, io, pauses)
        let save = Task { () async throws -> Void in
            _ = await previous?.result
            var names = await self.savedPauses
            if paused { names.insert(destination) } else { names.remove(destination) }
            let saving = names
            if let pauses { try await io.run { try pauses.save(saving) } }
            await self.applyPauses(saving)
        }
        pauseSave = save
        try await save.value
    }

    private func applyPauses(_ names: Set<String>) {
        savedPauses = names
        for (name, lane) in ledger.lanes { lane.state.operatorPaused = names.contains(name) }
        for name in names { ledger.lane(name).state.operatorPaused = true }
    }

    public func takeReplayToken(_ destination: String, now: Timestamp) -> Timestamp? {
        ledger.lanes[destination]?.state.takeReplayToken(now: now)
    }

    public func claim(now: Timestamp) -> ClaimBatch {
        var claims: [DeliveryClaim] = []
        var earliest: Timestamp?
        for (name, lane) in ledger.lanes {
            if lane.overflowFrom != nil && lane.state.queue.count <= configuration.window / 2 {
                ledger.refill(name, lane, journal: journal, now: now, logger: logger)
            }
            let (taken, next) = lane.state.claim(now: now)
            claims += taken.map { DeliveryClaim($0, destination: name) }
            if let next { earliest = min(earliest ?? next, next) }
        }
        return ClaimBatch(claims: claims, nextDue: earliest)
    }

    public func complete(_ claim: DeliveryClaim, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) {
        completeAll([CompletedAttempt(claim, resolution, maxBackoffMillis: maxBackoffMillis)], now: now)
    }

    /// Applies every resolution, then journals their outcomes as one append.
    public func completeAll(_ attempts: [CompletedAttempt], now: Timestamp) {
        for attempt in attempts {
            ledger.lane(attempt.claim.destination).state.complete(attempt.claim.event.sequence, attempt.resolution, now: now, maxBackoffMillis: attempt.maxBackoffMillis)
        }
        journalOutcomes(attempts.map(\.resolution.record))
    }

    public func release(_ claim: DeliveryClaim) {
        ledger.lane(claim.destination).state.release(claim.event.sequence)
    }

    public func recordReplayAttempt(_ record: DeliveryRecord, position: Int, state: ReplayItemState) -> Bool {
        journalOutcomes([record])
        // A retry of a dead delivery that held its key succeeded: the key moves on (start-up
        // does the same when it reads the record back).
        if record.outcome == .succeeded { ledger.releaseHold(record.destination, ofEvent: record.eventSequence) }
        return true
    }

    /// Journaled (durably) before the key moves on, so the release holds across restarts.
    public func releaseHeldKey(_ destination: String, event: EventReference, eventID: String, now: Timestamp) async throws -> Bool {
        guard ledger.holdsKey(destination, event: event.sequence) else { return false }
        let release = KeyRelease(eventSequence: event.sequence, eventID: eventID, destination: destination, time: now)
        _ = try await journal.append(release.journalEntry)
        return ledger.releaseHold(destination, ofEvent: event.sequence)
    }

    // One process: a replay lives in the scheduler that runs it and is not resumed after a
    // restart (its journaled attempts show how far it got).
    public func saveReplay(_ replay: StoredReplay) {}

    public func skipReplayItem(replayID: String, position: Int) {}

    public func finishReplay(id: String, at time: Timestamp) {}

    public func adoptReplays() -> [StoredReplay] { [] }

    public func replayStatus(id: String) -> ReplayStatus? { nil }

    /// From the journal's memory of its last commits while the event is among them (a fresh
    /// event is not read back from disk to be sent); else read on the blocking-I/O pool.
    public nonisolated func event(_ reference: EventReference) async throws -> Event {
        let journal = self.journal
        if let record = journal.recentRecord(at: JournalPosition(reference.locator)) { return try Event(decoding: record.payload) }
        return try await io.run { try Event(decoding: try journal.read(at: JournalPosition(reference.locator)).payload) }
    }

    /// As `event`, for a batch: what has dropped out of the journal's memory is read in one
    /// go on the blocking-I/O pool.
    public nonisolated func events(_ references: [EventReference]) async -> [Result<Event, any Error>]? {
        let journal = self.journal
        let recent = references.map { journal.recentRecord(at: JournalPosition($0.locator)) }
        let missing = zip(references, recent).compactMap { reference, record in record == nil ? JournalPosition(reference.locator) : nil }
        var read: [Result<Event, any Error>] = []
        if !missing.isEmpty {
            do {
                read = try await io.run { missing.map { position in Result { try Event(decoding: try journal.read(at: position).payload) } } }
            } catch {
                read = missing.map { _ in .failure(error) }
            }
        }
        var fromDisk = read.makeIterator()
        var events: [Result<Event, any Error>] = []
        events.reserveCapacity(references.count)
        for record in recent {
            if let record {
                events.append(Result { try Event(decoding: record.payload) })
            } else if let event = fromDisk.next() {
                events.append(event)
            }
        }
        return events
    }

    public func statuses() -> [String: DestinationStatus] {
        ledger.lanes.mapValues(\.status)
    }

    /// Journals outcomes without waiting, as one append (one write for the writer): they are
    /// already applied in memory, and if a crash loses a record the attempt is only made again
    /// after the restart (at-least-once). Outcomes that cannot be written are written again
    /// together a second later; a checkpoint is saved only when every outcome it reflects is in
    /// the journal (see `saveCheckpoint`).
    private func journalOutcomes(_ records: [DeliveryRecord]) {
        guard !records.isEmpty else { return }
        let failures = outcomeFailures
        journal.append(records.map(\.journalEntry)) { result in
            guard case .failure(let error) = result else { return }
            failures.value.add(records.count, ordering: .sequentiallyConsistent)  // before any later completion runs
            Task { await self.outcomesFailed(records, error) }
        }
    }

    private func outcomesFailed(_ records: [DeliveryRecord], _ error: any Error) async {
        for record in records {
            logger.error("cannot journal a delivery outcome; will try again", metadata: ["destination": "\(record.destination)", "event_id": "\(record.eventID)", "error": "\(error)"])
        }
        if journal.isClosing { return }  // the deliveries are attempted again after the restart
        retryingOutcomes += 1
        try? await Task.sleep(for: .seconds(1))
        retryingOutcomes -= 1
        journalOutcomes(records)
    }

    final class FailureCount: Sendable {
        let value = Atomic<Int>(0)
    }

    // MARK: - Retention

    public func holdRetention() {
        retentionHolds += 1
    }

    public func releaseRetention() {
        retentionHolds = max(0, retentionHolds - 1)
    }

    /// The oldest event sequence still needed: by an unfinished delivery, a running replay, or
    /// because the tail has not read it yet (its deliveries are not known yet).
    private func retentionKeepFrom() -> UInt64 {
        [ledger.oldestNeededSequence(), replaysNeed.sequence, ledger.lastSequence + 1].compactMap { $0 }.min() ?? ledger.lastSequence + 1
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
        defer { pruning = false }
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

    // MARK: - Checkpoints

    private func startCheckpointIfDue() {
        guard checkpoints != nil, !checkpointing, !closing, ledger.lastSequence > checkpointedSequence, ContinuousClock.now >= checkpointRetryAfter else { return }
        let records = ledger.lastSequence - checkpointedSequence
        guard records >= UInt64(configuration.checkpointEveryRecords) || ContinuousClock.now - checkpointedAt >= configuration.checkpointInterval else { return }
        checkpointing = true
        checkpointTask = Task { await self.saveCheckpoint() }
    }

    /// When the interval checkpoint falls due, if anything is not yet saved (and no save runs).
    private func checkpointDue() -> ContinuousClock.Instant? {
        guard checkpoints != nil, !checkpointing, ledger.lastSequence > checkpointedSequence else { return nil }
        return max(checkpointedAt + configuration.checkpointInterval, checkpointRetryAfter)
    }

    /// Waits for a checkpoint being saved, then saves one as of now if anything is newer (at shutdown).
    private func saveFinalCheckpoint() async {
        await checkpointTask?.value
        guard !checkpointing else { return }
        checkpointing = true
        await saveCheckpoint()
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

    /// Saves the state as of the last record read, with every participant's, on the blocking-I/O
    /// pool (it writes and syncs a file); returns when it is saved or has failed. The caller has
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
}

/// Hands memory freed after a burst of allocation (start-up's replay, a checkpoint's tens of
/// megabytes of buffers) back to the system. glibc keeps freed heap memory for reuse otherwise,
/// and the relay's resident size would stay at its peak.
func returnFreedMemory() {
    _ = relay_malloc_trim()
}
