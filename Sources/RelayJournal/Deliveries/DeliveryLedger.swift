import Logging
import RelayCore

/// Every destination's pending deliveries, as far as the journal has been read: the part of the
/// scheduler that is rebuilt from the journal (at start-up, from the last checkpoint) and saved
/// in checkpoints. Not thread-safe: the scheduler actor owns it once running.
final class DeliveryLedger {
    /// A final or retry outcome read during start-up for a delivery beyond the in-memory window
    /// (an earlier run's window held it), applied when the delivery is read back.
    enum Recorded: Equatable {
        case finished
        case retry(attempts: Int, due: Timestamp)
        /// Dead, holding its ordering key (`on_dead: hold`) since then.
        case held(since: Timestamp)
    }

    final class Lane {
        /// The queue, in-flight count, breaker, pause and totals (the rules every store shares).
        var state: LaneState
        /// The sequence of the first routing decision for this destination not loaded into
        /// memory (the window was full); nil when everything is loaded.
        var overflowFrom: UInt64?
        /// Where the event of that first decision starts (the record just before it), so the
        /// read-back starts there instead of scanning its segment from the beginning.
        var overflowEventPosition: JournalPosition?
        /// Outcomes of deliveries beyond the window, by event sequence.
        var beyondWindow: [UInt64: Recorded] = [:]

        init(breaker: CircuitBreaker) {
            state = LaneState(breaker: breaker)
        }

        /// The lane's status; keys held by dead deliveries beyond the window count as blocked
        /// (they are listed once the window reaches them and their keys are read back).
        var status: DestinationStatus {
            var status = state.status(overflowing: overflowFrom != nil)
            status.keysBlocked += beyondWindow.values.reduce(0) { count, recorded in
                if case .held = recorded { count + 1 } else { count }
            }
            return status
        }
    }

    /// What a delivery needs of its event, kept while reading the journal.
    struct ReadEvent {
        let sequence: UInt64
        let position: JournalPosition
        let id: String
        let receivedAt: Timestamp

        init(_ record: JournalRecord, _ event: EventHeader) {
            (sequence, position, id, receivedAt) = (record.sequence, record.position, event.id, event.receivedAt)
        }

        var reference: EventReference { EventReference(sequence: sequence, locator: position.locator) }

        func pending(due: Timestamp, attempts: Int = 0, orderingKey: String?) -> PendingDelivery {
            PendingDelivery(event: reference, eventID: id, receivedAt: receivedAt, attempts: attempts, due: due, orderingKey: orderingKey)
        }
    }

    let window: Int
    private(set) var lanes: [String: Lane] = [:]
    /// The last record applied, and where it starts.
    private(set) var lastSequence: UInt64 = 0
    private(set) var lastPosition: JournalPosition?
    private var lastEvent: ReadEvent?
    /// Deliveries created from decisions so far (only to tell whether reading added work).
    private(set) var created = 0

    /// The breaker settings every lane is made with.
    let breakerConfiguration: CircuitBreaker.Configuration

    init(window: Int, destinations: [String: DestinationConfig], breaker: CircuitBreaker.Configuration = .init()) {
        self.window = window
        self.breakerConfiguration = breaker
        for (name, destination) in destinations { lane(name).state.destination = destination }
    }

    func lane(_ name: String) -> Lane {
        if let lane = lanes[name] { return lane }
        let lane = Lane(breaker: CircuitBreaker(configuration: breakerConfiguration))
        lanes[name] = lane
        return lane
    }

    var pendingCount: Int { lanes.values.reduce(0) { $0 + $1.state.queue.count } }

    /// The oldest event sequence an unfinished delivery still needs (in memory, or beyond the
    /// window in the journal), nil if none: retention keeps every segment from there on.
    func oldestNeededSequence() -> UInt64? {
        var oldest: UInt64?
        for lane in lanes.values {
            // The overflow starts at a routing decision; its event is the record before it.
            if let from = lane.overflowFrom { oldest = min(oldest ?? from - 1, from - 1) }
            if let first = lane.state.queue.pending.keys.min() { oldest = min(oldest ?? first, first) }
            if let first = lane.beyondWindow.keys.min() { oldest = min(oldest ?? first, first) }
        }
        return oldest
    }

