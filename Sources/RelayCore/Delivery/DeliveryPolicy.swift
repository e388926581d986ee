import Foundation

/// What to do after one delivery attempt. Pure: the outcome, the destination's policy, the time
/// and a random source in; a decision out.
public enum DeliveryPolicy {
    /// What an attempt's outcome means for the delivery.
    public enum Class: Equatable, Sendable {
        /// Any 2xx.
        case success
        /// Connection errors, timeouts, 408, 429 and 5xx: try again later.
        case retryable
        /// Any other status: the destination refuses this delivery for good. `410 Gone` also
        /// pauses the destination.
        case permanent(pausesDestination: Bool)
    }

    /// The decision after an attempt.
    public enum Decision: Equatable, Sendable {
        case succeeded
        case retry(at: Timestamp)
        case dead(reason: String)
    }

    /// How an HTTP status is treated. A transport failure (no status) is always retryable.
    public static func classify(status: Int) -> Class {
        switch status {
        case 200..<300: .success
        case 408, 429, 500..<600: .retryable
        case 410: .permanent(pausesDestination: true)
        default: .permanent(pausesDestination: false)
        }
    }

    /// Exponential backoff with full jitter: a uniformly random delay in
    /// `0 ... min(max_backoff, initial_backoff × 2^(attempt − 1))`, so that many deliveries
    /// failing together do not retry together. With the defaults (1 s initial, 1 h cap):
    ///
    /// | after attempt | delay drawn from |
    /// |---|---|
    /// | 1 | 0 – 1 s |
    /// | 2 | 0 – 2 s |
    /// | 3 | 0 – 4 s |
    /// | 5 | 0 – 16 s |
    /// | 10 | 0 – 512 s |
    /// | 13 and later | 0 – 3600 s (the cap) |
    ///
    /// `random(n)` must return a value in `0 ... n`; it is injected so tests are exact.
    public static func backoffMillis(afterAttempt attempt: Int, policy: RetryPolicy, random: (Int64) -> Int64) -> Int64 {
        let exponent = min(max(attempt - 1, 0), 40)
        let (scaled, overflow) = policy.initialBackoffMillis.multipliedReportingOverflow(by: Int64(1) << exponent)
        let ceiling = overflow ? policy.maxBackoffMillis : min(policy.maxBackoffMillis, scaled)
        return min(max(random(ceiling), 0), ceiling)
    }

    /// `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP-date. Nil if absent or
    /// malformed; never negative.
    public static func retryAfterMillis(_ header: String?, now: Timestamp) -> Int64? {
        guard let text = header?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) {
            guard let seconds = Int64(text) else { return nil }
            return seconds > Int64.max / 1000 ? Int64.max : seconds * 1000
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return max(0, Int64(date.timeIntervalSince1970 * 1000) - now.milliseconds)
    }

    /// The decision after attempt number `attempt` (1 for the first) of a delivery whose event
    /// was received at `receivedAt`. A retry is never scheduled past `max_age` or beyond
    /// `max_attempts`: then the delivery is dead. `Retry-After` replaces the drawn backoff,
    /// clamped to `max_backoff_ms`.
    public static func decide(
        status: Int?, retryAfter: String?, attempt: Int, receivedAt: Timestamp, now: Timestamp,
        policy: RetryPolicy, random: (Int64) -> Int64
    ) -> Decision {
        if let status {
            switch classify(status: status) {
            case .success: return .succeeded
            case .permanent: return .dead(reason: "permanent failure: HTTP \(status)")
            case .retryable: break
            }
        }
        guard attempt < policy.maxAttempts else {
            return .dead(reason: "gave up after \(attempt) attempts (max_attempts)")
        }
        var delay = backoffMillis(afterAttempt: attempt, policy: policy, random: random)
        if let requested = retryAfterMillis(retryAfter, now: now) {
            delay = min(requested, policy.maxBackoffMillis)
        }
        let due = Timestamp(milliseconds: now.milliseconds + delay)
        guard due.milliseconds - receivedAt.milliseconds <= policy.maxAgeMillis else {
            return .dead(reason: "gave up: the next attempt would be past max_age")
        }
        return .retry(at: due)
    }
}
