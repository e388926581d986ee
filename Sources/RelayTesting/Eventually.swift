import Synchronization

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`; returns whether
/// it held. Tests `#require` the result, so a wait never falls through silently, and the bound
/// is long (seconds) because it is a deadline for a failure, not a measurement.
public func eventually(
    timeout: Duration = .seconds(10), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        // Cancelled (the test's time limit): stop, rather than spin on a sleep that no longer waits.
        do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
    }
    return try await condition()
}

/// A value shared by a test's concurrent tasks (a `Mutex` that closures can capture).
public final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    public init(_ value: Value) { self.value = Mutex(value) }

    public func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}

/// Sleeps in 10 ms steps until `milliseconds` passed or `stopped()` holds, and never throws: a
/// test server's slow answer ends promptly when the server stops, and normally (a handler thrown
/// out of by cancellation can leave NIO's response writer unfinished, which traps).
func sleepUnlessStopped(milliseconds: Int, stopped: () -> Bool) async {
    let until = ContinuousClock.now + .milliseconds(milliseconds)
    while ContinuousClock.now < until, !stopped() {
        try? await Task.sleep(for: min(.milliseconds(10), until - ContinuousClock.now))
    }
}
