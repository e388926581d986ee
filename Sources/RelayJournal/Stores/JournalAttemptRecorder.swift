import RelayCore
/// The journal as the record of delivery attempts: each record appended (over the ingest
/// queue's limit: the engine bounds how many it has in flight) and durable when this returns.
public struct JournalAttemptRecorder: AttemptRecorder {
    private let journal: Journal

    public init(journal: Journal) {
        self.journal = journal
    }

    public func record(_ records: [DeliveryRecord]) async throws {
        let entries = records.map(\.journalEntry)
        let _: [UInt64] = try await withCheckedThrowingContinuation { continuation in
            journal.append(entries) { continuation.resume(with: $0) }
        }
    }
}
