import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `relay` executable run as a child process, for crash and end-to-end tests.
/// Only processes started here are ever signalled, by their own PID.
public final class RelayProcess: @unchecked Sendable {
    // @unchecked: `process` and `logPath` are set once in init; Process itself is thread-safe
    // for the calls used here (processIdentifier, isRunning, waitUntilExit).
    public let process: Process
    public let logPath: String

    /// The `relay` binary: `$RELAY_BINARY`, else `.build/debug/relay` of this package.
    public static func binaryPath(file: String = #filePath) -> String {
        if let path = ProcessInfo.processInfo.environment["RELAY_BINARY"] { return path }
        return (packageRoot(file: file) ?? ".") + "/.build/debug/relay"
    }

    /// Starts `relay ARGUMENTS`, logging stderr and stdout to `logPath`.
    public init(arguments: [String], logPath: String, environment: [String: String] = [:]) throws {
        let binary = Self.binaryPath()
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestHTTPClient.Failure(description: "relay binary not found at \(binary); run `swift build` first")
        }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardError = log
        process.standardOutput = log
        var env = ProcessInfo.processInfo.environment
        env["RELAY_EXIT_WITH_PARENT"] = "1"  // a crashed test run must not leave servers behind
        for (key, value) in environment { env[key] = value }
        process.environment = env
        self.logPath = logPath
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits (bounded) for a log line `port=N … <message>` (or, in JSON, `"port":"N"`) and returns N.
    public func waitForPort(message: String, timeout: Double = 30) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for line in log.split(separator: "\n") where line.contains(message) {
                if let range = line.range(of: "port=") ?? line.range(of: "\"port\":\"") {
                    let digits = line[range.upperBound...].prefix { $0.isNumber }
                    if let port = Int(digits), port > 0 { return port }
                }
            }
            if !process.isRunning { throw TestHTTPClient.Failure(description: "relay exited early:\n\(log)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestHTTPClient.Failure(description: "relay did not log '\(message)' within \(timeout)s:\n\(log)")
    }

    /// Sends `signal` to this child only.
    public func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits (bounded) for exit; kills the child if it does not exit in time. Returns the status.
    @discardableResult
    public func waitForExit(timeout: Double = 20) async -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            // Cancelled: the child is killed below, rather than spinning until the deadline.
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }
}
