import RelayCore
import Synchronization

/// A store that keeps everything in memory: the second implementation of the store ports (the
/// way Hummingbird pairs `PersistDriver` with `MemoryPersistDriver`), for tests and for the
/// conformance suite every store must pass. Nothing is durable, so nothing here may back a
/// relay that acknowledges webhooks.
public final class MemoryStore: IngestStore, EventStore, AttemptRecorder, DeliveryStore {
    struct Stored {
        var event: Event
        var decision: RoutingDecision
        var attempts: [DeliveryRecord] = []
        var states: [String: DeliveryState] = [:]
    }

    struct State {
        /// By sequence - 1.
        var events: [Stored] = []
        var byID: [String: Int] = [:]
        var byProviderKey: [String: String] = [:]
        /// Each destination's deliveries, by the rules every store shares.
        var lanes: [String: LaneState] = [:]
        var newWork: (@Sendable () -> Void)?
        var closed: CheckedContinuation<Void, Never>?
        var isClosed = false
    }

    private let state = Mutex(State())
    private let breaker: CircuitBreaker.Configuration

    public init(breaker: CircuitBreaker.Configuration = .init()) {
        self.breaker = breaker
    }

    private static func key(_ event: Event) -> String? {
        event.providerEventID.isEmpty ? nil : event.source + "\u{0}" + event.providerEventID
    }

    // MARK: - IngestStore

    public func store(_ candidates: [IngestCandidate], completion: @escaping @Sendable (Result<[IngestOutcome], IngestError>) -> Void) {
        let outcomes = state.withLock { state in
            candidates.map { candidate -> IngestOutcome in
                if let key = Self.key(candidate.event) {
                    if let earlier = state.byProviderKey[key] { return .duplicate(id: earlier) }
                    state.byProviderKey[key] = candidate.event.id
                }
                var stored = Stored(event: candidate.event, decision: candidate.decision)
                let reference = EventReference(sequence: UInt64(state.events.count + 1))
                for destination in candidate.decision.destinations {
                    stored.states[destination] = .pending
                    let pending = PendingDelivery(
                        event: reference, eventID: candidate.event.id, receivedAt: candidate.event.receivedAt, attempts: 0, due: candidate.event.receivedAt,
                        orderingKey: candidate.decision.orderingKeys[destination]
                    )
                    state.lanes[destination, default: LaneState(breaker: CircuitBreaker(configuration: breaker))].queue.insert(pending)
                }
                state.events.append(stored)
                state.byID[candidate.event.id] = state.events.count - 1
                return .stored(id: candidate.event.id)
            }
        }
        state.withLock { $0.newWork }?()
        completion(.success(outcomes))
    }

    // MARK: - AttemptRecorder

    public func record(_ records: [DeliveryRecord]) async throws {
        state.withLock { state in
            for record in records {
                guard let index = state.byID[record.eventID] else { continue }
                state.events[index].attempts.append(record)
                if let next = deliveryState(after: record) { state.events[index].states[record.destination] = next }
            }
        }
    }

    // MARK: - EventStore

    private func reference(_ index: Int) -> EventReference { EventReference(sequence: UInt64(index + 1)) }

    private func match(_ index: Int, _ stored: Stored, prepared: PreparedRouting) -> StoredEventMatch {
        StoredEventMatch(
            reference: reference(index), id: stored.event.id, receivedAt: stored.event.receivedAt, decision: stored.decision,
            deliveries: stored.decision.destinations.map { ($0, stored.states[$0] ?? .pending) }, prepared: prepared
        )
    }

    private static func cursor(_ text: String?) throws(FilterError) -> Int {
        guard let text else { return Int.max }
        return Int(clamping: try EventFilter.parseCursor(text))
    }

    /// Matching events with a sequence below `before`, newest first.
    private func newestFirst(_ filter: EventFilter, before: Int) -> [(Int, Stored)] {
        let events = state.withLock { $0.events }
        var result: [(Int, Stored)] = []
        for index in stride(from: min(events.count, before - 1) - 1, through: 0, by: -1) {
            let stored = events[index]
            guard filter.matches(stored.event) else { continue }
            if let wanted = filter.deliveryState, match(index, stored, prepared: .none).deliveryState != wanted { continue }
            result.append((index, stored))
        }
        return result
    }

    public func page(filter: EventFilter, cursor: String?, limit: Int) async throws -> EventPage {
        let found = newestFirst(filter, before: try Self.cursor(cursor))
        let page = found.prefix(max(1, limit)).map { index, stored in
            let match = match(index, stored, prepared: .none)
            return EventSummary(reference: match.reference, event: stored.event, decision: stored.decision, deliveries: match.deliveries)
        }
        return EventPage(events: page, nextCursor: found.count > page.count ? page.last.map { String($0.sequence) } : nil)
    }

    public func detail(id: String) async throws -> EventDetail? {
        let found = state.withLock { state in state.byID[id].map { ($0, state.events[$0]) } }
        guard let (index, stored) = found else { return nil }
        let match = match(index, stored, prepared: .none)
        return EventDetail(
            summary: EventSummary(reference: match.reference, event: stored.event, decision: stored.decision, deliveries: match.deliveries),
            attempts: stored.attempts
        )
    }

