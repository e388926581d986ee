import RelayCore
import Testing

/// The rate limit's bucket: refill, burst cap, and clocks a little apart (several instances
/// write one bucket) never refilling the same time twice.
@Suite struct TokenBucketTests {
    func at(_ millis: Int64) -> Timestamp { Timestamp(milliseconds: 1_800_000_000_000 + millis) }

    @Test func refillsAtItsRateUpToTheBurst() {
        var bucket = TokenBucket(ratePerSecond: 10, burst: 3)
        #expect(bucket.take(5, now: at(0)) == 3, "a full bucket gives the burst")
        #expect(bucket.take(1, now: at(50)) == 0 && bucket.nextToken(now: at(50)) == at(100))
        #expect(bucket.take(5, now: at(250)) == 2, "250 ms at 10/s: two whole tokens")
        #expect(bucket.take(5, now: at(60_000)) == 3, "a long idle time refills only to the burst")
    }

    @Test func aClockBehindNeitherRefillsNorMovesTheStampBack() {
        var bucket = TokenBucket(ratePerSecond: 10, burst: 10)
        #expect(bucket.take(10, now: at(1_000)) == 10)
        // Another instance, 200 ms behind, takes from the same bucket: nothing there, and the
        // stamp stays at 1,000 ms.
        #expect(bucket.take(1, now: at(800)) == 0)
        #expect(bucket.updatedAt == at(1_000))
        // So at 1,100 ms there is exactly one token, not three.
        #expect(bucket.take(10, now: at(1_100)) == 1)
    }

    @Test func aVerySlowRateWaitsAtMostADay() {
        var bucket = TokenBucket(ratePerSecond: 0.001, burst: 1)
        #expect(bucket.take(1, now: at(0)) == 1)
        #expect(bucket.nextToken(now: at(0)) == at(1_000_000))
    }
}
