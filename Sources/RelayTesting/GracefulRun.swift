import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// A test server's run, stopped gracefully: the listener closes and open connections finish
/// before the run ends. Cancelling a Hummingbird server's task instead can trap in NIO when a
/// connection is accepted at that moment ("Deinited NIOAsyncWriter without calling finish()",
/// apple/swift-nio#3481), and a relay under test connects to its downstreams at any time.
final class GracefulRun: Sendable {
    private let state = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

    /// Runs `service` until `stop()`.
    func start(_ service: some Service, logger: Logger) {
        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        state.withLock { $0 = (group, Task { try await group.run() }) }
    }

    /// Shuts down gracefully and waits for the run to end; after 10 s it is cancelled.
    func stop() async {
        guard let (group, task) = state.withLock({ state in defer { state = nil }; return state }) else { return }
        await group.triggerGracefulShutdown()
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            task.cancel()
        }
        _ = try? await task.value
        watchdog.cancel()
    }
}
