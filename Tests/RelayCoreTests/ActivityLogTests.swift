import RelayCore
import RelayTesting
import Testing

/// The console's minute counts: per minute for an hour, per destination for 5 minutes, with a
/// p99 from a bounded histogram.
@Suite struct ActivityLogTests {
    static let t0 = Timestamp(milliseconds: 1_790_000_040_000)  // a minute's start

    @Test func minutesRollOverAndOnlyTheLastHourIsKept() {
        let clock = SettableClock(Self.t0)
        let log = ActivityLog(clock: clock)
        log.stored(3)
        log.attempted(destination: "a", outcome: .succeeded, millis: 5)
        clock.set(Timestamp(milliseconds: Self.t0.milliseconds + 59_999))
        log.attempted(destination: "a", outcome: .retry, millis: 5)
        clock.set(Timestamp(milliseconds: Self.t0.milliseconds + 60_000))
        log.stored(1)
        log.attempted(destination: "a", outcome: .dead, millis: 5)
        var hour = log.lastHour()
        #expect(hour.count == 60 && hour.last?.start == Self.t0.milliseconds + 60_000)
        #expect(hour[58].events == 3 && hour[58].succeeded == 1 && hour[58].retried == 1 && hour[58].dead == 0)
        #expect(hour[59].events == 1 && hour[59].dead == 1)
        #expect(hour.prefix(58).allSatisfy { $0.events == 0 && $0.succeeded == 0 })
        // An hour later the first minute is gone; the second is the oldest shown.
        clock.set(Timestamp(milliseconds: Self.t0.milliseconds + 60 * 60_000))
        hour = log.lastHour()
        #expect(hour.first?.start == Self.t0.milliseconds + 60_000 && hour.first?.events == 1)
        #expect(hour.reduce(0) { $0 + $1.events } == 1)
    }

    @Test func healthCoversFiveMinutesWithAP99FromTheHistogram() throws {
        let clock = SettableClock(Self.t0)
        let log = ActivityLog(clock: clock)
        for index in 0..<100 { log.attempted(destination: "a", outcome: index < 90 ? .succeeded : .retry, millis: index < 98 ? 10 : 900) }
        var a = try #require(log.health()["a"])
        #expect(a.attempts == 100 && a.succeeded == 90)
        // 98 took 10 ms, 2 took 900 ms: the 99th is in the 900 ms bucket.
        #expect(a.p99Millis.map { $0 >= 900 && $0 < 1_200 } == true, "\(String(describing: a.p99Millis))")
        log.attempted(destination: "b", outcome: .succeeded, millis: 0)
        #expect(log.health()["b"]?.p99Millis == 1)
        // Four minutes on, still counted; five minutes on, gone.
        clock.set(Timestamp(milliseconds: Self.t0.milliseconds + 4 * 60_000))
        a = try #require(log.health()["a"])
        #expect(a.attempts == 100)
        clock.set(Timestamp(milliseconds: Self.t0.milliseconds + 5 * 60_000))
        #expect(log.health()["a"] == nil)
    }
}
