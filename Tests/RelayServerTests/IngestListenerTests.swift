import Foundation
import RelayCore
import RelayJournal
import RelayServer
import RelayTesting
import Testing

// The ingest listener on the relay's own SwiftNIO handlers: the same bytes the Hummingbird
// listener wrote, answers in request order when pipelined, and the slow-client rules.

private let routes = #"{ "sources": { "shop": { "provider": "generic", "fields": { "id": "/id" }, "max_body_bytes": 200 } } }"#

/// `answer` with its `Date` value and relay ids replaced, so it can be compared byte for byte.
private func masked(_ answer: String) -> String {
    answer.replacingOccurrences(of: #"Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"#, with: "Date: D", options: .regularExpression)
        .replacingOccurrences(of: #"evt_[0-9A-Za-z]+"#, with: "evt_X", options: .regularExpression)
}

private func post(_ path: String, _ body: String, extra: String = "") -> String {
    "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

@Suite struct IngestListenerTests {
    /// README "Slow and stalled clients" and the answers' exact bytes, as clients saw them before.
    @Test(.timeLimit(.minutes(1)))
    func answersAreTheSameBytesAsBefore() async throws {
        let relay = try await LiveRelay(routes: routes)
        defer { Task { await relay.stop() } }
        let accepted = #"{"accepted":1,"duplicates":0,"ids":["evt_X"]}"#
        let idLength = 70  // with a 30-character relay id
        let cases: [(request: String, answer: String)] = [
            ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nDate: D\r\n\r\n{\"status\":\"ok\"}"),
            ("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\nDate: D\r\n\r\n"),
            ("GET /webhooks/shop HTTP/1.1\r\nHost: x\r\n\r\n",
             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\nDate: D\r\n\r\n{\"error\":\"Not Found\"}"),
            (post("/webhooks/shop/more", "{}"),
             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\nDate: D\r\n\r\n{\"error\":\"Not Found\"}"),
            (post("/webhooks/shop", #"{"id":"b1"}"#),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(idLength)\r\nDate: D\r\n\r\n\(accepted)"),
            (post("/webhooks/shop/?x=1", #"{"id":"b1"}"#),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(idLength)\r\nDate: D\r\n\r\n{\"accepted\":0,\"duplicates\":1,\"ids\":[\"evt_X\"]}"),
            (post("/webhooks/sh%6Fp", "{}"),
             "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 37\r\nDate: D\r\n\r\n{\"error\":\"unknown source \\\"sh%6Fp\\\"\"}"),
            (post("/webhooks/shop", #"{"id":"#),
             "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 81\r\nDate: D\r\n\r\n{\"error\":\"source shop body is not valid JSON: unexpected end of input at byte 6\"}"),
            (post("/webhooks/shop", "{\"id\":\"" + String(repeating: "x", count: 300) + "\"}"),
             "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 63\r\nDate: D\r\n\r\n{\"error\":\"body exceeds the limit of 200 bytes for source shop\"}"),
            ("THIS IS NOT HTTP\r\n\r\n", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
        ]
        for (request, expected) in cases {
            let (answer, _) = try await rawExchange(port: relay.ingestPort, Array(request.utf8), timeout: 1)
            #expect(masked(answer) == expected, "\(request.prefix(40).debugDescription)")
        }
        await relay.stop()
    }

    /// Pipelined requests are answered in request order, even when the first waits on a slow
    /// commit and the ones after it are answered at once; the connection stays open.
    @Test(.timeLimit(.minutes(1)))
    func pipelinedRequestsAreAnsweredInOrder() async throws {
        let faults = FaultyFileSystem()
        let relay = try await LiveRelay(routes: routes, journal: { JournalConfiguration(directory: $0, fileSystem: faults) })
        defer { Task { await relay.stop() } }
        faults.delaySyncs(.milliseconds(500))
        let requests = post("/webhooks/shop", #"{"id":"p1"}"#) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + post("/webhooks/nobody", "{}") + post("/webhooks/shop", #"{"id":"p2"}"#) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        let (answer, closed) = try await rawExchange(port: relay.ingestPort, Array(requests.utf8), timeout: 3)
        let statuses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "200", "404", "200", "200"], "answered: \(answer.debugDescription)")
        let bodies = masked(answer).components(separatedBy: "\r\n\r\n").dropFirst().map { $0.components(separatedBy: "HTTP/1.1").first ?? "" }
        #expect(bodies.first?.hasPrefix(#"{"accepted":1"#) == true)
        #expect(bodies.dropFirst().first == #"{"status":"ok"}"#)
        #expect(!closed, "a fully read pipeline's connection was closed")
        #expect(try relay.storedEvents().map { String(decoding: $0.body, as: UTF8.self) } == [#"{"id":"p1"}"#, #"{"id":"p2"}"#])
        await relay.stop()
    }

    /// A body that stops arriving is answered 408 at its deadline (not left to the idle
    /// timeout), with `Connection: close`; a request saying `Connection: close` is closed after
    /// its answer; stored headers (those the adapter keeps) have their names in lower case.
    @Test(.timeLimit(.minutes(1)))
    func aStalledBodyIs408AtItsDeadline() async throws {
        let relay = try await LiveRelay(routes: routes, idleTimeout: .seconds(30), bodyTimeout: .seconds(1))
        defer { Task { await relay.stop() } }
        let started = ContinuousClock.now
        let stalled = try StalledConnection(port: relay.ingestPort, sending: "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        let answer = await stalled.answer(within: 10)
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "answered: \(answer.prefix(80))")
        #expect(answer.contains("\r\nConnection: close\r\n"))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try await stalled.waitForClose(within: 2))

        let request = post("/webhooks/shop", #"{"id":"c1"}"#, extra: "Connection: close\r\nUSER-Agent: Shop/2\r\n")
        let (closing, closed) = try await rawExchange(port: relay.ingestPort, Array(request.utf8), timeout: 5)
        #expect(closing.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(closed, "a request with Connection: close kept its connection")
        let headers = try #require(try relay.storedEvents().first?.headers)
        #expect(headers.map(\.name) == ["content-type", "user-agent"])
        #expect(headers.first { $0.name == "user-agent" }?.value == "Shop/2")
        await relay.stop()
    }
}