    // MARK: - Applying records

    /// The routing decision in `record`, if it belongs to `event`: the ingest pipeline writes each
    /// decision right after its event, in one commit.
    static func decision(in record: JournalRecord, of event: ReadEvent?) -> (RoutingDecision, ReadEvent)? {
        guard let decision = try? RoutingDecision(decoding: record.payload), let event,
              event.sequence == record.sequence - 1, event.id == decision.eventID
        else { return nil }
        return (decision, event)
    }

    /// Applies one record read in order. Attempt outcomes are applied only when `recovering`
    /// (live ones were applied when they happened); applying one twice changes nothing.
    /// Returns the event of an event record, for the checkpoint participants.
    @discardableResult
    func apply(_ record: JournalRecord, recovering: Bool) -> EventHeader? {
        lastSequence = record.sequence
        lastPosition = record.position
        switch record.type {
        case .event:
            guard let event = try? EventHeader(decoding: record.payload) else {
                lastEvent = nil
                return nil
            }
            lastEvent = ReadEvent(record, event)
            return event
        case .routingDecision:
            guard let (decision, event) = Self.decision(in: record, of: lastEvent) else { return nil }
            created += decision.destinations.count
            for name in decision.destinations {
                let lane = lane(name)
                // A full window, or older deliveries still in the journal: leave this one there too
                // (deliveries load in journal order), to be read back as the window drains.
                if lane.overflowFrom != nil || lane.state.queue.count >= window {
                    if lane.overflowFrom == nil {
                        lane.overflowFrom = record.sequence
                        lane.overflowEventPosition = event.position
                    }
                    continue
                }
                lane.state.queue.insert(event.pending(due: event.receivedAt, orderingKey: Self.orderingKey(decision, name, lane)))
            }
        case .deliveryAttempt:
            guard recovering, let outcome = try? DeliveryRecord(decoding: record.payload) else { return nil }
            if outcome.replayID.isEmpty {
                applyRecovered(outcome)
            } else if outcome.outcome == .succeeded {
                // Replays run beside the event's own deliveries and never change them, but a
                // retry that succeeded releases the key its dead delivery held.
                releaseHold(outcome.destination, ofEvent: outcome.eventSequence)
            }
        case .keyReleased:
            guard recovering, let release = try? KeyRelease(decoding: record.payload) else { return nil }
            releaseHold(release.destination, ofEvent: release.eventSequence)
        default:
            break
        }
        return nil
    }

    /// A delivery's ordering key: the one its decision recorded, while its destination still
    /// orders (a destination whose `ordering` was removed stops ordering what is pending).
    static func orderingKey(_ decision: RoutingDecision, _ name: String, _ lane: Lane) -> String? {
        guard let key = decision.orderingKeys[name], lane.state.destination?.ordering != nil || lane.state.destination == nil else { return nil }
        return key
    }

    /// Whether the dead delivery of event `sequence` holds its ordering key.
    func holdsKey(_ destination: String, event sequence: UInt64) -> Bool {
        guard let lane = lanes[destination] else { return false }
        if case .held? = lane.beyondWindow[sequence] { return true }
        return lane.state.queue.heldKey(ofEvent: sequence) != nil
    }

    /// Releases the ordering key the dead delivery of event `sequence` holds, in memory or
    /// beyond the window; returns whether it held one.
    @discardableResult
    func releaseHold(_ destination: String, ofEvent sequence: UInt64) -> Bool {
        let lane = lane(destination)
        if lane.state.queue.releaseHold(ofEvent: sequence) != nil { return true }
        guard case .held? = lane.beyondWindow[sequence] else { return false }
        lane.beyondWindow[sequence] = .finished
        return true
    }

