import Logging
import RelayCore

extension DeliveryScheduler {
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
        // A success is not logged (its metric counts it): nothing is built for it.
        if record.outcome == .succeeded { return }
        let prefix = record.replayID.isEmpty ? "" : "replay "
        var metadata: Logger.Metadata = [
            "destination": "\(record.destination)", "event_id": "\(record.eventID)", "attempt": "\(record.attempt)", "status": "\(record.status)",
        ]
        if !record.replayID.isEmpty { metadata["replay_id"] = "\(record.replayID)" }
        switch record.outcome {
        case .succeeded:
            break  // returned above
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
}
