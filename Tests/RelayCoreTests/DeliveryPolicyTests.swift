import RelayCore
import Testing

@Suite struct DeliveryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, initialBackoffMillis: 1000, maxBackoffMillis: 10_000, maxAgeMillis: 60_000)
    let t0 = Timestamp(milliseconds: 1_700_000_000_000)

    @Test(arguments: [
        (200, DeliveryPolicy.Class.success), (204, .success), (299, .success), (408, .retryable), (429, .retryable),
        (500, .retryable), (503, .retryable), (599, .retryable), (400, .permanent(pausesDestination: false)),
        (404, .permanent(pausesDestination: false)), (410, .permanent(pausesDestination: true)), (301, .permanent(pausesDestination: false)),
    ])
    func statusClasses(status: Int, expected: DeliveryPolicy.Class) {
        #expect(DeliveryPolicy.classify(status: status) == expected)
    }

    @Test func backoffDoublesUpToTheCapWithFullJitter() {
        // random returns its upper bound: the ceiling of each step.
        let ceilings = (1...8).map { DeliveryPolicy.backoffMillis(afterAttempt: $0, policy: policy, random: { $0 }) }
        #expect(ceilings == [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000])
        // random returns 0: full jitter may retry at once.
        #expect(DeliveryPolicy.backoffMillis(afterAttempt: 3, policy: policy, random: { _ in 0 }) == 0)
        // A random source that misbehaves is clamped into range.
        #expect(DeliveryPolicy.backoffMillis(afterAttempt: 1, policy: policy, random: { $0 * 5 }) == 1000)
        #expect(DeliveryPolicy.backoffMillis(afterAttempt: 200, policy: RetryPolicy(), random: { $0 }) == 3_600_000)
    }

    @Test func retryAfterSecondsAndDatesAreHonouredAndClamped() {
        #expect(DeliveryPolicy.retryAfterMillis("7", now: t0) == 7000)
        #expect(DeliveryPolicy.retryAfterMillis(" 0 ", now: t0) == 0)
        #expect(DeliveryPolicy.retryAfterMillis("soon", now: t0) == nil)
        #expect(DeliveryPolicy.retryAfterMillis("-3", now: t0) == nil)
        #expect(DeliveryPolicy.retryAfterMillis(nil, now: t0) == nil)
        // 2023-11-14T22:13:20Z is t0; the header says 30 s later.
        #expect(DeliveryPolicy.retryAfterMillis("Tue, 14 Nov 2023 22:13:50 GMT", now: t0) == 30_000)
        #expect(DeliveryPolicy.retryAfterMillis("Tue, 14 Nov 2023 22:00:00 GMT", now: t0) == 0)

        let honoured = DeliveryPolicy.decide(status: 429, retryAfter: "7", attempt: 1, receivedAt: t0, now: t0, policy: policy, random: { _ in 0 })
        #expect(honoured == .retry(at: Timestamp(milliseconds: t0.milliseconds + 7000)))
        let clamped = DeliveryPolicy.decide(status: 503, retryAfter: "3600", attempt: 1, receivedAt: t0, now: t0, policy: policy, random: { _ in 0 })
        #expect(clamped == .retry(at: Timestamp(milliseconds: t0.milliseconds + 10_000)))
    }

    @Test func decisions() {
        func decide(_ status: Int?, attempt: Int, now: Timestamp? = nil) -> DeliveryPolicy.Decision {
            DeliveryPolicy.decide(status: status, retryAfter: nil, attempt: attempt, receivedAt: t0, now: now ?? t0, policy: policy, random: { $0 / 2 })
        }
        #expect(decide(204, attempt: 1) == .succeeded)
        #expect(decide(503, attempt: 1) == .retry(at: Timestamp(milliseconds: t0.milliseconds + 500)))
        #expect(decide(nil, attempt: 2) == .retry(at: Timestamp(milliseconds: t0.milliseconds + 1000)), "a transport failure is retried")
        #expect(decide(400, attempt: 1) == .dead(reason: "permanent failure: HTTP 400"))
        #expect(decide(410, attempt: 1) == .dead(reason: "permanent failure: HTTP 410"))
        #expect(decide(503, attempt: 5) == .dead(reason: "gave up after 5 attempts (max_attempts)"))
        let late = Timestamp(milliseconds: t0.milliseconds + 59_000)
        #expect(decide(503, attempt: 3, now: late) == .dead(reason: "gave up: the next attempt would be past max_age"))
    }
}