    private func applyRecovered(_ outcome: DeliveryRecord) {
        let lane = lane(outcome.destination)
        let sequence = outcome.eventSequence
        if lane.state.applyRecovered(outcome) { return }
        // Beyond this run's window (an earlier run's window held it): remember the outcome
        // for the read-back. Otherwise the delivery already finished: nothing to do.
        guard let from = lane.overflowFrom, sequence + 1 >= from else { return }
        switch outcome.outcome {
        case .succeeded:
            lane.beyondWindow[sequence] = .finished
        case .dead:
            lane.beyondWindow[sequence] = lane.state.destination?.ordering?.onDead == .hold ? .held(since: outcome.time) : .finished
        case .retry:
            if case .finished? = lane.beyondWindow[sequence] { return }
            if case .held? = lane.beyondWindow[sequence] { return }
            if case .retry(let attempts, _)? = lane.beyondWindow[sequence], attempts >= outcome.attempt { return }
            lane.beyondWindow[sequence] = .retry(attempts: outcome.attempt, due: outcome.nextDue ?? outcome.time)
        }
    }

    /// Reads deliveries for `lane` back from the journal, from where its window overflowed up to
    /// the last record applied, until the window is full again.
    func refill(_ name: String, _ lane: Lane, journal: Journal, now: Timestamp, logger: Logger) {
        guard let from = lane.overflowFrom else { return }
        // The event record comes just before its decision.
        let reader = lane.overflowEventPosition.map { journal.reader(at: $0, sequence: from - 1) } ?? journal.reader(from: from - 1)
        var lastRead: ReadEvent?
        do {
            while let record = try reader.next(), record.sequence <= lastSequence {
                switch record.type {
                case .event:
                    lastRead = (try? EventHeader(decoding: record.payload)).map { ReadEvent(record, $0) }
                case .routingDecision where record.sequence >= from:
                    guard let (decision, event) = Self.decision(in: record, of: lastRead), decision.destinations.contains(name) else { continue }
                    if lane.state.queue.count >= window {
                        lane.overflowFrom = record.sequence
                        lane.overflowEventPosition = event.position
                        return
                    }
                    let key = Self.orderingKey(decision, name, lane)
                    switch lane.beyondWindow.removeValue(forKey: event.sequence) {
                    case .finished?: continue
                    case .held(let since)?:
                        if let key { lane.state.queue.restoreHold(HeldKey(key: key, eventID: event.id, event: event.reference, since: since)) }
                        continue
                    case .retry(let attempts, let due)?:
                        lane.state.queue.insert(event.pending(due: due, attempts: attempts, orderingKey: key))
                    case nil:
                        lane.state.queue.insert(event.pending(due: now, orderingKey: key))
                    }
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
        lane.beyondWindow = [:]
    }
}

// MARK: - Checkpoints

extension DeliveryLedger {
    static let checkpointSection = "deliveries"
    /// Version 2 adds ordering keys and held keys; a version 1 checkpoint is not used (start-up
    /// reads the whole journal, which has every key in its decisions).
    private static let encodingVersion: UInt8 = 2

    /// The state as a checkpoint section. Deliveries in flight are saved as pending: after a
    /// restart they are attempted again (at least once).
    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + pendingCount * 80)
        writer.write(Self.encodingVersion)
        writer.write(lastEvent != nil)
        if let event = lastEvent {
            writer.write(event.sequence)
            writer.write(event.position)
            writer.write(event.id)
            writer.write(event.receivedAt.milliseconds)
        }
        writer.write(UInt32(lanes.count))
        for (name, lane) in lanes.sorted(by: { $0.key < $1.key }) {
            writer.write(name)
            writer.write(lane.state.paused)
            writer.write(UInt64(lane.state.succeeded))
            writer.write(UInt64(lane.state.dead))
            writer.write(UInt32(clamping: lane.state.breaker.consecutiveFailures))
            writer.write(lane.overflowFrom ?? 0)
            writer.write(lane.overflowEventPosition ?? JournalPosition(segment: 0, offset: 0))
            writer.write(UInt32(lane.beyondWindow.count))
            for (sequence, recorded) in lane.beyondWindow {
                writer.write(sequence)
                switch recorded {
                case .finished:
                    writer.write(UInt8(0))
                case .retry(let attempts, let due):
                    writer.write(UInt8(1))
                    writer.write(UInt32(clamping: attempts))
                    writer.write(due.milliseconds)
                case .held(let since):
                    writer.write(UInt8(2))
                    writer.write(since.milliseconds)
                }
            }
            let held = lane.state.queue.heldKeys
            writer.write(UInt32(held.count))
            for hold in held {
                writer.write(hold.key)
                writer.write(hold.event.sequence)
                writer.write(JournalPosition(hold.event.locator))
                writer.write(hold.eventID)
                writer.write(hold.since.milliseconds)
            }
            writer.write(UInt32(lane.state.queue.count))
            for delivery in lane.state.queue.pending.values {
                writer.write(delivery.eventSequence)
                writer.write(JournalPosition(delivery.event.locator))
                writer.write(delivery.eventID)
                writer.write(delivery.receivedAt.milliseconds)
                writer.write(UInt32(clamping: delivery.attempts))
                writer.write(delivery.due.milliseconds)
                writer.write(delivery.orderingKey ?? "")
            }
        }
        return writer.bytes
    }

    /// Restores a section written by `encoded()` that reflects the journal up to `sequence`,
    /// whose record starts at `position`. Lanes keep the destinations they were configured with.
    func restore(_ bytes: ArraySlice<UInt8>, sequence: UInt64, position: JournalPosition) throws {
        var reader = ByteReader(bytes)
        let version: UInt8 = try reader.read()
        guard version == Self.encodingVersion else { throw CheckpointError("deliveries: unknown version \(version)") }
        var lastEvent: ReadEvent?
        if try reader.readBool() {
            lastEvent = ReadEvent(
                sequence: try reader.read(), position: try reader.readPosition(), id: try reader.readString(),
                receivedAt: Timestamp(milliseconds: try reader.read())
            )
        }
        var restored: [String: Lane] = [:]
        var created = 0
        for _ in 0..<Int(try reader.read(UInt32.self)) {
            let name = try reader.readString()
            let lane = Lane(breaker: CircuitBreaker(configuration: breakerConfiguration))
            lane.state.destination = lanes[name]?.state.destination
            lane.state.paused = try reader.readBool()
            lane.state.succeeded = Int(clamping: try reader.read(UInt64.self))
            lane.state.dead = Int(clamping: try reader.read(UInt64.self))
            lane.state.breaker = CircuitBreaker(configuration: breakerConfiguration, consecutiveFailures: Int(try reader.read(UInt32.self)))
            let overflowFrom: UInt64 = try reader.read()
            let overflowPosition = try reader.readPosition()
            lane.overflowFrom = overflowFrom == 0 ? nil : overflowFrom
            lane.overflowEventPosition = overflowFrom == 0 ? nil : overflowPosition
            for _ in 0..<Int(try reader.read(UInt32.self)) {
                let sequence: UInt64 = try reader.read()
                switch try reader.read(UInt8.self) {
                case 0: lane.beyondWindow[sequence] = .finished
                case 1: lane.beyondWindow[sequence] = .retry(attempts: Int(try reader.read(UInt32.self)), due: Timestamp(milliseconds: try reader.read()))
                case 2: lane.beyondWindow[sequence] = .held(since: Timestamp(milliseconds: try reader.read()))
                case let kind: throw CheckpointError("deliveries: unknown outcome kind \(kind)")
                }
            }
            for _ in 0..<Int(try reader.read(UInt32.self)) {
                let key = try reader.readString()
                let sequence: UInt64 = try reader.read()
                let position = try reader.readPosition()
                lane.state.queue.restoreHold(HeldKey(
                    key: key, eventID: try reader.readString(), event: EventReference(sequence: sequence, locator: position.locator),
                    since: Timestamp(milliseconds: try reader.read())
                ))
            }
            for _ in 0..<Int(try reader.read(UInt32.self)) {
                let sequence: UInt64 = try reader.read()
                var delivery = PendingDelivery(
                    event: EventReference(sequence: sequence, locator: try reader.readPosition().locator), eventID: try reader.readString(),
                    receivedAt: Timestamp(milliseconds: try reader.read()), attempts: Int(try reader.read(UInt32.self)),
                    due: Timestamp(milliseconds: try reader.read())
                )
                let key = try reader.readString()
                delivery.orderingKey = key.isEmpty ? nil : key
                lane.state.queue.insert(delivery)
            }
            created += lane.state.queue.count
            restored[name] = lane
        }
        guard reader.isAtEnd else { throw CheckpointError("deliveries: trailing bytes") }
        for (name, lane) in lanes where restored[name] == nil { restored[name] = lane }
        lanes = restored
        self.lastEvent = lastEvent
        self.created = created
        lastSequence = sequence
        lastPosition = position
    }
}

extension DeliveryLedger.ReadEvent {
    init(sequence: UInt64, position: JournalPosition, id: String, receivedAt: Timestamp) {
        (self.sequence, self.position, self.id, self.receivedAt) = (sequence, position, id, receivedAt)
    }
}

extension ByteWriter {
    mutating func write(_ position: JournalPosition) {
        write(position.segment)
        write(position.offset)
    }
}

extension ByteReader {
    mutating func readPosition() throws -> JournalPosition {
        JournalPosition(segment: try read(), offset: try read())
    }
}

// MARK: - Start-up

extension DeliveryLedger {
    /// How start-up went, for the log and tests.
    struct Recovery {
        var checkpoint: UInt64?
        var records = 0
    }

