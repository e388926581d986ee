import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RelayCore
import ServiceLifecycle
import UnixSignals
import Synchronization

/// `relay sink`: a small downstream that answers every request, optionally failing or slow, and
/// appends one JSON line per request to a log. For trying routes locally, tests and the bench.
public final class SinkServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: RelayServerConfiguration.Address
        /// The status answered when not failing. Default 204.
        public var status: Int
        /// Fraction (0…1) of requests answered 503 instead.
        public var failRate: Double
        /// Delay before answering each request.
        public var delayMilliseconds: Int
        /// JSON-lines log file, if any.
        public var logPath: String?

        public init(listen: RelayServerConfiguration.Address, status: Int = 204, failRate: Double = 0, delayMilliseconds: Int = 0, logPath: String? = nil) {
            self.listen = listen
            self.status = status
            self.failRate = failRate
            self.delayMilliseconds = delayMilliseconds
            self.logPath = logPath
        }
    }

    public static let maxLoggedBody = 64 << 10

    public let configuration: Configuration
    private let logger: Logger
    private let logFile: Mutex<FileHandle?>
    private let port = Mutex<Int?>(nil)
    private let counter = Atomic<Int>(0)
    /// Requests being answered now, per path and replay or not (what `concurrent` logs).
    private let inFlight = Mutex<[String: Int]>([:])

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        if let path = configuration.logPath {
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw SinkError(message: "cannot create log file \(path)")
                }
            }
            guard let handle = FileHandle(forWritingAtPath: path) else { throw SinkError(message: "cannot open log file \(path)") }
            handle.seekToEndOfFile()
            logFile = Mutex(handle)
        } else {
            logFile = Mutex(nil)
        }
    }

    struct SinkError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The bound port, once listening.
    public var boundPort: Int? { port.withLock { $0 } }
    /// Requests answered so far.
    public var requestCount: Int { counter.load(ordering: .relaxed) }

    public func application() -> some ApplicationProtocol {
        let responder = CallbackResponder<BasicRequestContext> { [self] request, _ in
            try await self.respond(request)
        }
        return Application(
            responder: responder,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: nil, backlog: 1024
            ),
            onServerRunning: { [self] channel in
                self.port.withLock { $0 = channel.localAddress?.port }
                logger.info("sink listening", metadata: ["port": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: logger
        )
    }

    private func respond(_ request: Request) async throws -> Response {
        let lane = request.uri.path + (request.headers[HTTPField.Name("x-relay-replay")!] == "1" ? " replay" : "")
        let concurrent = inFlight.withLock { counts in
            counts[lane, default: 0] += 1
            return counts[lane] ?? 1
        }
        defer { inFlight.withLock { $0[lane, default: 1] -= 1 } }
        var body: [UInt8] = []
        var total = 0
        for try await chunk in request.body {
            total += chunk.readableBytes
            if body.count < Self.maxLoggedBody {
                body.append(contentsOf: chunk.readableBytesView.prefix(Self.maxLoggedBody - body.count))
            }
        }
        if configuration.delayMilliseconds > 0 {
            try? await Task.sleep(for: .milliseconds(configuration.delayMilliseconds))
        }
        let failing = configuration.failRate > 0 && Double.random(in: 0..<1) < configuration.failRate
        let status = failing ? 503 : configuration.status
        counter.add(1, ordering: .relaxed)
        if logFile.withLock({ $0 != nil }) {
            let line = logLine(request: request, status: status, body: body, concurrent: concurrent)
            logFile.withLock { handle in
                handle?.write(Data(line.utf8))
            }
        }
        return Response(status: HTTPResponse.Status(code: status))
    }

    /// One JSON line; `concurrent` is how many requests to the same path (replayed ones counted
    /// apart) were being answered when this one arrived, itself included.
    private func logLine(request: Request, status: Int, body: [UInt8], concurrent: Int) -> String {
        let headers = request.headers
        let webhookID = headers[HTTPField.Name("webhook-id")!] ?? ""
        let attempt = headers[HTTPField.Name("x-relay-attempt")!].flatMap(Int.init) ?? 0
        let replay = headers[HTTPField.Name("x-relay-replay")!] == "1"
        let text = String(decoding: body, as: UTF8.self)
        return "{\"time\":\(JSONWriter.quote(SystemClock().now().rfc3339)),\"path\":\(JSONWriter.quote(request.uri.path)),"
            + "\"webhook_id\":\(JSONWriter.quote(webhookID)),\"attempt\":\(attempt),\"replay\":\(replay),\"status\":\(status),\"concurrent\":\(concurrent),"
            + "\"body_sha256\":\(JSONWriter.quote(Digest.sha256Hex(body))),\"body\":\(JSONWriter.quote(text))}\n"
    }

    /// Runs until SIGTERM/SIGINT (or cancellation).
    public func run(handleSignals: Bool = true) async throws {
        let group = ServiceGroup(services: [application()], gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [], logger: logger)
        try await group.run()
        logFile.withLock { try? $0?.synchronize() }
    }
}
