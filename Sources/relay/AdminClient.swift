import ArgumentParser
import CCurlShim
import Foundation
import RelayCore

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

    final class Buffer {
        var bytes: [UInt8] = []
    }

    /// Sends the request and returns the parsed JSON of a 2xx answer; anything else fails with one line.
    func request(_ path: String, body: [UInt8]? = nil) throws -> JSONValue {
        _ = ccurl_global_init()
        guard let easy = ccurl_easy_init() else { throw fail("\(command): cannot initialise libcurl") }
        defer { ccurl_easy_cleanup(easy) }
        var headers: UnsafeMutableRawPointer?
        if let token { headers = ccurl_slist_append(headers, "Authorization: Bearer \(token)") }
        if body != nil { headers = ccurl_slist_append(headers, "Content-Type: application/json") }
        defer { if let headers { ccurl_slist_free_all(headers) } }
        let buffer = Buffer()
        let opaque = Unmanaged.passUnretained(buffer).toOpaque()
        var code = ccurl_easy_set_defaults(easy)
        if code == 0 { code = ccurl_easy_set_url(easy, base + path) }
        if code == 0, let headers { code = ccurl_easy_set_headers(easy, headers) }
        if code == 0, let body { code = body.withUnsafeBytes { ccurl_easy_set_post_body(easy, $0.baseAddress, $0.count) } }
        if code == 0 { code = ccurl_easy_set_timeouts(easy, 60_000, 3_000) }
        if code == 0 { code = ccurl_easy_set_write_callback(easy, adminWriteCallback, opaque) }
        if code == 0 { code = withExtendedLifetime(buffer) { ccurl_easy_perform(easy) } }
        guard code == 0 else {
            throw fail("\(command): cannot reach the relay at \(base): \(String(cString: ccurl_easy_strerror(code)))")
        }
        let status = ccurl_easy_get_response_code(easy)
        let parsed = try? JSONParser.parse(buffer.bytes)
        guard (200..<300).contains(status) else {
            let message = parsed?["error"]?.stringValue ?? String(decoding: buffer.bytes.prefix(300), as: UTF8.self)
            if status == 401 {
                throw fail("\(command): the relay refused the admin request (401): \(message)\(token == nil ? " (RELAY_ADMIN_TOKEN is not set)" : "")")
            }
            throw fail("\(command): the relay answered \(status): \(message)")
        }
        guard let parsed else { throw fail("\(command): the relay's answer is not JSON") }
        return parsed
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

    /// A value for a query string or a path segment (`&`, `=`, `+`, `?` and `#` escaped too).
    static func percentEncode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?#"))) ?? text
    }
}

private let adminWriteCallback: ccurl_data_callback = { data, size, count, userdata in
    let length = size * count
    if let data, let userdata {
        let buffer = Unmanaged<AdminClient.Buffer>.fromOpaque(userdata).takeUnretainedValue()
        buffer.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    }
    return length
}
