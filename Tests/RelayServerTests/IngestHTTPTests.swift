import Foundation
import RelayCore
import RelayJournal
import RelayServer
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

let genericRoutes = """
{ "sources": { "shop": { "provider": "generic", "max_body_bytes": 1000 } } }
"""

@Suite struct IngestHTTPTests {
    @Test func acceptedEventIsDurableWithSourceTimeAndHeaders() async throws {
        let relay = try await LiveRelay(routes: genericRoutes)
        let body = Array("{\"id\":\"o-1\",\"status\":\"COMPLETED\"}".utf8)
        let response = try await relay.post("shop", body: body, headers: [("Content-Type", "application/json"), ("User-Agent", "shop/1")])
        #expect(response.status == 200)
        #expect(response.header("content-type") == "application/json")
        let json = try JSONParser.parse(response.body)
        #expect(json["accepted"]?.doubleValue == 1)
        #expect(json["duplicates"]?.doubleValue == 0)
        let ids = json["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(ids.count == 1)
        // The 200 came after the append, so the event is already readable as durable.
        let events = try relay.storedEvents()
        #expect(events.map(\.id) == ids)
        #expect(events.first?.source == "shop")
        #expect(events.first?.body == body)
        #expect(events.first?.headers.contains { $0.name == "content-type" && $0.value == "application/json" } == true)
        #expect(events.first?.headers.contains { $0.name == "user-agent" && $0.value == "shop/1" } == true)
        let age = SystemClock().now().milliseconds - (events.first?.receivedAt.milliseconds ?? 0)
        #expect(age >= 0 && age < 60_000)
        #expect(try await TestHTTPClient.send(port: relay.ingestPort, path: "/healthz").status == 200)
        await relay.stop()
    }

    @Test func unknownSourceIs404WithJSONError() async throws {
        let relay = try await LiveRelay(routes: genericRoutes)
        let response = try await relay.post("nope", body: Array("{}".utf8))
        #expect(response.status == 404)
        #expect(try JSONParser.parse(response.body)["error"]?.stringValue == "unknown source \"nope\"")
        let other = try await TestHTTPClient.send(port: relay.ingestPort, path: "/nothing-here")
        #expect(other.status == 404)
        #expect(try JSONParser.parse(other.body)["error"] != nil)
        #expect(try relay.storedEvents().isEmpty)
        await relay.stop()
    }

    @Test func bodiesOverTheLimitAre413AndNotStored() async throws {
        let relay = try await LiveRelay(routes: genericRoutes)
        let big = [UInt8](repeating: UInt8(ascii: "a"), count: 1001)
        // Declared length over the limit.
        let declared = try await relay.post("shop", body: big)
        #expect(declared.status == 413)
        #expect(try JSONParser.parse(declared.body)["error"]?.stringValue?.contains("1000 bytes") == true)
        // Chunked, with no length up front: the limit is enforced while reading.
        var chunked: [UInt8] = []
        for _ in 0..<3 {
            chunked += Array("190\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "b"), count: 400) + Array("\r\n".utf8)
        }
        chunked += Array("0\r\n\r\n".utf8)
        let streamed = try await relay.post("shop", body: chunked, headers: [("Transfer-Encoding", "chunked")])
        #expect(streamed.status == 413)
        // Exactly at the limit is fine.
        #expect(try await relay.post("shop", body: [UInt8](repeating: UInt8(ascii: "c"), count: 1000)).status == 200)
        #expect(try relay.storedEvents().count == 1)
        await relay.stop()
    }

    @Test func journalFailureIs503AndNothingIsAcknowledged() async throws {
        let faults = FaultyFileSystem()
        let relay = try await LiveRelay(routes: genericRoutes, journal: { JournalConfiguration(directory: $0, fileSystem: faults) })
        #expect(try await relay.post("shop", body: Array("{\"n\":1}".utf8)).status == 200)
        faults.failWrites(ENOSPC, partialWrite: true)
        let failed = try await relay.post("shop", body: Array("{\"n\":2}".utf8))
        #expect(failed.status == 503)
        #expect(try JSONParser.parse(failed.body)["error"]?.stringValue != nil)
        #expect(failed.header("retry-after") == "1")
        faults.failWrites(nil)
        #expect(try await relay.post("shop", body: Array("{\"n\":3}".utf8)).status == 200)
        #expect(try relay.storedEvents().map { String(decoding: $0.body, as: UTF8.self) } == ["{\"n\":1}", "{\"n\":3}"])
        await relay.stop()
    }

    @Test func concurrentRequestsShareGroupCommitsAndAllLand() async throws {
        // Every fdatasync takes at least 20 ms (a slow disk), so requests that arrive while one
        // commit syncs must wait for the next one: with one sync per request, 160 requests would
        // need 160 syncs.
        let faults = FaultyFileSystem()
        faults.delaySyncs(.milliseconds(20))
        let relay = try await LiveRelay(routes: genericRoutes, journal: { JournalConfiguration(directory: $0, fileSystem: faults) })
        let syncsBefore = faults.syncsStarted
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for client in 0..<16 {
                group.addTask {
                    var mine: [String] = []
                    for i in 0..<10 {
                        let response = try await relay.post("shop", body: Array("{\"c\":\(client),\"i\":\(i)}".utf8))
                        #expect(response.status == 200)
                        mine += try JSONParser.parse(response.body)["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
                    }
                    return mine
                }
            }
            var all: [String] = []
            for try await part in group { all += part }
            return all
        }
        #expect(Set(ids).count == 160)
        #expect(Set(try relay.storedEvents().map(\.id)) == Set(ids))
        let syncs = faults.syncsStarted - syncsBefore
        #expect(syncs > 0 && syncs < 160, "\(syncs) fdatasyncs for 160 requests from 16 concurrent clients: commits were not shared")
        await relay.stop()
    }
    /// Slow-loris: connections that trickle half a request head do not stop other clients and
    /// are closed once they have sent nothing of a request for the idle timeout; a body that
    /// trickles in gets 408 and its connection is closed.
    @Test(.timeLimit(.minutes(2)))
    func stalledClientsAreClosedAndDoNotBlockOthers() async throws {
        let relay = try await LiveRelay(routes: genericRoutes, idleTimeout: .seconds(20), bodyTimeout: .seconds(1))
        let port = try #require(relay.server.ingestPort)
        let stalled = try (0..<50).map { _ in try StalledConnection(port: port, sending: "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Le") }
        for index in 0..<20 {
            let response = try await relay.post("shop", body: Array("{\"id\":\"s-\(index)\"}".utf8))
            #expect(response.status == 200)
        }
        // Served while all 50 stalled connections were still held open (no timing bound that a
        // loaded machine could break: the 20 s idle timeout is long enough for 20 requests even on a loaded machine).
        #expect(stalled.allSatisfy { $0.isOpen }, "other clients were served only after stalled connections were closed")
        var closed = 0
        for connection in stalled {
            if try await connection.waitForClose(within: 40) { closed += 1 }
        }
        #expect(closed == stalled.count, "only \(closed) of \(stalled.count) stalled connections were closed by the relay")
        #expect(try relay.storedEvents().count == 20)

        // A body trickled a byte at a time keeps the connection active, but the whole body has
        // to arrive within the body timeout: 408, nothing stored, and the connection closed
        // rather than read to the end of a body the client may take forever to send.
        let trickle = try StalledConnection(port: port, sending: "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        let answer = await trickle.trickle(byte: UInt8(ascii: " "), every: .milliseconds(200), for: .seconds(4))
        #expect(answer.hasPrefix("HTTP/1.1 408"), "trickled body answered: \(answer.prefix(80))")
        #expect(answer.lowercased().contains("connection: close"))
        #expect(try await trickle.waitForClose(within: 2), "the relay kept the connection of a 408 open")
        // Over the limit by Content-Length: 413 at once, and closed without reading the body.
        let large = try StalledConnection(port: port, sending: "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
        let refused = await large.trickle(byte: UInt8(ascii: " "), every: .milliseconds(100), for: .seconds(2))
        #expect(refused.hasPrefix("HTTP/1.1 413"), "oversized body answered: \(refused.prefix(80))")
        #expect(try await large.waitForClose(within: 2), "the relay kept the connection of a 413 open")
        // Any answer given before the body was read closes, e.g. an unknown source.
        let unknown = try StalledConnection(port: port, sending: "POST /webhooks/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        let notFound = await unknown.trickle(byte: UInt8(ascii: " "), every: .milliseconds(100), for: .seconds(2))
        #expect(notFound.hasPrefix("HTTP/1.1 404"), "unknown source answered: \(notFound.prefix(80))")
        #expect(try await unknown.waitForClose(within: 2), "the relay kept the connection of an early 404 open")
        // A request read to its end keeps its keep-alive connection.
        let complete = try StalledConnection(port: port, sending: "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"id\":\"ka\"}")
        let accepted = await complete.answer(within: 5)
        #expect(accepted.hasPrefix("HTTP/1.1 200") && !accepted.lowercased().contains("connection: close"), "answered: \(accepted.prefix(80))")
        #expect(try await !complete.waitForClose(within: 1), "a fully read request's connection was closed")
        #expect(try relay.storedEvents().count == 21)
        await relay.stop()
    }
}

/// A raw connection that sent part of a request and then nothing more.
final class StalledConnection: Sendable {
    let fd: Int32

    init(port: Int, sending text: String) throws {
        fd = try TestHTTPClient.connect(port: port)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    deinit { close(fd) }

    /// Sends `byte` every `interval` until the peer answers or `duration` passes; returns what
    /// the peer sent (empty if nothing).
    func trickle(byte: UInt8, every interval: Duration, for duration: Duration) async -> String {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                let end = ContinuousClock.now + duration
                var received: [UInt8] = []
                while ContinuousClock.now < end {
                    var one = byte
                    _ = send(fd, &one, 1, Int32(MSG_NOSIGNAL))
                    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let milliseconds = Int32(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
                    if poll(&poller, 1, milliseconds) == 1 {
                        var buffer = [UInt8](repeating: 0, count: 4096)
                        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
                        if n > 0 { received += buffer[0..<n] }
                        break
                    }
                }
                continuation.resume(returning: String(decoding: received, as: UTF8.self))
            }.start()
        }
    }

    /// What the peer sends within `seconds` (one read; empty if nothing).
    func answer(within seconds: Int) async -> String {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = poll(&poller, 1, Int32(seconds * 1000)) == 1 ? buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) } : 0
                continuation.resume(returning: String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self))
            }.start()
        }
    }

    /// Whether the peer has neither closed the connection nor sent anything yet.
    var isOpen: Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, 0) == 0
    }

    /// True when the peer closed the connection (EOF or reset) within `seconds`.
    func waitForClose(within seconds: Int) async throws -> Bool {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, Int32(seconds * 1000)) == 1 else { return continuation.resume(returning: false) }
                var byte: UInt8 = 0
                continuation.resume(returning: recv(fd, &byte, 1, 0) <= 0)
            }.start()
        }
    }
}