    /// Rebuilds the state from the last checkpoint (when there is a usable one) and the records
    /// after it, or else from the whole journal, feeding every event to `participants`.
    static func recover(
        journal: Journal, checkpoints: CheckpointStore?, participants: [any CheckpointParticipant],
        window: Int, destinations: [String: DestinationConfig], breaker: CircuitBreaker.Configuration = .init(), now: Timestamp, logger: Logger
    ) throws -> (DeliveryLedger, Recovery) {
        var state = DeliveryLedger(window: window, destinations: destinations, breaker: breaker)
        var recovery = Recovery()
        var reader: JournalReader?
        if let checkpoints {
            do {
                if let checkpoint = try checkpoints.load() {
                    reader = try resume(from: checkpoint, state: state, journal: journal, participants: participants, now: now)
                    recovery.checkpoint = checkpoint.sequence
                }
            } catch {
                logger.warning("checkpoint not used; rebuilding from the whole journal", metadata: ["path": "\(checkpoints.path)", "reason": "\(error)"])
                state = DeliveryLedger(window: window, destinations: destinations, breaker: breaker)
                reader = nil
            }
        }
        let records = reader ?? journal.reader()
        while let record = try records.next() {
            if let event = state.apply(record, recovering: true) {
                for participant in participants { participant.observe(event, now: now) }
            }
            recovery.records += 1
        }
        if recovery.records >= 10_000 {
            for participant in participants { participant.compact() }
        }
        return (state, recovery)
    }

