import Synchronization

/// Makes relay event ids: `evt_` and 26 Crockford base32 characters holding 48 bits of
/// milliseconds and 80 random bits (the ULID layout). Ids sort by time as strings, and within one
/// millisecond the random part is incremented, so ids from one process are strictly increasing.
public final class EventIDGenerator: Sendable {
    private struct State {
        var lastMillis: Int64 = -1
        var high: UInt16 = 0  // top 16 of the 80 random bits
        var low: UInt64 = 0   // low 64
    }

    private let state = Mutex(State())
    private let clock: any RelayClock
    private let random: @Sendable () -> UInt64

    public init(clock: any RelayClock = SystemClock(), random: @escaping @Sendable () -> UInt64 = { UInt64.random(in: .min ... .max) }) {
        self.clock = clock
        self.random = random
    }

    public func next() -> String {
        let now = clock.now().milliseconds
        let (millis, high, low) = state.withLock { state -> (Int64, UInt16, UInt64) in
            if now > state.lastMillis {
                state.lastMillis = now
                state.high = UInt16(truncatingIfNeeded: random())
                state.low = random()
            } else {
                // Same millisecond (or the clock went back): keep the time, count up.
                let (sum, overflow) = state.low.addingReportingOverflow(1)
                state.low = sum
                if overflow { state.high &+= 1 }
            }
            return (state.lastMillis, state.high, state.low)
        }
        return Self.format(millis: millis, high: high, low: low)
    }

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// The id of a time and 80 random bits.
    public static func format(millis: Int64, high: UInt16, low: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 30)
        out[0] = UInt8(ascii: "e"); out[1] = UInt8(ascii: "v"); out[2] = UInt8(ascii: "t"); out[3] = UInt8(ascii: "_")
        // 10 characters of time (50 bits, top 2 zero).
        var time = UInt64(bitPattern: millis) & 0xFFFF_FFFF_FFFF
        for i in stride(from: 9, through: 0, by: -1) {
            out[4 + i] = alphabet[Int(time & 31)]
            time >>= 5
        }
        // 16 characters of randomness (80 bits).
        var lo = low
        var hi = UInt64(high)
        for i in stride(from: 15, through: 0, by: -1) {
            out[14 + i] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension EventIDGenerator {
    /// An event id in 128 bits: 48 bits of milliseconds and 80 random bits. Ids that are not
    /// relay ids pack to zero (and unpack to "").
    public struct Packed: Hashable, Sendable {
        public var high: UInt64  // millis << 16 | random high 16
        public var low: UInt64

        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }
    }

    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    /// Packs `evt_` + 26 Crockford characters.
    public static func pack(_ id: String) -> Packed {
        let utf8 = Array(id.utf8)
        guard utf8.count == 30, id.hasPrefix("evt_") else { return Packed(high: 0, low: 0) }
        var millis: UInt64 = 0
        for i in 4..<14 {
            let value = decodeTable[Int(utf8[i])]
            guard value != 0xFF else { return Packed(high: 0, low: 0) }
            millis = millis << 5 | UInt64(value)
        }
        var hi: UInt64 = 0  // top 16 random bits
        var lo: UInt64 = 0
        for i in 14..<30 {
            let value = decodeTable[Int(utf8[i])]
            guard value != 0xFF else { return Packed(high: 0, low: 0) }
            hi = (hi << 5 | lo >> 59) & 0xFFFF
            lo = lo << 5 | UInt64(value)
        }
        return Packed(high: (millis & 0xFFFF_FFFF_FFFF) << 16 | hi, low: lo)
    }

    public static func unpack(_ packed: Packed) -> String {
        if packed.high == 0 && packed.low == 0 { return "" }
        return format(millis: Int64(packed.high >> 16), high: UInt16(truncatingIfNeeded: packed.high), low: packed.low)
    }
}
