import Crypto
import Foundation

/// The signature checks providers use. Pure functions of bytes, secrets and the clock; every
/// comparison is constant-time, and no failure message contains a secret or an expected value.
public enum Signatures {
    /// HMAC-SHA256 of `message` with `key`.
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Compares in time independent of where the inputs differ.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// Base64 (standard alphabet; padding optional) to bytes.
    public static func base64Decode(_ text: some StringProtocol) -> [UInt8]? {
        var string = String(text)
        let remainder = string.utf8.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { string += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: string).map { [UInt8]($0) }
    }

    public static func base64Encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Hex (either case) to bytes.
    public static func hexDecode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// The HMAC key of a Standard Webhooks / Svix secret: base64 after an optional `whsec_`.
    /// Nil if it is not base64 or decodes to nothing (an empty key would accept forgeries).
    public static func standardWebhooksKey(_ secret: String) -> [UInt8]? {
        let encoded = secret.hasPrefix("whsec_") ? secret.dropFirst(6) : Substring(secret)
        guard let key = base64Decode(encoded), !key.isEmpty else { return nil }
        return key
    }

    /// Header names of a Standard Webhooks style signature (Svix uses `svix-`, others `webhook-`).
    public struct StandardWebhooksHeaders: Sendable {
        public var id: String
        public var timestamp: String
        public var signature: String

        public static let svix = StandardWebhooksHeaders(id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature")
        public static let standard = StandardWebhooksHeaders(id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature")
    }

    /// Verifies a Standard Webhooks (Svix) signature: HMAC-SHA256 over `id.timestamp.body`, any
    /// one of the space-separated `v1,<base64>` entries matching any secret, timestamp within
    /// `toleranceMillis` of now. Returns the message id (the de-duplication key).
    public static func verifyStandardWebhooks(
        headers: HeaderList, body: [UInt8], secrets: [Secret], names: StandardWebhooksHeaders,
        toleranceMillis: Int64, now: Timestamp
    ) throws(IngestError) -> String {
        guard let id = headers[names.id], !id.isEmpty else { throw IngestError(.unauthorized, "missing \(names.id) header") }
        guard let timestampText = headers[names.timestamp] else { throw IngestError(.unauthorized, "missing \(names.timestamp) header") }
        guard let signatureHeader = headers[names.signature], !signatureHeader.isEmpty else {
            throw IngestError(.unauthorized, "missing \(names.signature) header")
        }
        guard let seconds = Int64(timestampText.trimmingCharacters(in: .whitespaces)), seconds >= 0, seconds < 1 << 40 else {
            throw IngestError(.unauthorized, "malformed \(names.timestamp) header (expected Unix seconds)")
        }
        let skew = now.milliseconds - seconds * 1000
        guard abs(skew) <= toleranceMillis else {
            throw IngestError(.unauthorized, "\(names.timestamp) is outside the tolerance of \(toleranceMillis / 1000) seconds (\(skew / 1000) s \(skew > 0 ? "old" : "in the future"))")
        }
        // Compare the canonical base64 text, as the Svix libraries do: an unpadded or otherwise
        // re-encoded signature is not accepted.
        let candidates = signatureHeader.split(separator: " ").compactMap { entry -> [UInt8]? in
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1" else { return nil }
            return Array(parts[1].utf8)
        }
        guard !candidates.isEmpty else { throw IngestError(.unauthorized, "\(names.signature) header has no v1 signature") }
        let message = Array("\(id).\(timestampText).".utf8) + body
        for secret in secrets {
            guard let key = standardWebhooksKey(secret.value) else { continue }
            let expected = Array(base64Encode(hmacSHA256(key: key, message: message)).utf8)
            for candidate in candidates where constantTimeEquals(candidate, expected) {
                return id
            }
        }
        throw IngestError(.unauthorized, "invalid signature in \(names.signature) header")
    }

    /// Verifies `header` = prefix + hex/base64(HMAC-SHA256(secret, body)) for any secret.
    public static func verifyHMAC(
        headers: HeaderList, body: [UInt8], secrets: [Secret], header: String, encoding: SignatureConfig.Encoding, prefix: String
    ) throws(IngestError) {
        guard var value = headers[header]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            throw IngestError(.unauthorized, "missing \(header) header")
        }
        if !prefix.isEmpty {
            guard value.hasPrefix(prefix) else { throw IngestError(.unauthorized, "\(header) header does not start with \"\(prefix)\"") }
            value = String(value.dropFirst(prefix.count))
        }
        guard (encoding == .hex ? hexDecode(value) : base64Decode(value)) != nil else {
            throw IngestError(.unauthorized, "malformed \(header) header (expected \(encoding.rawValue))")
        }
        // Canonical text comparison: hex in either case, base64 exactly as encoded.
        let candidate = Array((encoding == .hex ? value.lowercased() : value).utf8)
        for secret in secrets {
            let mac = hmacSHA256(key: Array(secret.value.utf8), message: body)
            let expected = Array((encoding == .hex ? Digest.hex(mac) : base64Encode(mac)).utf8)
            if constantTimeEquals(candidate, expected) { return }
        }
        throw IngestError(.unauthorized, "invalid signature in \(header) header")
    }

    /// Verifies a Stripe-style header `t=<unix>,v1=<hex>[,v1=<hex>…]`: HMAC-SHA256 over
    /// `t.body` with the secret's UTF-8 bytes, timestamp within tolerance.
    public static func verifyStripe(
        headers: HeaderList, body: [UInt8], secrets: [Secret], header: String, toleranceMillis: Int64, now: Timestamp
    ) throws(IngestError) {
        guard let value = headers[header], !value.isEmpty else { throw IngestError(.unauthorized, "missing \(header) header") }
        var timestamp: String?
        var candidates: [[UInt8]] = []
        for part in value.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let key = pair[0].trimmingCharacters(in: .whitespaces)
            if key == "t" { timestamp = String(pair[1]) }
            if key == "v1" { candidates.append(Array(pair[1].lowercased().utf8)) }
        }
        guard let timestamp, let seconds = Int64(timestamp), seconds >= 0, seconds < 1 << 40 else {
            throw IngestError(.unauthorized, "\(header) header has no valid t= timestamp")
        }
        guard !candidates.isEmpty else { throw IngestError(.unauthorized, "\(header) header has no v1 signature") }
        let skew = now.milliseconds - seconds * 1000
        guard abs(skew) <= toleranceMillis else {
            throw IngestError(.unauthorized, "\(header) timestamp is outside the tolerance of \(toleranceMillis / 1000) seconds")
        }
        let message = Array("\(timestamp).".utf8) + body
        for secret in secrets {
            let expected = Array(Digest.hex(hmacSHA256(key: Array(secret.value.utf8), message: message)).utf8)
            if candidates.contains(where: { constantTimeEquals($0, expected) }) { return }
        }
        throw IngestError(.unauthorized, "invalid signature in \(header) header")
    }
}
