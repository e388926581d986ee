import Foundation
import Logging

/// Captures log messages so tests can assert the warnings and errors the README promises.
public final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // @unchecked: `captured` is guarded by `lock`; `metadata` and `logLevel` are set before use.
    private let lock = NSLock()
    private var captured: [(Logger.Level, String, Logger.Metadata)] = []
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init() {}

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        lock.withLock { captured.append((event.level, "\(event.message)", event.metadata ?? [:])) }
    }

    /// Everything logged so far, in order.
    public var messages: [(level: Logger.Level, message: String, metadata: Logger.Metadata)] { lock.withLock { captured } }
}

/// A logger whose messages the returned handler keeps.
public func makeLogger() -> (Logger, CapturingLogHandler) {
    let handler = CapturingLogHandler()
    return (Logger(label: "test", factory: { _ in handler }), handler)
}