    /// Restores `state` and `participants` from `checkpoint` if it matches the journal, and
    /// returns a reader positioned just after the checkpoint's last record.
    private static func resume(
        from checkpoint: Checkpoint, state: DeliveryLedger, journal: Journal, participants: [any CheckpointParticipant], now: Timestamp
    ) throws -> JournalReader {
        guard checkpoint.sequence <= journal.durable.lastSequence else {
            throw CheckpointError("it reflects sequence \(checkpoint.sequence) but the journal ends at \(journal.durable.lastSequence)")
        }
        let reader = journal.reader(at: checkpoint.position, sequence: checkpoint.sequence)
        guard let record = try reader.next(), record.sequence == checkpoint.sequence, record.position == checkpoint.position else {
            throw CheckpointError("its last record (sequence \(checkpoint.sequence) at \(checkpoint.position)) is not in the journal")
        }
        guard let deliveries = checkpoint.sections[checkpointSection] else { throw CheckpointError("no \(checkpointSection) section") }
        try state.restore(deliveries, sequence: checkpoint.sequence, position: checkpoint.position)
        for participant in participants {
            guard let section = checkpoint.sections[participant.checkpointSection] else {
                throw CheckpointError("no \(participant.checkpointSection) section")
            }
            try participant.restore(checkpoint: section, now: now)
        }
        return reader
    }
}
