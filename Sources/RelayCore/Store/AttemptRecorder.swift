/// Where delivery attempts are recorded: the delivery engine's write side of a store. Records
/// are applied in order; a replay's record (non-empty `replayID`) changes a delivery's state
/// only when it succeeded.
public protocol AttemptRecorder: Sendable {
    func record(_ records: [DeliveryRecord]) async throws
}

/// The state a delivery is in after `outcome`, for the event store's queries; nil when the
/// outcome does not change it (a replay's retry or death).
public func deliveryState(after record: DeliveryRecord) -> DeliveryState? {
    if !record.replayID.isEmpty && record.outcome != .succeeded { return nil }
    switch record.outcome {
    case .succeeded: return .succeeded
    case .dead: return .dead
    case .retry: return .pending
    }
}
