import Foundation
import RelayCore

#if canImport(Glibc)
import Glibc
#endif

/// A real headless Chromium driven through WebDriver (Debian's `chromium` and `chromium-driver`,
/// installed by scripts/test). `chromedriver` runs as a child on a loopback port; `quit()` ends
/// the session and that child (by its PID). Run as root, Chromium needs `--no-sandbox`.
public final class Browser: @unchecked Sendable {
    // @unchecked: every stored property is set once in init.
    private let driver: Process
    private let port: Int
    private let session: String

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts chromedriver and a browser session; fails clearly when either is missing.
    public static func start(width: Int = 1280, height: Int = 900) async throws -> Browser {
        let driverPath = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let driverPath else { throw Failure(description: "chromedriver is not installed: run the tests with scripts/test, which installs chromium and chromium-driver") }
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let chromium else { throw Failure(description: "chromium is not installed: run the tests with scripts/test") }
        // A free loopback port, handed to chromedriver to bind.
        let port = unusedLoopbackPort()
        releaseReservedPort(port)
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: driverPath)
        driver.arguments = ["--port=\(port)"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        let ready = await eventually(timeout: .seconds(20)) { (try? await TestHTTPClient.send(port: port, path: "/status", timeout: 2))?.status == 200 }
        guard ready else {
            driver.terminate()
            throw Failure(description: "chromedriver did not answer on port \(port)")
        }
        let capabilities = """
            {"capabilities":{"alwaysMatch":{"browserName":"chrome","goog:chromeOptions":{"binary":\(JSONWriter.quote(chromium)),
            "args":["--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage","--no-first-run","--window-size=\(width),\(height)"]},
            "goog:loggingPrefs":{"browser":"ALL","performance":"ALL"}}}}
            """
        let created: JSONValue
        do {
            created = try await call(port: port, "POST", "/session", body: capabilities)
        } catch {
            driver.terminate()
            driver.waitUntilExit()
            throw error
        }
        guard let session = created["sessionId"]?.stringValue else {
            driver.terminate()
            throw Failure(description: "no WebDriver session: \(JSONWriter.serialize(created))")
        }
        return Browser(driver: driver, port: port, session: session)
    }

    private init(driver: Process, port: Int, session: String) {
        (self.driver, self.port, self.session) = (driver, port, session)
    }

    /// One WebDriver command: its `value`, or a failure with WebDriver's message.
    @discardableResult
    private static func call(port: Int, _ method: String, _ path: String, body: String? = nil) async throws -> JSONValue {
        let response = try await TestHTTPClient.send(
            port: port, method: method, path: path, headers: body == nil ? [] : [("Content-Type", "application/json")], body: Array((body ?? "").utf8), timeout: 60
        )
        let json = try JSONParser.parse(response.body)
        let value = json["value"] ?? .null
        guard response.status == 200 else {
            throw Failure(description: "WebDriver \(method) \(path): \(response.status) \(value["message"]?.stringValue ?? JSONWriter.serialize(value))")
        }
        return value
    }

    @discardableResult
    private func call(_ method: String, _ path: String, body: String? = nil) async throws -> JSONValue {
        try await Self.call(port: port, method, "/session/\(session)" + path, body: body)
    }

    public func go(_ url: String) async throws {
        try await call("POST", "/url", body: "{\"url\":\(JSONWriter.quote(url))}")
    }

    /// Runs `script` (a function body; `arguments[0]`… are `args`) in the page and returns its value.
    @discardableResult
    public func run(_ script: String, _ args: [String] = []) async throws -> JSONValue {
        try await call("POST", "/execute/sync", body: "{\"script\":\(JSONWriter.quote(script)),\"args\":[\(args.map(JSONWriter.quote).joined(separator: ","))]}")
    }

    /// The text of the page's main area.
    public func text(_ selector: String = "#app") async throws -> String {
        try await run("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", [selector]).stringValue ?? ""
    }

    private func element(_ selector: String) async throws -> String {
        let found = try await call("POST", "/element", body: "{\"using\":\"css selector\",\"value\":\(JSONWriter.quote(selector))}")
        guard let id = found.objectValue?.first?.value.stringValue else { throw Failure(description: "no element \(selector)") }
        return id
    }

