/// Where blocking work (file reads, scans, syncs) runs: a bounded set of threads, never Swift's
/// cooperative pool and never a new thread per call. The server passes one backed by NIO's
/// `NIOThreadPool`.
public protocol BlockingIO: Sendable {
    /// Runs `work` on one of the threads and returns its result.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T
    /// Runs `work` on one of the threads, without waiting for it.
    func submit(_ work: @escaping @Sendable () -> Void)
}
