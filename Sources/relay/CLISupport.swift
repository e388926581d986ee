import ArgumentParser
import Logging
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

    func bootstrap(label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: unknown level \"\(logLevel)\"")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
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