    /// Waits (bounded) for an element, then clicks it as a user would.
    public func click(_ selector: String, timeout: Duration = .seconds(20)) async throws {
        try await waitFor(selector, timeout: timeout)
        try await call("POST", "/element/\(try await element(selector))/click", body: "{}")
    }

    /// Types into a field (after clearing it), key by key.
    public func type(_ selector: String, _ text: String) async throws {
        try await waitFor(selector)
        // A page that re-renders (a list refreshing itself) can replace the element between
        // finding it and typing: find it again, a few times, as WebDriver clients do.
        for attempt in 1...3 {
            do {
                let id = try await element(selector)
                try await call("POST", "/element/\(id)/clear", body: "{}")
                try await call("POST", "/element/\(id)/value", body: "{\"text\":\(JSONWriter.quote(text))}")
                return
            } catch let error as Failure where attempt < 3 && error.description.contains("stale element") {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Waits (bounded) until an element matching `selector` exists; fails if it never does.
    public func waitFor(_ selector: String, timeout: Duration = .seconds(20)) async throws {
        let found = await eventually(timeout: timeout) { (try? await self.run("return document.querySelector(arguments[0]) !== null", [selector]))?.boolValue == true }
        guard found else { throw Failure(description: "no element \(selector) within \(timeout); page: \((try? await text()) ?? "")") }
    }

    /// Waits (bounded) until the text of `selector` contains `needle`.
    public func waitForText(_ needle: String, in selector: String = "#app", timeout: Duration = .seconds(20)) async throws {
        let found = await eventually(timeout: timeout) { ((try? await self.text(selector)) ?? "").contains(needle) }
        guard found else {
            throw Failure(description: "\"\(needle)\" did not appear in \(selector) within \(timeout); it shows: \((try? await text(selector)) ?? ""); page: \((try? await text()) ?? ""); browser log: \((try? await log()) ?? [])")
        }
    }

    /// Presses keys as a user would (WebDriver key actions): `"\u{E004}"` is Tab, `"\u{E007}"` Enter.
    public func press(_ keys: [String]) async throws {
        let actions = keys.flatMap { ["{\"type\":\"keyDown\",\"value\":\(JSONWriter.quote($0))}", "{\"type\":\"keyUp\",\"value\":\(JSONWriter.quote($0))}"] }
        try await call("POST", "/actions", body: "{\"actions\":[{\"type\":\"key\",\"id\":\"keyboard\",\"actions\":[\(actions.joined(separator: ","))]}]}")
    }

    /// Resizes the window (a phone's width, say).
    public func resize(width: Int, height: Int) async throws {
        try await call("POST", "/window/rect", body: "{\"width\":\(width),\"height\":\(height)}")
    }

    public func screenshot() async throws -> [UInt8] {
        let value = try await call("GET", "/screenshot")
        guard let text = value.stringValue, let data = Data(base64Encoded: text) else { throw Failure(description: "no screenshot") }
        return [UInt8](data)
    }

    /// Every URL the page loaded (documents, scripts, styles, fetches), from the Resource Timing API.
    public func requestedURLs() async throws -> [String] {
        let value = try await run("return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))")
        return value.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Every URL the browser asked the network for since the last call (DevTools'
    /// `Network.requestWillBeSent`, from chromedriver's performance log): requests a page's
    /// policy then blocked included.
    public func networkRequests() async throws -> [String] {
        let value = try await call("POST", "/se/log", body: "{\"type\":\"performance\"}")
        return value.arrayValue?.compactMap { entry -> String? in
            guard let text = entry["message"]?.stringValue, let message = try? JSONParser.parse(Array(text.utf8))["message"],
                  message["method"]?.stringValue == "Network.requestWillBeSent" else { return nil }
            return message["params"]?["request"]?["url"]?.stringValue
        } ?? []
    }

    /// The browser's console and network messages since the last call.
    public func log() async throws -> [String] {
        let value = try await call("POST", "/se/log", body: "{\"type\":\"browser\"}")
        return value.arrayValue?.compactMap { entry in entry["message"]?.stringValue.map { "\(entry["level"]?.stringValue ?? ""): \($0)" } } ?? []
    }

    /// Ends the session and chromedriver (its browser with it).
    public func quit() async {
        _ = try? await call("DELETE", "")
        if driver.isRunning { driver.terminate() }
        let exited = await eventually(timeout: .seconds(10)) { !self.driver.isRunning }
        if !exited { kill(driver.processIdentifier, SIGKILL) }
    }
}
