import NIOCore
import RelayCore

#if canImport(Glibc)
import Glibc
#endif

/// One answer of the ingest listener, before it is encoded: a status, a content type, a body and
/// the optional `Retry-After`. Encoded as bytes by `encode(into:…)`, the same bytes the
/// Hummingbird listener before it wrote (header order included), so clients see no change.
struct IngestAnswer: Sendable {
    var status: Int
    var contentType: String
    var body: String
    var retryAfter: Int? = nil
    /// A `HEAD` request: the same headers, no body.
    var omitBody = false

    static func json(_ json: String, status: Int = 200) -> IngestAnswer {
        IngestAnswer(status: status, contentType: "application/json", body: json)
    }

    static func error(_ status: Int, _ message: String, retryAfter: Int? = nil) -> IngestAnswer {
        IngestAnswer(status: status, contentType: "application/json", body: JSONWriter.error(message), retryAfter: retryAfter)
    }

    static let healthy = json("{\"status\":\"ok\"}")
    static let notFound = error(404, "Not Found")

    /// `HTTP/1.1 STATUS REASON`, `Content-Type`, `Content-Length`, `Retry-After`, `Date` and,
    /// when the connection is closed after it, `Connection: close`.
    func encode(into buffer: inout ByteBuffer, date: String, close: Bool) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(Self.reasonPhrase(status))
        buffer.writeStaticString("\r\nContent-Type: ")
        buffer.writeString(contentType)
        buffer.writeStaticString("\r\nContent-Length: ")
        buffer.writeString(String(body.utf8.count))
        if let retryAfter {
            buffer.writeStaticString("\r\nRetry-After: ")
            buffer.writeString(String(retryAfter))
        }
        buffer.writeStaticString("\r\nDate: ")
        buffer.writeString(date)
        if close { buffer.writeStaticString("\r\nConnection: close") }
        buffer.writeStaticString("\r\n\r\n")
        if !omitBody { buffer.writeString(body) }
    }

    /// The reason phrases of the statuses the listener answers with (RFC 9110's).
    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 202: "Accepted"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 413: "Payload Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status \(status)"
        }
    }

    /// What the HTTP parser's refusals are answered with (no JSON body: the one exception to the
    /// JSON error rule, as before).
    static let malformed: StaticString = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted at most once a second per
/// connection.
struct HTTPDate {
    private var second: Int = -1
    private var text = ""

    mutating func now() -> String {
        var seconds = time(nil)
        guard seconds != second else { return text }
        second = seconds
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        text = "\(days[Int(parts.tm_wday) % 7]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon) % 12]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        return text
    }
}
