import Synchronization
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over a blocking loopback socket, for tests and tools: one request
/// per connection (`Connection: close`), each on its own thread, off Swift's cooperative pool.
public enum TestHTTPClient {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sends one request to `127.0.0.1:port`. `timeout` bounds connect, send and receive.
    public static func send(
        port: Int, method: String = "GET", path: String, headers: [(String, String)] = [], body: [UInt8] = [],
        host: String = "127.0.0.1", timeout: Double = 10
    ) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            // A thread of its own: blocking calls on Dispatch's pool starve it on Linux, where
            // it adds a thread for a blocked worker only about once a second.
            let thread = Thread {
                continuation.resume(with: Result { try sendBlocking(host: host, port: port, method: method, path: path, headers: headers, body: body, timeout: timeout) })
            }
            thread.start()
        }
    }

    /// A blocking TCP socket connected to `host:port` (IPv4); the caller closes it. `timeout`,
    /// if given, bounds each send and receive.
    public static func connect(host: String = "127.0.0.1", port: Int, timeout: Double? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        if let timeout {
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw Failure(description: "bad host \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            throw Failure(description: "connect to \(host):\(port) failed: errno \(error)")
        }
        return fd
    }

    static func sendBlocking(host: String, port: Int, method: String, path: String, headers: [(String, String)], body: [UInt8], timeout: Double) throws -> Response {
        let fd = try connect(host: host, port: port, timeout: timeout)
        defer { close(fd) }

        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        var hasLength = false
        for (name, value) in headers {
            head += "\(name): \(value)\r\n"
            if name.lowercased() == "content-length" || name.lowercased() == "transfer-encoding" { hasLength = true }
        }
        if !hasLength && (method != "GET" || !body.isEmpty) { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                // The server may answer (e.g. 413) and close before reading the whole body.
                break
            }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if received.isEmpty { throw Failure(description: "receive failed: errno \(errno)") }
                break
            }
            if n == 0 { break }
            received.append(contentsOf: chunk[0..<n])
            // A server that keeps the connection open despite `Connection: close` (chromedriver)
            // has answered once its declared length (or last chunk) is in.
            if isComplete(received) { break }
        }
        return try parse(received)
    }

    /// Whether `bytes` hold a whole response: its head, then Content-Length bytes or a last chunk.
    static func isComplete(_ bytes: [UInt8]) -> Bool {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let headerEnd = bytes.indices.first(where: { bytes.count - $0 >= 4 && bytes[$0..<($0 + 4)].elementsEqual(separator) }) else { return false }
        let head = String(decoding: bytes[0..<headerEnd], as: UTF8.self).lowercased()
        let bodyCount = bytes.count - headerEnd - 4
        for line in head.components(separatedBy: "\r\n") {
            if line.hasPrefix("content-length:"), let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                return bodyCount >= length
            }
            if line.hasPrefix("transfer-encoding:") && line.contains("chunked") {
                return bytes.suffix(5).elementsEqual([48, 13, 10, 13, 10])
            }
        }
        return false
    }

    static func parse(_ bytes: [UInt8]) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headerEnd = bytes.indices.first(where: { bytes.count - $0 >= 4 && Array(bytes[$0..<($0 + 4)]) == separator }) else {
            throw Failure(description: "no HTTP response (\(bytes.count) bytes)")
        }
        let headText = String(decoding: bytes[0..<headerEnd], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure(description: "bad status line") }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(bytes[(headerEnd + 4)...])
        if headers.contains(where: { $0.name.lowercased() == "transfer-encoding" && $0.value.lowercased().contains("chunked") }) {
            body = try dechunk(body)
        } else if let length = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }), body.count > length {
            body = Array(body[0..<length])
        }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = (index..<(bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw Failure(description: "bad chunk") }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { throw Failure(description: "short chunk") }
            out.append(contentsOf: bytes[start..<(start + size)])
            index = start + size + 2
        }
        return out
    }
}

/// A loopback port nothing listens on: bound to port 0, read, closed (tests of refused
/// connections, or a fixed port for a server started later).
public func unusedLoopbackPort() -> Int {
    let (fd, port) = bindLoopbackPortZero()
    // Kept bound but never listening: connections to it are refused, and no other server of
    // this test process (tests run in parallel) can take the port meanwhile. A test that later
    // starts its own server there releases it first (`TestDownstream.start(port:)`).
    reservedPorts.withLock { $0[port] = fd }
    return port
}

private let reservedPorts = Mutex<[Int: Int32]>([:])

/// A TCP socket bound to `127.0.0.1:0`, and the port it got (0 if binding failed).
private func bindLoopbackPortZero() -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return (fd, 0) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else { return (fd, 0) }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// Frees a port `unusedLoopbackPort()` holds, so a server can bind it.
public func releaseReservedPort(_ port: Int) {
    if let fd = reservedPorts.withLock({ $0.removeValue(forKey: port) }) { close(fd) }
}

/// A loopback port that accepts TCP connections (the kernel completes them) and never answers:
/// a server that hangs, or a network that drops everything after the handshake.
public final class SilentListener: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws {
        let (fd, port) = bindLoopbackPortZero()
        guard fd >= 0, port > 0, listen(fd, 64) == 0 else {
            if fd >= 0 { close(fd) }
            throw TestHTTPClient.Failure(description: "socket, bind or listen: \(errno)")
        }
        self.port = port
        self.fd = fd
    }

    deinit { close(fd) }
}
