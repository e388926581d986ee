import Foundation

/// Runs blocking work (file scans) on a thread of its own and awaits it, so it never occupies
/// one of Swift's few cooperative threads (on Linux a blocked pool stalls every task).
public func runOffPool<T: Sendable>(_ name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = name
        thread.start()
    }
}
