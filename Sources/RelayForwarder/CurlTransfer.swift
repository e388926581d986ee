internal import CCurlShim
import Foundation
import Synchronization

/// One request in flight in the `CurlEngine`: the easy handle, its header list, the bounded
/// response capture and the continuation to resume.
///
/// `@unchecked Sendable`: it is created by the caller and handed to the engine thread through
/// the engine's mutex; from then on only the engine thread touches its mutable state (libcurl
/// calls the callbacks on that thread, inside `curl_multi_perform`). `finish` runs only on the
/// engine thread and the transfer leaves the engine's table when it does, so the continuation
/// is resumed exactly once.
final class CurlTransfer: @unchecked Sendable {
    let id: UInt64
    let request: OutboundRequest
    private var continuation: CheckedContinuation<Result<TransportResponse, TransportFailure>, Never>?
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutableRawPointer?

    private(set) var status = 0
    private(set) var headers: [(name: String, value: String)] = []
    private(set) var body: [UInt8] = []
    private var headerBytes = 0

    /// Counts this engine's transfers alive right now (tests check it returns to zero: nothing
    /// leaks). Per engine, so tests running engines in parallel do not see each other's.
    final class LiveCount: Sendable {
        let value = Atomic<Int>(0)
    }

    private let live: LiveCount

    init(id: UInt64, request: OutboundRequest, live: LiveCount, continuation: CheckedContinuation<Result<TransportResponse, TransportFailure>, Never>) {
        self.id = id
        self.request = request
        self.continuation = continuation
        self.live = live
        live.value.add(1, ordering: .relaxed)
    }

    deinit {
        live.value.subtract(1, ordering: .relaxed)
    }

    /// Keeps the first `TransportResponse.maxBody` bytes; the rest is read and dropped so the
    /// connection stays reusable.
    func receiveBody(_ data: UnsafeRawBufferPointer) {
        let room = TransportResponse.maxBody - body.count
        if room > 0 { body.append(contentsOf: data.prefix(room)) }
    }

    /// One header line as libcurl delivers it (status line, `Name: value`, or the blank end).
    func receiveHeaderLine(_ data: UnsafeRawBufferPointer) {
        // Trim CR and LF as bytes: "\r\n" is one Character in Swift, so hasSuffix("\n") misses it.
        var end = data.count
        while end > 0, data[end - 1] == 0x0A || data[end - 1] == 0x0D { end -= 1 }
        let line = String(decoding: data[0..<end], as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new response (after a 100 Continue or an interim answer) replaces the last.
            headers = []
            headerBytes = 0
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            return
        }
        guard let colon = line.firstIndex(of: ":"), headers.count < TransportResponse.maxHeaders, headerBytes + line.utf8.count <= 16_384 else { return }
        headerBytes += line.utf8.count
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers.append((name, value))
    }

    func finish(_ result: Result<TransportResponse, TransportFailure>) {
        let continuation = self.continuation
        self.continuation = nil
        continuation?.resume(returning: result)
    }
}
