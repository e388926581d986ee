import Foundation
import RelayCore
import RelayTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SinkTests {
    @Test(.timeLimit(.minutes(1)))
    func sinkAnswersFailsDelaysAndLogsOneJSONLinePerRequest() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let log = dir.path + "/sink.jsonl"
        let sink = try RelayProcess(arguments: ["sink", "--listen", "127.0.0.1:0", "--status", "202", "--fail-rate", "0.5", "--delay-ms", "20", "--log", log], logPath: dir.path + "/sink.log")
        let port = try await sink.waitForPort(message: "sink listening")
        var statuses: [Int] = []
        let started = ContinuousClock.now
        for i in 0..<40 {
            let response = try await TestHTTPClient.send(
                port: port, method: "POST", path: "/hooks/\(i)",
                headers: [("webhook-id", "evt_\(i)"), ("x-relay-attempt", "2"), ("x-relay-replay", "1")], body: Array("{\"n\":\(i)}".utf8)
            )
            statuses.append(response.status)
        }
        #expect(ContinuousClock.now - started >= .milliseconds(800), "every answer waited --delay-ms 20")
        #expect(Set(statuses).isSubset(of: [202, 503]))
        #expect(statuses.contains(202) && statuses.contains(503), "--fail-rate 0.5 fails some, not all: \(statuses)")
        sink.signal(SIGTERM)
        #expect(await sink.waitForExit() == 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 40)
        let first = try JSONParser.parse(Array(lines[0].utf8))
        #expect(first["path"]?.stringValue == "/hooks/0")
        #expect(first["webhook_id"]?.stringValue == "evt_0")
        #expect(first["attempt"]?.doubleValue == 2)
        #expect(first["replay"]?.boolValue == true)
        #expect(first["body"]?.stringValue == "{\"n\":0}")
        #expect(first["body_sha256"]?.stringValue == Digest.sha256Hex(Array("{\"n\":0}".utf8)))
        #expect(first["time"]?.stringValue?.hasSuffix("Z") == true)
        let logged = try lines.map { try JSONParser.parse(Array($0.utf8))["status"]?.doubleValue.map(Int.init) ?? 0 }
        #expect(logged == statuses, "the log records the status each request was answered")
    }
}
