internal import CCurlShim
import Foundation
import Synchronization

/// One request in flight in the `CurlEngine`: the easy handle, its header list, the bounded
/// response capture and the completion to call.
///
/// `@unchecked Sendable`: it is created by the caller and handed to the engine thread through
/// the engine's mutex; from then on only the engine thread touches its mutable state (libcurl
/// calls the callbacks on that thread, inside `curl_multi_socket_action`). `finish` runs only on the
/// engine thread (or on the caller's, for a transfer the engine never took) and the transfer
/// leaves the engine's table when it does, so the completion is called exactly once.
final class CurlTransfer: @unchecked Sendable {
    /// Set by the engine under its lock before the engine thread sees the transfer.
    var id: UInt64 = 0
    let request: OutboundRequest
    private var completion: (@Sendable (Result<TransportResponse, TransportFailure>) -> Void)?
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

    init(request: OutboundRequest, live: LiveCount, completion: @escaping @Sendable (Result<TransportResponse, TransportFailure>) -> Void) {
        self.request = request
        self.completion = completion
        self.live = live
        live.value.add(1, ordering: .relaxed)
    }

    deinit {
        live.value.subtract(1, ordering: .relaxed)
    }

    /// Keeps the first `request.maxResponseBody` bytes; the rest is read and dropped so the
    /// connection stays reusable.
    func receiveBody(_ data: UnsafeRawBufferPointer) {
        let room = request.maxResponseBody - body.count
        if room > 0 { body.append(contentsOf: data.prefix(room)) }
    }

    /// One header line as libcurl delivers it (status line, `Name: value`, or the blank end).
    /// Parsed as bytes: this runs for every header of every response.
    func receiveHeaderLine(_ data: UnsafeRawBufferPointer) {
        var end = data.count
        while end > 0, data[end - 1] == 0x0A || data[end - 1] == 0x0D { end -= 1 }
        guard end > 0 else { return }
        if end > 5, data[0] == 0x48, data[1] == 0x54, data[2] == 0x54, data[3] == 0x50, data[4] == 0x2F {  // "HTTP/"
            // A new response (after a 100 Continue or an interim answer) replaces the last.
            headers = []
            headerBytes = 0
            status = Self.statusCode(data[0..<end])
            return
        }
        guard headers.count < TransportResponse.maxHeaders, headerBytes + end <= 16_384,
              let colon = data[0..<end].firstIndex(of: 0x3A)
        else { return }
        headerBytes += end
        var start = colon + 1
        while start < end, data[start] == 0x20 || data[start] == 0x09 { start += 1 }
        var stop = end
        while stop > start, data[stop - 1] == 0x20 || data[stop - 1] == 0x09 { stop -= 1 }
        headers.append((String(decoding: data[0..<colon], as: UTF8.self), String(decoding: data[start..<stop], as: UTF8.self)))
    }

    /// The three digits after the first space of a status line, 0 if there are none.
    static func statusCode(_ line: Slice<UnsafeRawBufferPointer>) -> Int {
        guard let space = line.firstIndex(of: 0x20), space + 4 <= line.endIndex else { return 0 }
        var code = 0
        for index in space + 1..<space + 4 {
            let digit = Int(line[index]) - 48
            guard (0...9).contains(digit) else { return 0 }
            code = code * 10 + digit
        }
        if space + 4 < line.endIndex, line[space + 4] != 0x20 { return 0 }
        return code
    }

    func finish(_ result: Result<TransportResponse, TransportFailure>) {
        let completion = self.completion
        self.completion = nil
        completion?(result)
    }
}
