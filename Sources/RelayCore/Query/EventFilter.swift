#if canImport(Glibc)
import Glibc
#endif

/// What a delivery (or all of an event's deliveries) came to.
public enum DeliveryState: String, Sendable, CaseIterable {
    /// Not yet accepted and not given up: waiting for its next attempt.
    case pending
    case succeeded
    case dead
}

/// Which events an admin query, `relay events list` or a replay selects (SPEC §3 filters).
/// Within one field the values are alternatives (OR); fields combine with AND. An empty field
/// matches everything.
public struct EventFilter: Sendable, Equatable {
    public var ids: [String] = []
    public var sources: [String] = []
    public var providers: [String] = []
    /// Globs over the event type (`order.*`).
    public var types: [Glob] = []
    public var statuses: [String] = []
    /// Globs; an event matches if any of its products matches one.
    public var products: [Glob] = []
    /// Received at or after.
    public var since: Timestamp?
    /// Received before.
    public var until: Timestamp?
    /// The event's overall delivery state: dead if any delivery is dead, else pending if any is
    /// pending, else succeeded (events routed nowhere have none and match no state).
    public var deliveryState: DeliveryState?

    public init() {}

    /// Whether the event's own fields match (everything but `deliveryState`).
    public func matches(_ event: Event) -> Bool {
        if !ids.isEmpty && !ids.contains(event.id) { return false }
        if !sources.isEmpty && !sources.contains(event.source) { return false }
        if !providers.isEmpty && !providers.contains(event.provider) { return false }
        if !types.isEmpty && !types.contains(where: { $0.matches(event.type) }) { return false }
        if !statuses.isEmpty && !statuses.contains(event.status) { return false }
        if !products.isEmpty && !event.products.contains(where: { product in products.contains { $0.matches(product) } }) { return false }
        if let since, event.receivedAt < since { return false }
        if let until, event.receivedAt >= until { return false }
        return true
    }

    /// Parses query parameters (`source`, `provider`, `type`, `status`, `product`, `since`,
    /// `until`, `delivery_state`, `id`); a parameter may repeat or hold a comma-separated list.
    /// Unknown names are ignored so callers can mix in their own (`limit`, `cursor`).
    public init(query: [(name: String, value: String)], now: Timestamp) throws(FilterError) {
        for (name, raw) in query {
            let values = raw.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
            switch name {
            case "id": ids += values
            case "source": sources += values
            case "provider": providers += values
            case "status": statuses += values
            case "type", "product":
                for value in values {
                    do {
                        let glob = try Glob(value)
                        if name == "type" { types.append(glob) } else { products.append(glob) }
                    } catch {
                        throw FilterError(name, "\(error)")
                    }
                }
            case "since", "until":
                guard let value = values.first else { throw FilterError(name, "needs a time (RFC 3339, or relative like 15m, 2h, 7d)") }
                guard let time = Self.parseTime(value, now: now) else {
                    throw FilterError(name, "\(JSONWriter.quote(value)) is not a time (RFC 3339 like 2026-01-02T15:04:05Z, or relative like 15m, 2h, 7d)")
                }
                if name == "since" { since = time } else { until = time }
            case "delivery_state":
                guard let value = values.first, let state = DeliveryState(rawValue: value) else {
                    throw FilterError(name, "must be one of pending, succeeded, dead, not \(JSONWriter.quote(raw))")
                }
                deliveryState = state
            default:
                continue
            }
        }
    }

    /// A page cursor (from `next_cursor`): the journal sequence the next page stays below.
    public static func parseCursor(_ text: String) throws(FilterError) -> UInt64 {
        guard let value = UInt64(text), value > 0 else { throw FilterError("cursor", "\(JSONWriter.quote(text)) is not a cursor from a previous page") }
        return value
    }

    /// RFC 3339 (`2026-01-02T15:04:05Z`, fractional seconds and offsets allowed) or a duration
    /// before `now`: a number and one of `s`, `m`, `h`, `d`.
    public static func parseTime(_ text: String, now: Timestamp) -> Timestamp? {
        let utf8 = Array(text.utf8)
        if let unit = utf8.last, let scale: Int64 = [0x73: 1000, 0x6D: 60_000, 0x68: 3_600_000, 0x64: 86_400_000][unit],
           utf8.count >= 2, utf8.count <= 10, utf8.dropLast().allSatisfy({ (0x30...0x39).contains($0) }),
           let amount = Int64(String(decoding: utf8.dropLast(), as: UTF8.self)) {
            return Timestamp(milliseconds: now.milliseconds - amount * scale)
        }
        return parseRFC3339(utf8)
    }

    static func parseRFC3339(_ s: [UInt8]) -> Timestamp? {
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= s.count else { return nil }
            var value = 0
            for index in range {
                let digit = Int(s[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard s.count >= 20, s[4] == 0x2D, s[7] == 0x2D, s[10] == 0x54 || s[10] == 0x74 || s[10] == 0x20, s[13] == 0x3A, s[16] == 0x3A,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var millis = 0
        if index < s.count, s[index] == 0x2E {
            index += 1
            var digits = 0
            while index < s.count, (0x30...0x39).contains(s[index]) {
                if digits < 3 { millis = millis * 10 + Int(s[index]) - 48 }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        guard index < s.count else { return nil }
        var offsetMinutes = 0
        if s[index] == 0x5A || s[index] == 0x7A {
            index += 1
        } else if s[index] == 0x2B || s[index] == 0x2D, s.count == index + 6, s[index + 3] == 0x3A,
                  let hours = number(index + 1..<index + 3), let minutes = number(index + 4..<index + 6) {
            offsetMinutes = (hours * 60 + minutes) * (s[index] == 0x2D ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == s.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Int64(timegm(&parts)) - Int64(offsetMinutes) * 60
        return Timestamp(milliseconds: seconds * 1000 + Int64(millis))
    }
}

/// A bad filter value: names the parameter.
public struct FilterError: Error, Sendable, CustomStringConvertible {
    public var parameter: String
    public var message: String

    public init(_ parameter: String, _ message: String) {
        self.parameter = parameter
        self.message = message
    }

    public var description: String { "\(parameter): \(message)" }
}

extension String {
    func trimmingSpaces() -> String {
        var utf8 = Substring(self).utf8[...]
        while let first = utf8.first, first == 0x20 || first == 0x09 { utf8 = utf8.dropFirst() }
        while let last = utf8.last, last == 0x20 || last == 0x09 { utf8 = utf8.dropLast() }
        return String(Substring(utf8))
    }
}