    public func deliveries(filter: EventFilter, state wanted: DeliveryState?, destinations: Set<String>, cursor: String?, limit: Int) async throws -> DeliveryPage {
        var selection = filter
        selection.deliveryState = nil
        var builder = DeliveryPageBuilder(state: wanted, destinations: destinations, limit: limit)
        for (index, stored) in newestFirst(selection, before: try Self.cursor(cursor)) {
            let match = match(index, stored, prepared: .none)
            guard builder.add(match.reference, id: match.id, receivedAt: match.receivedAt, deliveries: match.deliveries) else { break }
        }
        return builder.page
    }

    public func matches(filter: EventFilter, through mark: UInt64, prepare: @escaping @Sendable (Event) -> PreparedRouting) -> AsyncThrowingStream<StoredEventMatch, any Error> {
        let found = newestFirst(filter, before: Int(clamping: mark) &+ 1)
        return AsyncThrowingStream { continuation in
            for (index, stored) in found { continuation.yield(match(index, stored, prepared: prepare(stored.event))) }
            continuation.finish()
        }
    }

    public func event(_ reference: EventReference) async throws -> Event {
        let index = Int(clamping: reference.sequence) - 1
        guard let event = state.withLock({ state in state.events.indices.contains(index) ? state.events[index].event : nil }) else {
            throw FilterError("event", "no event at sequence \(reference.sequence)")
        }
        return event
    }

    /// Batch reads, so the engine's batched attempts are what the scheduler's tests exercise.
    public func events(_ references: [EventReference]) async -> [Result<Event, any Error>]? {
        var events: [Result<Event, any Error>] = []
        for reference in references {
            do { events.append(.success(try await event(reference))) } catch { events.append(.failure(error)) }
        }
        return events
    }

    public func mark() async throws -> UInt64 { UInt64(state.withLock { $0.events.count }) }

    // MARK: - DeliveryStore

    public func run(newWork: @escaping @Sendable () -> Void, replaysNeed: ReplayFloor) async {
        await withCheckedContinuation { continuation in
            let closed = state.withLock { state in
                state.newWork = newWork
                if !state.isClosed { state.closed = continuation }
                return state.isClosed
            }
            if closed { continuation.resume() }
        }
    }

    public func close() async {
        let waiter = state.withLock { state in
            state.isClosed = true
            state.newWork = nil
            defer { state.closed = nil }
            return state.closed
        }
        waiter?.resume()
    }

    public func configure(_ destinations: [String: DestinationConfig]) async {
        state.withLock { state in
            for name in state.lanes.keys where destinations[name] == nil { state.lanes[name]?.destination = nil }
            for (name, destination) in destinations {
                state.lanes[name, default: LaneState(breaker: CircuitBreaker(configuration: breaker))].destination = destination
                state.lanes[name]?.paused = false
            }
        }
    }

    /// Held in memory only: this store ends with its process.
    public func setOperatorPause(_ destination: String, paused: Bool) async throws {
        state.withLock { state in
            state.lanes[destination, default: LaneState(breaker: CircuitBreaker(configuration: breaker))].operatorPaused = paused
        }
    }

    public func takeReplayToken(_ destination: String, now: Timestamp) async -> Timestamp? {
        state.withLock { state in state.lanes[destination]?.takeReplayToken(now: now) }
    }

    public func claim(now: Timestamp) async -> ClaimBatch {
        state.withLock { state in
            var batch = ClaimBatch(claims: [], nextDue: nil)
            for name in state.lanes.keys.sorted() {
                guard let (taken, next) = state.lanes[name]?.claim(now: now) else { continue }
                batch.claims += taken.map { DeliveryClaim($0, destination: name) }
                if let next { batch.nextDue = min(batch.nextDue ?? next, next) }
            }
            return batch
        }
    }

    public func complete(_ claim: DeliveryClaim, _ resolution: AttemptResolution, now: Timestamp, maxBackoffMillis: Int64) async {
        state.withLock { state in
            state.lanes[claim.destination]?.complete(claim.event.sequence, resolution, now: now, maxBackoffMillis: maxBackoffMillis)
        }
        try? await record([resolution.record])
    }

    public func release(_ claim: DeliveryClaim) async {
        state.withLock { state in state.lanes[claim.destination]?.release(claim.event.sequence) }
    }

    public func recordReplayAttempt(_ record: DeliveryRecord, position: Int, state: ReplayItemState) async -> Bool {
        try? await self.record([record])
        if record.outcome == .succeeded {
            self.state.withLock { state in _ = state.lanes[record.destination]?.queue.releaseHold(ofEvent: record.eventSequence) }
        }
        return true
    }

    public func releaseHeldKey(_ destination: String, event: EventReference, eventID: String, now: Timestamp) async throws -> Bool {
        state.withLock { state in state.lanes[destination]?.queue.releaseHold(ofEvent: event.sequence) != nil }
    }

    // One process: a replay lives in the engine that runs it, and ends with it.
    public func saveReplay(_ replay: StoredReplay) async throws {}

    public func skipReplayItem(replayID: String, position: Int) async {}

    public func finishReplay(id: String, at time: Timestamp) async {}

    public func adoptReplays() async -> [StoredReplay] { [] }

    public func replayStatus(id: String) async -> ReplayStatus? { nil }

    public func statuses() async -> [String: DestinationStatus] {
        state.withLock { state in state.lanes.mapValues { $0.status(overflowing: false) } }
    }

    /// Nothing is ever deleted from memory.
    public func holdRetention() async {}

    public func releaseRetention() async {}
}
