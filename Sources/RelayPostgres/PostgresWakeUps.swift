import Logging
import PostgresNIO
import Synchronization

/// Wakes the other instances on the database when this one stored work for them, with
/// `NOTIFY` on one channel shared by every relay schema (the payload names the schema). Sent
/// after the commit, never inside it: a `NOTIFY` in a transaction serializes commits on a
/// database-wide lock at commit time. Coalesced: one notification in flight at a time, and one
/// more after it if work arrived meanwhile. A lost notification costs only latency; polling is
/// the fallback.
final class WakeUpSender: Sendable {
    static let channel = "relay_work"

    private struct State {
        var sending = false
        var again = false
    }

    private let state = Mutex(State())

    /// Asks for a notification to be sent soon.
    func request(_ store: PostgresStore) {
        let start = state.withLock { state -> Bool in
            if state.sending {
                state.again = true
                return false
            }
            state.sending = true
            return true
        }
        guard start else { return }
        Task { await self.send(store) }
    }

    private func send(_ store: PostgresStore) async {
        while true {
            do {
                let query: PostgresQuery = "SELECT pg_notify(\(Self.channel), \(store.schema))"
                _ = try await store.bounded("a wake-up notification") { try await store.client.query(query, logger: store.logger).first(String.self) }
            } catch {
                store.logger.debug("cannot notify other instances; they poll", metadata: ["error": "\(String(reflecting: error))"])
            }
            let more = state.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.sending = false
                return false
            }
            if !more { return }
        }
    }
}

extension PostgresStore {
    /// Listens on one pooled connection and calls `wake` for every notification about this
    /// store's schema, until cancelled; a lost connection is listened on again after a second.
    func listenForWakeUps(_ wake: @escaping @Sendable () -> Void) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: WakeUpSender.channel) { notifications in
                        // Work may have arrived while not listening.
                        wake()
                        for try await notification in notifications where notification.payload == self.schema {
                            wake()
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("cannot listen for wake-ups; polling meanwhile", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
