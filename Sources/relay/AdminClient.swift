import ArgumentParser
import Foundation
import Logging
import RelayCore
import RelayForwarder
import Synchronization

/// Options of the commands that talk to a running relay's admin listener.
struct AdminOptions: ParsableArguments {
    @Option(help: "The relay's admin listener.")
    var admin: String = "http://127.0.0.1:8081"

    @Flag(help: "Machine-readable output (the admin API's JSON).")
    var json = false
}

/// A blocking HTTP client for the admin API (one request per command), with
/// `RELAY_ADMIN_TOKEN` as a bearer token. Failures become one line naming the command.
struct AdminClient {
    let base: String
    let command: String
    let token = ProcessInfo.processInfo.environment["RELAY_ADMIN_TOKEN"]

    init(_ options: AdminOptions, command: String) {
        var base = options.admin
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.command = command
    }

    /// Sends the request and returns the parsed JSON of a 2xx answer; anything else fails with one line.
    func request(_ path: String, body: [UInt8]? = nil) throws -> JSONValue {
        var headers: [(name: String, value: String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let request = OutboundRequest(
            method: body == nil ? .get : .post, url: base + path, headers: headers, body: body ?? [],
            timeoutMillis: 60_000, connectTimeoutMillis: 3_000, maxResponseBody: 64 << 20
        )
        let response: TransportResponse
        switch try send(request) {
        case .success(let answer): response = answer
        case .failure(let failure): throw fail("\(command): cannot reach the relay at \(base): \(failure.message)")
        }
        let parsed = try? JSONParser.parse(response.body)
        guard (200..<300).contains(response.status) else {
            let message = parsed?["error"]?.stringValue ?? String(decoding: response.body.prefix(300), as: UTF8.self)
            if response.status == 401 {
                throw fail("\(command): the relay refused the admin request (401): \(message)\(token == nil ? " (RELAY_ADMIN_TOKEN is not set)" : "")")
            }
            throw fail("\(command): the relay answered \(response.status): \(message)")
        }
        guard let parsed else { throw fail("\(command): the relay's answer is not JSON") }
        return parsed
    }

    /// Sends one request with the forwarder's libcurl engine and waits for it (a command runs
    /// on the main thread, never on Swift's cooperative pool, so it may block).
    private func send(_ request: OutboundRequest) throws -> Result<TransportResponse, TransportFailure> {
        let engine: CurlEngine
        do {
            engine = try CurlEngine(configuration: CurlEngine.Configuration(maxConnections: 1, handlePoolSize: 1), logger: Logger(label: "relay-cli", factory: { _ in SwiftLogNoOpLogHandler() }))
        } catch {
            throw fail("\(command): cannot start libcurl: \(error)")
        }
        let answer = Mutex<Result<TransportResponse, TransportFailure>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result = await engine.send(request)
            await engine.shutdown()
            answer.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return answer.withLock { $0 } ?? .failure(TransportFailure(kind: .other, message: "no answer"))
    }

    /// Like `request`, decoding the answer as the admin API's typed body; also returns the JSON
    /// as sent (for `--json`).
    func request<Body: Decodable>(_ type: Body.Type, _ path: String, body: [UInt8]? = nil) throws -> (body: Body, json: JSONValue) {
        let json = try request(path, body: body)
        do {
            return (try JSONDecoder().decode(Body.self, from: Data(JSONWriter.serialize(json).utf8)), json)
        } catch {
            throw fail("\(command): the relay's answer does not match the admin API (\(Body.self)): \(error)")
        }
    }
}
