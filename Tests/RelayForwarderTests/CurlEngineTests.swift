import Foundation
import Logging
@testable import RelayForwarder
import RelayTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

func makeEngine() throws -> CurlEngine {
    try CurlEngine(logger: Logger(label: "curl-test", factory: { _ in SwiftLogNoOpLogHandler() }))
}


@Suite(.serialized) struct CurlEngineTests {
    @Test func postsBodyAndHeadersAndReadsTheAnswer() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        let body = Array(String(repeating: "{\"k\":\"v\"}", count: 300).utf8)  // over 1 KiB: no Expect round trip
        let result = await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/hooks", headers: [("content-type", "application/json"), ("webhook-id", "evt_1")], body: body))
        let response = try result.get()
        #expect(response.status == 204)
        let seen = try #require(downstream.requests.first)
        #expect(seen.path == "/hooks")
        #expect(seen.body == body)
        #expect(seen.header("webhook-id") == "evt_1")
        #expect(seen.header("content-type") == "application/json")
        #expect(seen.header("expect") == nil)
        await engine.shutdown()
        await downstream.stop()
    }

    @Test func statusRetryAfterAndBoundedCapture() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        #expect(try await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/status/503")).get().status == 503)
        #expect(try await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/status/410")).get().status == 410)
        let limited = try await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/retry-after/7")).get()
        #expect(limited.status == 503)
        #expect(limited.retryAfter == "7")
        let big = try await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/big")).get()
        #expect(big.status == 200)
        #expect(big.body.count == TransportResponse.maxBody)
        #expect(big.headers.count == TransportResponse.maxHeaders)
        await engine.shutdown()
        await downstream.stop()
    }

    @Test func timeoutAndConnectionRefusedAreClassified() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        let started = Date()
        // The downstream would answer after 30 s: a failure well before that is the 200 ms timeout.
        let slow = await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/slow/30000", timeoutMillis: 200, connectTimeoutMillis: 200))
        guard case .failure(let timeout) = slow else { Issue.record("expected a timeout, got \(slow)"); return }
        #expect(timeout.kind == .timeout)
        #expect(Date().timeIntervalSince(started) < 15)
        let refused = await engine.send(OutboundRequest(url: "http://127.0.0.1:\(unusedLoopbackPort())/x"))
        guard case .failure(let connect) = refused else { Issue.record("expected connection refused, got \(refused)"); return }
        #expect(connect.kind == .connect)
        await engine.shutdown()
        await downstream.stop()
    }

    @Test func cancellationResumesPromptlyAndOnce() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        let task = Task { await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/slow/30000")) }
        // Cancel only once the request is in flight: the downstream has it and will hold it 30 s.
        try #require(await downstream.wait(timeout: .seconds(30)) { $0.count == 1 }, "the request never reached the downstream")
        let started = Date()
        task.cancel()
        let result = await task.value
        guard case .failure(let failure) = result else { Issue.record("expected cancellation, got \(result)"); return }
        #expect(failure.kind == .cancelled)
        #expect(Date().timeIntervalSince(started) < 15, "resumed by the cancellation, not by the 30 s answer")
        #expect(engine.inFlight == 0)
        // An already-cancelled task never reaches the network.
        let precancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/slow/5000"))
        }
        if case .failure(let early) = await precancelled.value { #expect(early.kind == .cancelled) } else { Issue.record("expected cancellation") }
        await engine.shutdown()
        // After shutdown every send fails at once.
        if case .failure(let stopped) = await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/")) {
            #expect(stopped.kind == .cancelled)
        } else {
            Issue.record("a stopped engine sent a request")
        }
        await downstream.stop()
    }

    /// `start` without a task: many requests started at once each complete exactly once with
    /// their own answer; one cut short completes as cancelled, long before its answer; after
    /// shutdown a start completes at once as cancelled.
    @Test func startedTransfersCompleteOnceAndCanBeCutShort() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        let results = Mutex<[Int: [Result<TransportResponse, TransportFailure>]]>([:])
        for index in 0..<50 {
            _ = engine.start(OutboundRequest(url: "http://127.0.0.1:\(port)/status/\(index % 2 == 0 ? 204 : 503)")) { result in
                results.withLock { $0[index, default: []].append(result) }
            }
        }
        #expect(await eventually(timeout: .seconds(30)) { results.withLock { $0.count } == 50 })
        for (index, answers) in results.withLock({ $0 }) {
            #expect(answers.count == 1, "request \(index) completed \(answers.count) times")
            #expect((try? answers.first?.get().status) == (index % 2 == 0 ? 204 : 503))
        }
        let slow = Mutex<[Result<TransportResponse, TransportFailure>]>([])
        let cancel = engine.start(OutboundRequest(url: "http://127.0.0.1:\(port)/slow/30000")) { result in slow.withLock { $0.append(result) } }
        try #require(await downstream.wait(timeout: .seconds(30)) { $0.count == 51 }, "the slow request never reached the downstream")
        let started = Date()
        cancel()
        cancel()  // a second cut changes nothing
        #expect(await eventually(timeout: .seconds(10)) { slow.withLock { !$0.isEmpty } })
        #expect(Date().timeIntervalSince(started) < 10, "completed by the cut, not by the 30 s answer")
        let cut = slow.withLock { $0 }
        #expect(cut.count == 1)
        if case .failure(let failure) = cut.first { #expect(failure.kind == .cancelled) } else { Issue.record("expected cancellation, got \(cut)") }
        #expect(engine.inFlight == 0)
        await engine.shutdown()
        let stopped = Mutex<[Result<TransportResponse, TransportFailure>]>([])
        _ = engine.start(OutboundRequest(url: "http://127.0.0.1:\(port)/")) { result in stopped.withLock { $0.append(result) } }
        let afterStop = stopped.withLock { $0 }
        #expect(afterStop.count == 1, "a stopped engine completes at once")
        if case .failure(let failure) = afterStop.first { #expect(failure.kind == .cancelled) } else { Issue.record("a stopped engine sent a request") }
        await downstream.stop()
    }

    /// Connections to a destination outlive a lull: after 16 transfers at once and then one at a
    /// time, the next 16 reuse the 16 open connections. libcurl's default cache keeps four idle
    /// connections per transfer still running, so the lull used to close twelve of them (seen by
    /// the kernel as this side's sockets in TIME-WAIT towards the downstream's port).
    @Test func connectionsStayOpenThroughALull() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        // A socket left by an earlier holder of this port (another suite's downstream) is not ours.
        let before = try closedConnections(towardsPort: port)
        let engine = try makeEngine()
        func burst() async -> Int {
            await withTaskGroup(of: Int.self) { group in
                for _ in 0..<16 {
                    // 100 ms each, all at once: sixteen connections.
                    group.addTask { (try? await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/slow/100")).get().status) == 204 ? 1 : 0 }
                }
                return await group.reduce(0, +)
            }
        }
        #expect(await burst() == 16)
        for _ in 0..<3 { #expect(try await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)/ok")).get().status == 204) }
        #expect(await burst() == 16)
        #expect(try closedConnections(towardsPort: port) <= before)
        await engine.shutdown()
        await downstream.stop()
    }

    @Test(.timeLimit(.minutes(2)))
    func thousandsOfRequestsLeaveNoTransferInFlightOrAlive() async throws {
        let downstream = TestDownstream()
        let port = try await downstream.start()
        let engine = try makeEngine()
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: 2048)
        func burst(_ count: Int) async -> Int {
            await withTaskGroup(of: Int.self) { group in
                for lane in 0..<32 {
                    group.addTask {
                        var ok = 0
                        for i in stride(from: lane, to: count, by: 32) {
                            let path = i % 10 == 0 ? "/status/503" : "/ok"
                            if case .success(let response) = await engine.send(OutboundRequest(url: "http://127.0.0.1:\(port)\(path)", body: body)),
                               response.status == (i % 10 == 0 ? 503 : 204) {
                                ok += 1
                            }
                        }
                        return ok
                    }
                }
                return await group.reduce(0, +)
            }
        }
        // Leaks are checked by count, not by RSS: RSS is the whole test process's, shared with
        // suites running in parallel (the relay's memory is measured by scripts/bench instead).
        #expect(await burst(2000) == 2000)
        #expect(await burst(4000) == 4000)
        #expect(engine.inFlight == 0)
        // The engine thread drops its last reference just after resuming the caller: allow it a moment.
        #expect(await eventually(timeout: .seconds(10)) { engine.liveTransfers == 0 }, "every transfer was released: \(engine.liveTransfers) alive")
        await engine.shutdown()
        await downstream.stop()
    }
}

/// Sockets of this machine in TIME-WAIT whose peer is 127.0.0.1:`port` (closed by this side), from
/// /proc/net/tcp: its addresses are hexadecimal, its state 06 is TIME-WAIT.
func closedConnections(towardsPort port: Int) throws -> Int {
    let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
    let peer = "0100007F:" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ")
        return fields.count > 3 && fields[2] == peer && fields[3] == "06"
    }.count
}

@Suite struct StatusLineTests {
    @Test func statusCodesAndMalformedLinesNeverTrap() {
        func code(_ line: String) -> Int {
            Array(line.utf8).withUnsafeBytes { CurlTransfer.statusCode($0[0..<$0.count]) }
        }
        #expect(code("HTTP/1.1 200 OK") == 200)
        #expect(code("HTTP/2 204") == 204)
        #expect(code("HTTP/1.1 503 Service Unavailable") == 503)
        for bad in ["HTTP/1: 20", "HTTP/1.1 20", "HTTP/1.1", "HTTP/1.1 ", "HTTP/1.1 2x0 OK", "HTTP/1.1 2000", "HTTP/1.1 20 OK"] {
            #expect(code(bad) == 0, "\(bad)")
        }
    }
}
