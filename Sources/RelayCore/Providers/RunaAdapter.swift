/// Runa: Svix-signed, one order (or product update) per request, no envelope, the type not in
/// the body. An order has `status`; a product update has `product_code`.
///
/// An order's final status is one event however it reaches the relay: an `order.completion`'s
/// de-duplication key is `order:{id}:{status}` (so a webhook and a reconciliation pass that
/// recovered the same order from the API are one event, in either order, and so are two Svix
/// messages for it); a product update's is its `svix-id`.
enum RunaAdapter {
    static func orderKey(id: String, status: String) -> String { "order:\(id):\(status)" }

    static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], now: Timestamp, verify: Bool) throws(IngestError) -> [NormalizedEvent] {
        let messageID = verify
            ? try Signatures.verifyStandardWebhooks(
                headers: headers, body: body, secrets: source.secrets, names: .svix,
                toleranceMillis: source.signature.toleranceMillis, now: now
            )
            : headers["svix-id"] ?? ""
        let document = try ProviderAdapters.parseJSON(body, provider: "Runa")
        guard document.objectValue != nil else { throw IngestError(.badRequest, "Runa body must be a JSON object, not \(document.kindName)") }
        var event = NormalizedEvent(
            orderID: document["id"]?.scalarText ?? "", providerEventID: messageID,
            headers: ProviderAdapters.keptHeaders(headers, extra: ["svix-id", "svix-timestamp", "svix-signature"]), body: body
        )
        if let status = document["status"], status != .null {
            guard let text = status.stringValue else { throw IngestError(.badRequest, "Runa order status must be a string, not \(status.kindName)") }
            event.type = "order.completion"
            event.status = text
            if !event.orderID.isEmpty && !text.isEmpty { event.providerEventID = orderKey(id: event.orderID, status: text) }
        } else if let product = document["product_code"]?.scalarText {
            event.type = "product.update"
            event.products = [product]
            event.orderID = ""
        } else {
            throw IngestError(.badRequest, "Runa body has neither status (order) nor product_code (product update)")
        }
        return [event]
    }
}
