#!/usr/bin/env python3
"""Write a realistic-looking ~2 KiB order webhook body (valid JSON) to argv[1].

The content is fixed (no randomness) so every run sends the same bytes; the
line-items list is grown until the body reaches the target size, then padded
in a note field to land close to it.
"""
import json
import sys

TARGET = 2048


def order(items, note=""):
    return {
        "id": "evt_2Q4mR8vXk1Lp9sTz",
        "type": "order.created",
        "created_at": "2026-11-22T20:24:00Z",
        "api_version": "2026-10-01",
        "data": {
            "order": {
                "id": "ord_7HkP2nW9cQ4sV1xB",
                "number": 100482,
                "status": "paid",
                "currency": "EUR",
                "subtotal": sum(i["quantity"] * i["unit_price"] for i in items),
                "tax": 1596,
                "shipping": 495,
                "customer": {
                    "id": "cus_Lm3Qa8Zt0RkY",
                    "email": "anna.schmidt@example.com",
                    "name": "Anna Schmidt",
                    "phone": "+49 30 1234567",
                },
                "shipping_address": {
                    "line1": "Friedrichstraße 123",
                    "line2": "3. OG",
                    "city": "Berlin",
                    "postal_code": "10117",
                    "country": "DE",
                },
                "items": items,
                "note": note,
                "metadata": {"channel": "web", "campaign": "winter-sale", "ab_bucket": "b"},
            }
        },
    }


def item(n):
    return {
        "sku": f"SKU-{1000 + n * 7}",
        "name": f"Merino wool sweater, size {'SMLX'[n % 4]}",
        "quantity": 1 + n % 3,
        "unit_price": 4990 + n * 250,
        "tax_rate": "0.19",
    }


def main():
    items = []
    while True:
        candidate = items + [item(len(items))]
        if len(json.dumps(order(candidate), ensure_ascii=False).encode()) > TARGET:
            break
        items = candidate
    size = len(json.dumps(order(items), ensure_ascii=False).encode())
    note = "Please leave the parcel with the neighbour. " * 10
    text = json.dumps(order(items, note[: max(0, TARGET - size)]), ensure_ascii=False)
    json.loads(text)  # must stay valid JSON
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
