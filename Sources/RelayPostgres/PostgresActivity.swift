import Logging
import PostgresNIO
import RelayCore

/// The console's minute counts from the database, so that every instance shows the whole
/// relay's: events by `received_at`, attempts by when they ended (`relay_attempt.at`), with an
/// exact p99 per destination. When the database cannot answer, this instance's own counts.
public struct PostgresActivity: ActivitySource {
    let store: PostgresStore
    let fallback: ActivityLog
    let clock: any RelayClock

    public init(store: PostgresStore, fallback: ActivityLog, clock: any RelayClock = SystemClock()) {
        (self.store, self.fallback, self.clock) = (store, fallback, clock)
    }

    public func lastHour() async -> [ActivityLog.Minute] {
        let now = ActivityLog.minute(clock.now().milliseconds)
        let since = now - Int64(ActivityLog.hourMinutes - 1) * 60_000
        let store = self.store
        do {
            return try await store.bounded("the console's minute counts") {
                var minutes = (0..<ActivityLog.hourMinutes).map { ActivityLog.Minute(start: since + Int64($0) * 60_000) }
                func slot(_ minute: Int64) -> Int? {
                    let index = Int((minute - since) / 60_000)
                    return minutes.indices.contains(index) ? index : nil
                }
                let events = try await store.client.query("""
                    SELECT received_at / 60000 * 60000, count(*) FROM relay_event WHERE received_at >= \(since) GROUP BY 1
                    """, logger: store.logger)
                for try await (minute, count) in events.decode((Int64, Int64).self) {
                    if let index = slot(minute) { minutes[index].events = Int(count) }
                }
                let attempts = try await store.client.query("""
                    SELECT at / 60000 * 60000, outcome, count(*) FROM relay_attempt WHERE at >= \(since) GROUP BY 1, 2
                    """, logger: store.logger)
                for try await (minute, outcome, count) in attempts.decode((Int64, Int16, Int64).self) {
                    guard let index = slot(minute) else { continue }
                    switch DeliveryRecord.Outcome(rawValue: UInt8(clamping: outcome)) {
                    case .succeeded?: minutes[index].succeeded += Int(count)
                    case .retry?: minutes[index].retried += Int(count)
                    case .dead?: minutes[index].dead += Int(count)
                    case nil: break
                    }
                }
                return minutes
            }
        } catch {
            store.logger.warning("cannot read the minute counts from the database; showing this instance's", metadata: ["error": "\(String(reflecting: error))"])
            return fallback.lastHour()
        }
    }

    public func health() async -> [String: ActivityLog.Health] {
        let since = ActivityLog.minute(clock.now().milliseconds) - Int64(ActivityLog.healthMinutes - 1) * 60_000
        let store = self.store
        do {
            return try await store.bounded("the destinations' last 5 minutes") {
                var result: [String: ActivityLog.Health] = [:]
                let rows = try await store.client.query("""
                    SELECT destination, count(*), count(*) FILTER (WHERE outcome = \(Int16(DeliveryRecord.Outcome.succeeded.rawValue))),
                        percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms)
                    FROM relay_attempt WHERE at >= \(since) GROUP BY destination
                    """, logger: store.logger)
                for try await (destination, attempts, succeeded, p99) in rows.decode((String, Int64, Int64, Int32?).self) {
                    result[destination] = ActivityLog.Health(attempts: Int(attempts), succeeded: Int(succeeded), p99Millis: p99.map(Int.init))
                }
                return result
            }
        } catch {
            store.logger.warning("cannot read the destinations' attempts from the database; showing this instance's", metadata: ["error": "\(String(reflecting: error))"])
            return fallback.health()
        }
    }
}
