import Foundation
import RelayCore
import RelayJournal
import RelayTesting
import Testing

/// Runs the built `relay` binary to completion and returns (exit status, stdout, stderr). The
/// wait is on a thread of its own: a test blocking one of the few cooperative threads while the
/// child talks to a relay in this process (`replay --wait`) would stall that relay, and every
/// other test, until the child gave up.
func runRelay(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, out: String, err: String) {
    try await runOffPool("relay-cli") { try runRelayBlocking(arguments, environment: environment) }
}

private func runRelayBlocking(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: RelayProcess.binaryPath())
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

@Suite struct CLITests {
    static let routes = """
    { "sources": { "fastspring": { "provider": "fastspring", "secret": "env:FS_SECRET" } },
      "destinations": { "orders": { "url": "http://127.0.0.1:9/orders" }, "alerts": { "url": "http://127.0.0.1:9/alerts" } },
      "routes": [ { "name": "all-orders", "match": { "type": "order.*" }, "to": ["orders"] },
                  { "name": "failed-to-alerts", "match": { "status": "FAILED" }, "to": ["alerts"] } ] }
    """

    @Test func routesTestOnTheFastSpringBatch() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = try dir.write("routes.json", Self.routes)
        // No FS_SECRET in the environment: routes test checks no signature, so it still runs.
        let result = try await runRelay(["routes", "test", "--config", config, "--source", "fastspring", "--json", Fixtures.directory + "/fastspring-batch.json"])
        #expect(result.status == 0, "stderr: \(result.err)")
        let events = try JSONParser.parse(Array(result.out.utf8))["events"]?.arrayValue ?? []
        #expect(events.count == 3)
        #expect(events.map { $0["routes"]?.arrayValue?.contains(.string("all-orders")) } == [true, true, true])
        #expect(events.map { $0["routes"]?.arrayValue?.contains(.string("failed-to-alerts")) } == [false, false, true])
        #expect(events.map { $0["status"]?.stringValue } == ["COMPLETED", "COMPLETED", "FAILED"])
        let human = try await runRelay(["routes", "test", "--config", config, "--source", "fastspring", Fixtures.directory + "/fastspring-batch.json"])
        #expect(human.status == 0)
        #expect(human.out.contains("route              failed-to-alerts -> alerts"))

        let unknown = try await runRelay(["routes", "test", "--config", config, "--source", "nope", Fixtures.directory + "/fastspring-batch.json"])
        #expect(unknown.status != 0)
        #expect(unknown.err.split(separator: "\n").count == 1)
        #expect(unknown.err.contains("unknown source \"nope\""))
    }

    @Test func routesCheckListsEveryErrorAndExits1() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let good = try dir.write("routes.json", Self.routes)
        let ok = try await runRelay(["routes", "check", "--config", good], environment: ["FS_SECRET": "s"])
        #expect(ok.status == 0)
        #expect(ok.out.contains("ok"))
        let missingEnv = try await runRelay(["routes", "check", "--config", good], environment: ["FS_SECRET": ""])
        #expect(missingEnv.status == 1)
        #expect(missingEnv.err == "routes.json: sources.fastspring.secret: environment variable FS_SECRET is not set\n")
        let bad = try dir.write("bad.json", Self.routes.replacingOccurrences(of: "\"alerts\"]", with: "\"alertz\"]").replacingOccurrences(of: "order.*", with: "order.[x]"))
        let result = try await runRelay(["routes", "check", "--config", bad], environment: ["FS_SECRET": "s"])
        #expect(result.status == 1)
        #expect(result.err.split(separator: "\n").map(String.init) == [
            "bad.json: routes[0].match.type: bad glob \"order.[x]\": '[' is not supported in globs (only * and ? are wildcards; escape it as \\[)",
            "bad.json: routes[1].to[0]: unknown destination \"alertz\" (known: alerts, orders)",
        ])
    }

    @Test func journalVerifyAndVersion() async throws {
        let version = try await runRelay(["--version"])
        #expect(version.status == 0)
        #expect(version.out.contains("relay "))
        #expect(version.out.contains("libcurl/"))

        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let journal = try Journal.open(JournalConfiguration(directory: dir.path + "/journal"), logger: makeTestLogger())
        for i in 0..<5 { _ = try await journal.append(JournalEntry(type: .event, payload: Array("record \(i)".utf8))) }
        await journal.close()
        let intact = try await runRelay(["journal", "verify", "--data", dir.path])
        #expect(intact.status == 0)
        #expect(intact.out.contains("intact: 1 segments, 5 records"))
        let segment = dir.path + "/journal/" + JournalFormat.segmentName(base: 1)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: segment))
        try handle.seek(toOffset: 20 + 28 + 25)  // in the payload of the second record (records are 28 bytes)
        try handle.write(contentsOf: Data([0xFF]))
        try handle.close()
        let damaged = try await runRelay(["journal", "verify", "--data", dir.path])
        #expect(damaged.status == 1)
        #expect(damaged.out.contains("BAD at offset 48: checksum mismatch"))
        let missing = try await runRelay(["journal", "verify", "--data", dir.path + "/nothing"])
        #expect(missing.status != 0)
        #expect(missing.err.hasPrefix("relay: journal verify:"))
    }

    /// `relay serve --event-loops N` runs the shared event loops on N threads (several
    /// instances on one machine each take their share of the cores); out of range is refused
    /// with a line naming the option, before anything starts.
    @Test(.timeLimit(.minutes(1)))
    func eventLoopsSetsTheLoopThreadsAndRefusesOutOfRange() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("routes.json", #"{ "sources": { "shop": { "provider": "generic" } } }"#)
        let serve = ["serve", "--config", dir.path + "/routes.json", "--data", dir.path + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
        for bad in ["0", "257", "two"] {
            let result = try await runRelay(serve + ["--event-loops", bad])
            #expect(result.status == 64, "--event-loops \(bad): exit \(result.status)")
            #expect(result.err.split(separator: "\n").first?.contains("--event-loops") == true, "\(result.err)")
        }
        func loopThreads(_ pid: Int32) throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").filter { task in
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
                return comm.hasPrefix("NIO-SGLTN")
            }.count
        }
        for loops in [1, 3] {
            let process = try RelayProcess(arguments: serve + ["--event-loops", "\(loops)"], logPath: dir.path + "/relay-\(loops).log")
            let port = try await process.waitForPort(message: "ingest listening")
            let response = try await TestHTTPClient.send(port: port, method: "POST", path: "/webhooks/shop", body: Array(#"{"id":"e\#(loops)"}"#.utf8))
            #expect(response.status == 200)
            #expect(try loopThreads(process.pid) == loops, "relay log:\n\(process.log)")
            process.signal(SIGTERM)
            #expect(await process.waitForExit() == 0)
        }
    }
}
