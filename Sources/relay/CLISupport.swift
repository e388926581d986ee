import ArgumentParser
import Foundation
import Logging
import RelayCore
import RelayServer

#if canImport(Glibc)
import Glibc
#endif

/// Writes one line to stderr.
func printError(_ message: String) {
    var text = message
    if !text.hasSuffix("\n") { text += "\n" }
    text.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
}

/// A CLI failure: one clear line on stderr, then a non-zero exit.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    printError("relay: \(message)")
    return ExitCode(code)
}

/// Options shared by commands that log.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Log format: text (one readable line per entry) or json (one JSON object per line).")
    var logFormat: String = "text"

    func bootstrap(label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: unknown level \"\(logLevel)\"")
        }
        switch logFormat {
        case "text":
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case "json":
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        default:
            throw ValidationError("--log-format: must be text or json, not \"\(logFormat)\"")
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

extension RelayServerConfiguration.Address: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(parsing: argument)
    }
}

/// Loads a routes file, or prints every error as `FILE: path: message` and exits 1.
func loadConfig(_ path: String, lenientSecrets: Bool = false) throws -> RelayConfig {
    do {
        return try RelayConfig.load(path: path, lenientSecrets: lenientSecrets)
    } catch let error as ConfigError {
        for issue in error.issues { printError(issue.description) }
        throw ExitCode(1)
    }
}

/// Routes a payload file's events for `relay routes test|bench` (no signature check), or fails
/// with one line naming the command and the file.
func routePayload(command: String, config: RelayConfig, source: String, headers: HeaderList, payload: String) throws -> [RouteTester.Outcome] {
    guard let data = FileManager.default.contents(atPath: payload) else { throw fail("\(command): cannot read payload file \(payload)") }
    do {
        return try RouteTester.run(config: config, source: source, headers: headers, body: [UInt8](data), now: SystemClock().now())
    } catch {
        throw fail("\(command): \(payload): \(error.message)")
    }
}

/// When `RELAY_EXIT_WITH_PARENT` is set (tests set it for the relays they start), exits as soon
/// as the process that started this one is gone, so a crashed test run leaves no server behind.
func exitWithParentIfAsked() {
    guard ProcessInfo.processInfo.environment["RELAY_EXIT_WITH_PARENT"] != nil else { return }
    let parent = getppid()
    let thread = Thread {
        while getppid() == parent { sleep(1) }
        exit(0)
    }
    thread.start()
}
