import NIOPosix
import RelayCore

/// Blocking work on NIO's `NIOThreadPool`: a fixed number of threads for admin queries, replay
/// selection and other file reads, so a burst of queries queues instead of starting a thread each.
public final class ThreadPoolIO: BlockingIO {
    private let pool: NIOThreadPool

    /// Starts `threads` threads (shut them down with `shutdown()`).
    public init(threads: Int = 4) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
    }

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(work)
    }

    public func submit(_ work: @escaping @Sendable () -> Void) {
        pool.submit { _ in work() }
    }

    /// Waits for running work, then stops the threads.
    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
