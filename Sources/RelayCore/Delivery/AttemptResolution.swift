/// What one delivery attempt came to: the record to store and what happens to the delivery
/// next. One pure function for live deliveries and replays alike, so both follow the same
/// policy; the engine only carries the result out.
public struct AttemptResolution: Sendable, Equatable {
    /// The facts of an attempt's answer (or of its failure to get one).
    public struct Facts: Sendable, Equatable {
        /// The HTTP status, 0 when there was no response.
        public var status: Int
        /// The transport error, empty with a response.
        public var error: String
        public var retryAfter: String?
        public var durationMillis: Int

        public init(status: Int, error: String = "", retryAfter: String? = nil, durationMillis: Int) {
            self.status = status
            self.error = error
            self.retryAfter = retryAfter
            self.durationMillis = durationMillis
        }
    }

    /// The delivery's next state.
    public enum Next: Sendable, Equatable {
        case succeeded
        case retry(at: Timestamp)
        /// Given up; `pausesDestination` for a 410.
        case dead(pausesDestination: Bool)
    }

    /// The attempt's record (its outcome, status, error, next due time).
    public var record: DeliveryRecord
    public var next: Next
    /// What the answer means for the destination's circuit breaker.
    public var breaker: CircuitBreaker.Result

    /// Resolves attempt `attempt` (1 for the first) of the delivery of `eventID` to
    /// `destination`. `since` is when the delivery's age starts: the event's receipt for a live
    /// delivery, the replay's first attempt for a replayed one.
    public static func resolve(
        _ facts: Facts, eventSequence: UInt64, eventID: String, destination: String, attempt: Int, since: Timestamp,
        now: Timestamp, policy: RetryPolicy, replayID: String = "", random: (Int64) -> Int64
    ) -> AttemptResolution {
        var record = DeliveryRecord(
            eventSequence: eventSequence, eventID: eventID, destination: destination, attempt: attempt, time: now,
            outcome: .retry, status: facts.status, error: facts.error, durationMillis: facts.durationMillis, nextDue: nil, replayID: replayID
        )
        let decision = DeliveryPolicy.decide(
            status: facts.status == 0 ? nil : facts.status, retryAfter: facts.retryAfter, attempt: attempt,
            receivedAt: since, now: now, policy: policy, random: random
        )
        let answered = facts.status != 0 && DeliveryPolicy.classify(status: facts.status) != .retryable
        switch decision {
        case .succeeded:
            record.outcome = .succeeded
            return AttemptResolution(record: record, next: .succeeded, breaker: .healthy)
        case .retry(let due):
            record.nextDue = due
            return AttemptResolution(record: record, next: .retry(at: due), breaker: .failure)
        case .dead(let reason):
            record.outcome = .dead
            record.error = facts.error.isEmpty ? reason : "\(reason); \(facts.error)"
            // A 410 pauses the destination's own lane; a replay's attempts never change it.
            let pauses = replayID.isEmpty && DeliveryPolicy.classify(status: facts.status) == .permanent(pausesDestination: true)
            record.pausedDestination = pauses
            return AttemptResolution(record: record, next: .dead(pausesDestination: pauses), breaker: answered ? .healthy : .failure)
        }
    }
}
