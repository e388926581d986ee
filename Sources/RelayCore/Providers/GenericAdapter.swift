/// Any HMAC-signing provider: a configurable signature scheme and normalized fields read by
/// JSON Pointer. One event per request.
enum GenericAdapter {
    static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], now: Timestamp, verify: Bool) throws(IngestError) -> [NormalizedEvent] {
        var signature = source.signature
        var messageID: String?
        if !verify {
            if signature.scheme == .standardWebhooks { messageID = headers["webhook-id"] }
            signature.scheme = .none
        }
        var signatureHeaders: [String] = []
        switch signature.scheme {
        case .none:
            break
        case .hmacSHA256:
            try Signatures.verifyHMAC(headers: headers, body: body, secrets: source.secrets, header: signature.header, encoding: signature.encoding, prefix: signature.prefix)
            signatureHeaders = [signature.header]
        case .standardWebhooks:
            messageID = try Signatures.verifyStandardWebhooks(
                headers: headers, body: body, secrets: source.secrets, names: .standard, toleranceMillis: signature.toleranceMillis, now: now
            )
            signatureHeaders = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        case .stripe:
            let header = signature.header.isEmpty ? "Stripe-Signature" : signature.header
            try Signatures.verifyStripe(headers: headers, body: body, secrets: source.secrets, header: header, toleranceMillis: signature.toleranceMillis, now: now)
            signatureHeaders = [header]
        }
        var event = NormalizedEvent(providerEventID: messageID ?? "", headers: ProviderAdapters.keptHeaders(headers, extra: signatureHeaders), body: body)
        let fields = source.fields
        guard fields.id != nil || fields.type != nil || fields.status != nil || fields.product != nil || fields.orderID != nil else {
            return [event]  // no fields to read: any body is accepted as it is
        }
        let document = try ProviderAdapters.parseJSON(body, provider: "source \(source.name)")
        func text(_ pointer: String?) -> String? {
            pointer.flatMap(JSONPointer.init).map { $0.firstText(in: document) }
        }
        if let id = text(fields.id), !id.isEmpty { event.providerEventID = id }
        event.type = text(fields.type) ?? ""
        event.status = text(fields.status) ?? ""
        event.orderID = text(fields.orderID) ?? ""
        if let pointer = fields.product.flatMap(JSONPointer.init) {
            event.products = pointer.values(in: document).compactMap(\.scalarText)
        }
        return [event]
    }
}
