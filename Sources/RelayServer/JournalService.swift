import RelayCore
import RelayJournal
import ServiceLifecycle

/// Keeps the journal open for the life of the service group. On graceful shutdown (after the
/// servers above it have stopped and finished their requests) it writes what is queued and
/// closes the files.
struct JournalService: Service {
    let journal: Journal

    func run() async throws {
        try? await gracefulShutdown()
        await journal.close()
    }
}
