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
        let level: Logger.Level, message: String
        var metadata: Logger.Metadata
        switch record.outcome {
        case .succeeded:
            return  // not logged (its metric counts it): nothing is built for it
        case .retry:
            (level, message) = (.warning, "delivery failed; will retry")
            metadata = ["error": "\(record.error)", "next_attempt": "\(record.nextDue?.rfc3339 ?? "")"]
        case .dead:
            (level, message) = (.error, "delivery dead")
            metadata = ["reason": "\(record.error)"]
            if record.replayID.isEmpty { metadata["paused_destination"] = "\(record.pausedDestination)" }
        }
        metadata["destination"] = "\(record.destination)"
        metadata["event_id"] = "\(record.eventID)"
        metadata["attempt"] = "\(record.attempt)"
        metadata["status"] = "\(record.status)"
        if !record.replayID.isEmpty { metadata["replay_id"] = "\(record.replayID)" }
        logger.log(level: level, "\(record.replayID.isEmpty ? "" : "replay ")\(message)", metadata: metadata)
    }
}
