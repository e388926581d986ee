/// FastSpring: `X-FS-Signature` over the whole body, `{"events":[...]}` with any number of
/// events. Each event is stored on its own with its exact bytes, sliced from the body.
enum FastSpringAdapter {
    /// Events the adapter cannot accept (not an object, no `id`, no `type`) are returned as
    /// rejections beside the good ones, for FastSpring's partial acknowledgement; the request is
    /// refused whole only when its signature fails, its body is not a batch, or no event in it
    /// can be accepted.
    static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], verify: Bool) throws(IngestError) -> NormalizedBatch {
        if verify {
            try Signatures.verifyHMAC(headers: headers, body: body, secrets: source.secrets, header: "X-FS-Signature", encoding: .base64, prefix: "")
        }
        let parsed: (value: JSONValue, elements: [Range<Int>]?)
        do {
            parsed = try JSONParser.parse(body, capturingArrayMember: "events")
        } catch {
            throw IngestError(.badRequest, "FastSpring body is not valid JSON: \(error)")
        }
        guard parsed.value.objectValue != nil else { throw IngestError(.badRequest, "FastSpring body must be a JSON object with an events array") }
        guard let events = parsed.value["events"]?.arrayValue, let ranges = parsed.elements, ranges.count == events.count else {
            throw IngestError(.badRequest, "FastSpring body has no events array")
        }
        let kept = ProviderAdapters.keptHeaders(headers, extra: ["x-fs-signature"])
        var result = NormalizedBatch()
        for (index, (event, range)) in zip(events, ranges).enumerated() {
            guard event.objectValue != nil else {
                result.rejected.append(RejectedEvent(index: index, providerEventID: nil, reason: "events[\(index)] is not an object"))
                continue
            }
            let id = event["id"]?.stringValue ?? ""
            guard !id.isEmpty else {
                result.rejected.append(RejectedEvent(index: index, providerEventID: nil, reason: "events[\(index)] has no id"))
                continue
            }
            guard let type = event["type"]?.stringValue, !type.isEmpty else {
                result.rejected.append(RejectedEvent(index: index, providerEventID: id, reason: "events[\(index)] has no type"))
                continue
            }
            let data = event["data"]
            let products = data?["items"]?.arrayValue?.compactMap { $0["product"]?.scalarText } ?? []
            result.events.append(NormalizedEvent(
                type: type, status: status(type: type, data: data), products: products,
                orderID: data?["id"]?.scalarText ?? "", providerEventID: id, headers: kept, body: Array(body[range])
            ))
        }
        if result.events.isEmpty, let first = result.rejected.first {
            var error = IngestError(.badRequest, result.rejected.count == 1 ? first.reason : "no event in the batch can be accepted: \(first.reason), and \(result.rejected.count - 1) more")
            error.rejected = result.rejected
            throw error
        }
        return result
    }

    /// The status an event type implies; for types that imply none, `data.completed`.
    static func status(type: String, data: JSONValue?) -> String {
        switch type {
        case "order.completed": return "COMPLETED"
        case "order.failed": return "FAILED"
        case "order.canceled": return "CANCELED"
        case "fulfillment.failed": return "FAILED"
        default:
            if type.hasSuffix(".charge.completed") { return "COMPLETED" }
            if type.hasSuffix(".charge.failed") { return "FAILED" }
            switch data?["completed"]?.boolValue {
            case true?: return "COMPLETED"
            case false?: return "FAILED"
            case nil: return ""
            }
        }
    }
}
