/// One new event for an `IngestStore`, with the routing decision made for it.
public struct IngestCandidate: Sendable {
    /// The event, with a fresh relay id. Its `source` and `providerEventID` are the
    /// de-duplication key; an empty `providerEventID` is never a duplicate.
    public var event: Event
    public var decision: RoutingDecision

    public init(event: Event, decision: RoutingDecision) {
        self.event = event
        self.decision = decision
    }
}

/// What became of one candidate.
public enum IngestOutcome: Sendable, Equatable {
    /// Stored now, under the candidate's own id.
    case stored(id: String)
    /// The store already had this provider event (or an earlier candidate of the same batch
    /// was it): stored before under `id`.
    case duplicate(id: String)

    /// The relay id the event is known by.
    public var id: String {
        switch self {
        case .stored(let id), .duplicate(let id): id
        }
    }
}

/// The ingest port: where a request's events become durable. The journal (group commit and
/// fdatasync) and a database (one transaction per batch) are two implementations; one
/// conformance suite holds every implementation to this contract:
///
/// - Each candidate whose (source, provider event id) the store does not have yet is stored
///   with its routing decision, and its deliveries become due; the others are duplicates of
///   the event stored first (also within one batch, and when copies arrive concurrently:
///   exactly one is stored).
/// - `completion` runs exactly once, with one outcome per candidate in order, and only after
///   every stored one is durable. On a failure nothing of the batch was stored, so nothing may
///   be acknowledged: the error says whether to retry (`overloaded`, `unavailable`: 503) or not.
///
/// The completion is a callback, not an `async` result, so a server can answer on the
/// connection's own thread when the commit completes, without a hop through the concurrency
/// pool; `store(_:)` wraps it for async callers.
public protocol IngestStore: Sendable {
    func store(_ candidates: [IngestCandidate], completion: @escaping @Sendable (Result<[IngestOutcome], IngestError>) -> Void)
}

extension IngestStore {
    /// Stores `candidates`; returns once every stored one is durable.
    public func store(_ candidates: [IngestCandidate]) async throws(IngestError) -> [IngestOutcome] {
        let result: Result<[IngestOutcome], IngestError> = await withCheckedContinuation { continuation in
            store(candidates) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }
}
