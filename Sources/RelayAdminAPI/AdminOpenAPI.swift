/// The admin API described as an OpenAPI 3.1 document, served at `GET /admin/openapi.json`. A
/// test checks real answers of every route against these schemas, so the two cannot drift apart.
public enum AdminOpenAPI {
    public static let document = #"""
    {
      "openapi": "3.1.0",
      "info": {
        "title": "relay admin API",
        "version": "1",
        "description": "The admin listener of relay (never expose it publicly). With RELAY_ADMIN_TOKEN set every request needs Authorization: Bearer <token>."
      },
      "security": [{ "bearer": [] }, {}],
      "paths": {
        "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "serving", "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": { "status": { "const": "ok" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" } } } },
        "/metrics": { "get": { "summary": "Prometheus text format", "responses": { "200": { "description": "metrics", "content": { "text/plain": { "schema": { "type": "string" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" } } } },
        "/admin/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
        "/admin/journal": { "get": { "summary": "Where the journal ends", "responses": { "200": { "description": "durable end", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Journal" } } } } } } },
        "/admin/routes": { "get": { "summary": "The config in force", "responses": { "200": { "description": "routes", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Routes" } } } } } } },
        "/admin/routes/reload": { "post": { "summary": "Reload routes.json (as SIGHUP)", "responses": {
          "200": { "description": "reloaded", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Reload" } } } },
          "422": { "description": "refused; the previous rules stay", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReloadRejected" } } } } } } },
        "/admin/events": { "get": { "summary": "Stored events, newest first", "parameters": [
            { "$ref": "#/components/parameters/source" }, { "$ref": "#/components/parameters/provider" }, { "$ref": "#/components/parameters/type" },
            { "$ref": "#/components/parameters/status" }, { "$ref": "#/components/parameters/product" }, { "$ref": "#/components/parameters/since" },
            { "$ref": "#/components/parameters/until" }, { "$ref": "#/components/parameters/id" },
            { "name": "delivery_state", "in": "query", "schema": { "enum": ["pending", "succeeded", "dead"] } },
            { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } },
            { "$ref": "#/components/parameters/cursor" } ],
          "responses": { "200": { "description": "a page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventPage" } } } }, "400": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/events/{id}": { "get": { "summary": "One event with every attempt", "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
          "responses": { "200": { "description": "the event", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventDetail" } } } }, "404": { "$ref": "#/components/responses/NotFound" } } } },
        "/admin/deliveries": { "get": { "summary": "Deliveries, newest event first; a page keeps all deliveries of its last event", "parameters": [
            { "name": "state", "in": "query", "schema": { "enum": ["pending", "succeeded", "dead"] } },
            { "name": "destination", "in": "query", "schema": { "type": "string" } },
            { "$ref": "#/components/parameters/source" }, { "$ref": "#/components/parameters/type" }, { "$ref": "#/components/parameters/status" },
            { "$ref": "#/components/parameters/since" }, { "$ref": "#/components/parameters/until" },
            { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
            { "$ref": "#/components/parameters/cursor" } ],
          "responses": { "200": { "description": "a page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeliveryPage" } } } }, "400": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/deliveries/{id}/retry": { "post": { "summary": "Send one delivery once more, as a one-delivery replay", "parameters": [{ "name": "id", "in": "path", "required": true, "description": "EVENT_ID:DESTINATION", "schema": { "type": "string" } }],
          "responses": { "202": { "description": "started", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RetryAnswer" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/deliveries/{id}/skip": { "post": { "summary": "Skip a dead delivery that holds its ordering key (on_dead: hold): it stays dead, the key moves on", "parameters": [{ "name": "id", "in": "path", "required": true, "description": "EVENT_ID:DESTINATION", "schema": { "type": "string" } }],
          "responses": { "200": { "description": "skipped", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SkipAnswer" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/replay": { "post": { "summary": "Replay stored events (or a dry run / backtest)",
          "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReplayRequest" } } } },
          "responses": {
            "200": { "description": "a dry run", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReplayAnswer" } } } },
            "202": { "description": "started", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReplayAnswer" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" }, "413": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/destinations": { "get": { "summary": "Every destination: state, deliveries, and the last 5 minutes' attempts (on PostgreSQL, every instance's)", "responses": {
          "200": { "description": "destinations by name", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DestinationList" } } } } } } },
        "/admin/destinations/{name}/pause": { "post": { "summary": "Pause a destination until resumed (holds across restarts and reloads; its deliveries wait)", "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
          "responses": { "200": { "description": "paused", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Destination" } } } },
            "404": { "$ref": "#/components/responses/NotFound" }, "503": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/destinations/{name}/resume": { "post": { "summary": "Resume a destination an operator paused", "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
          "responses": { "200": { "description": "resumed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Destination" } } } },
            "404": { "$ref": "#/components/responses/NotFound" }, "503": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/reconcile": { "post": { "summary": "Run one reconciliation pass now for a source with a reconcile block: store the events the provider has and the relay missed, then mark them processed",
          "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "required": ["source"],
            "properties": { "source": { "type": "string" }, "since": { "type": "string", "description": "how far back, e.g. 24h (default: the source's lookback; at most 30d)" }, "dry_run": { "type": "boolean" } } } } } },
          "responses": { "200": { "description": "the pass", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReconcileAnswer" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" },
            "409": { "$ref": "#/components/responses/BadRequest" }, "502": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/rejections": { "get": { "summary": "Events of provider batches the relay did not accept, newest first (the last 1,000 since this relay started, per instance)",
          "parameters": [{ "name": "source", "in": "query", "schema": { "type": "string" } }, { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
          "responses": { "200": { "description": "rejections", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Rejections" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" } } } },
        "/admin/activity": { "get": { "summary": "The last hour, minute by minute: events stored and delivery attempts by outcome (on the journal since this relay started; on PostgreSQL every instance's)", "responses": {
          "200": { "description": "60 minutes, oldest first", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Activity" } } } } } } },
        "/admin/replays/{id}": { "get": { "summary": "A replay's progress (the last 100, until a restart)", "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
          "responses": { "200": { "description": "progress", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReplayStatus" } } } }, "404": { "$ref": "#/components/responses/NotFound" } } } }
      },
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "parameters": {
          "source": { "name": "source", "in": "query", "description": "one or a comma list", "schema": { "type": "string" } },
          "provider": { "name": "provider", "in": "query", "schema": { "type": "string" } },
          "type": { "name": "type", "in": "query", "description": "glob", "schema": { "type": "string" } },
          "status": { "name": "status", "in": "query", "schema": { "type": "string" } },
          "product": { "name": "product", "in": "query", "description": "glob; any product of the event", "schema": { "type": "string" } },
          "since": { "name": "since", "in": "query", "description": "RFC 3339 or relative (15m, 2h, 7d)", "schema": { "type": "string" } },
          "until": { "name": "until", "in": "query", "description": "RFC 3339 or relative", "schema": { "type": "string" } },
          "id": { "name": "id", "in": "query", "schema": { "type": "string" } },
          "cursor": { "name": "cursor", "in": "query", "description": "next_cursor of the previous page (opaque)", "schema": { "type": "string" } }
        },
        "responses": {
          "BadRequest": { "description": "a parameter or field is wrong (named in the message)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "NotFound": { "description": "unknown", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "Unauthorized": { "description": "missing or wrong token", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        },
        "schemas": {
          "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
          "Journal": { "type": "object", "additionalProperties": false, "required": ["last_sequence", "segment", "offset"], "properties": {
            "last_sequence": { "type": "integer", "minimum": 0 }, "segment": { "type": "integer", "minimum": 0 }, "offset": { "type": "integer", "minimum": 0 } } },
          "Routes": { "type": "object", "additionalProperties": false, "required": ["version", "sources", "destinations", "routes"], "properties": {
            "version": { "type": "string" }, "sources": { "type": "array", "items": { "type": "string" } },
            "destinations": { "type": "array", "items": { "type": "string" } }, "routes": { "type": "array", "items": { "type": "string" } } } },
          "Reload": { "type": "object", "additionalProperties": false, "required": ["reloaded", "version", "sources", "destinations", "routes"], "properties": {
            "reloaded": { "const": true }, "version": { "type": "string" }, "sources": { "type": "integer" }, "destinations": { "type": "integer" }, "routes": { "type": "integer" } } },
          "ReloadRejected": { "type": "object", "additionalProperties": false, "required": ["error", "version", "errors"], "properties": {
            "error": { "type": "string" }, "version": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } } } },
          "DeliveryStateItem": { "type": "object", "additionalProperties": false, "required": ["destination", "state"], "properties": {
            "destination": { "type": "string" }, "state": { "enum": ["pending", "succeeded", "dead"] } } },
          "EventSummary": { "type": "object", "required": ["id", "sequence", "source", "provider", "type", "status", "products", "order_id", "provider_event_id", "received_at", "delivery_state", "deliveries", "received_via"], "properties": {
            "id": { "type": "string" }, "sequence": { "type": "integer", "minimum": 1 }, "source": { "type": "string" }, "provider": { "type": "string" },
            "type": { "type": "string" }, "status": { "type": "string" }, "products": { "type": "array", "items": { "type": "string" } },
            "order_id": { "type": "string" }, "provider_event_id": { "type": "string" }, "received_at": { "type": "string", "format": "date-time" },
            "delivery_state": { "enum": ["pending", "succeeded", "dead", null] }, "received_via": { "enum": ["webhook", "reconcile"] },
            "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/DeliveryStateItem" } } } },
          "EventPage": { "type": "object", "additionalProperties": false, "required": ["events", "next_cursor"], "properties": {
            "events": { "type": "array", "items": { "$ref": "#/components/schemas/EventSummary" } }, "next_cursor": { "type": ["string", "null"] } } },
          "Attempt": { "type": "object", "additionalProperties": false, "required": ["destination", "attempt", "time", "outcome", "status", "error", "duration_ms", "next_due", "paused_destination"], "properties": {
            "destination": { "type": "string" }, "attempt": { "type": "integer", "minimum": 1 }, "time": { "type": "string", "format": "date-time" },
            "outcome": { "enum": ["succeeded", "retry", "dead"] }, "status": { "type": "integer" }, "error": { "type": "string" },
            "duration_ms": { "type": "integer", "minimum": 0 }, "next_due": { "type": ["string", "null"] }, "paused_destination": { "type": "boolean" } } },
          "EventDetail": { "allOf": [ { "$ref": "#/components/schemas/EventSummary" }, { "type": "object", "required": ["headers", "body", "body_encoding", "routing", "attempts"], "properties": {
            "headers": { "type": "array", "items": { "type": "object", "additionalProperties": false, "required": ["name", "value"], "properties": { "name": { "type": "string" }, "value": { "type": "string" } } } },
            "body": { "type": "string" }, "body_encoding": { "enum": ["utf8", "base64"] },
            "routing": { "oneOf": [ { "type": "null" }, { "type": "object", "additionalProperties": false, "required": ["config_version", "routes", "destinations"], "properties": {
              "config_version": { "type": "string" }, "routes": { "type": "array", "items": { "type": "string" } }, "destinations": { "type": "array", "items": { "type": "string" } } } } ] },
            "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/Attempt" } } } } ] },
          "Delivery": { "type": "object", "additionalProperties": false, "required": ["id", "event_id", "sequence", "destination", "state", "received_at"], "properties": {
            "id": { "type": "string" }, "event_id": { "type": "string" }, "sequence": { "type": "integer", "minimum": 1 }, "destination": { "type": "string" },
            "state": { "enum": ["pending", "succeeded", "dead"] }, "received_at": { "type": "string", "format": "date-time" } } },
          "DeliveryPage": { "type": "object", "additionalProperties": false, "required": ["deliveries", "next_cursor"], "properties": {
            "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } }, "next_cursor": { "type": ["string", "null"] } } },
          "DestinationList": { "type": "object", "additionalProperties": false, "required": ["destinations"], "properties": { "destinations": { "type": "array", "items": { "$ref": "#/components/schemas/Destination" } } } },
          "Destination": { "type": "object", "additionalProperties": false,
            "required": ["name", "state", "configured", "paused", "paused_by_410", "breaker_open", "pending", "in_flight", "succeeded", "dead", "max_in_flight", "rate_per_s", "rate_limited", "attempts_5m", "succeeded_5m", "success_rate_5m", "p99_ms_5m", "ordering", "keys_blocked", "held_keys"],
            "properties": { "name": { "type": "string" }, "state": { "enum": ["healthy", "breaker_open", "paused_by_410", "paused", "unconfigured"] },
              "configured": { "type": "boolean" }, "paused": { "type": "boolean" }, "paused_by_410": { "type": "boolean" }, "breaker_open": { "type": "boolean" },
              "pending": { "type": "integer", "minimum": 0 }, "in_flight": { "type": "integer", "minimum": 0 }, "succeeded": { "type": "integer", "minimum": 0 }, "dead": { "type": "integer", "minimum": 0 },
              "max_in_flight": { "type": ["integer", "null"] }, "rate_per_s": { "type": ["number", "null"] }, "rate_limited": { "type": "integer", "minimum": 0 }, "attempts_5m": { "type": "integer", "minimum": 0 }, "succeeded_5m": { "type": "integer", "minimum": 0 },
              "success_rate_5m": { "type": ["number", "null"] }, "p99_ms_5m": { "type": ["integer", "null"] },
              "ordering": { "oneOf": [{ "type": "null" }, { "type": "object", "additionalProperties": false, "required": ["key", "on_dead"], "properties": { "key": { "type": "string" }, "on_dead": { "enum": ["continue", "hold"] } } }] },
              "keys_blocked": { "type": "integer", "minimum": 0 },
              "held_keys": { "type": "array", "maxItems": 100, "items": { "type": "object", "additionalProperties": false, "required": ["key", "event_id", "delivery", "since", "waiting"],
                "properties": { "key": { "type": "string" }, "event_id": { "type": "string" }, "delivery": { "type": "string" }, "since": { "type": "string" }, "waiting": { "type": "integer", "minimum": 0 } } } } } },
          "Activity": { "type": "object", "additionalProperties": false, "required": ["minutes"], "properties": { "minutes": { "type": "array", "items": {
            "type": "object", "additionalProperties": false, "required": ["minute", "events", "succeeded", "retried", "dead"],
            "properties": { "minute": { "type": "string" }, "events": { "type": "integer", "minimum": 0 }, "succeeded": { "type": "integer", "minimum": 0 }, "retried": { "type": "integer", "minimum": 0 }, "dead": { "type": "integer", "minimum": 0 } } } } } },
          "ReconcileAnswer": { "type": "object", "additionalProperties": false,
            "required": ["source", "dry_run", "provider_has", "relay_had", "stored", "marked", "rejected", "stored_ids", "listed_ids", "pages"], "properties": {
            "source": { "type": "string" }, "dry_run": { "type": "boolean" }, "provider_has": { "type": "integer", "minimum": 0 },
            "relay_had": { "type": ["integer", "null"], "minimum": 0 }, "stored": { "type": "integer", "minimum": 0 }, "marked": { "type": "integer", "minimum": 0 },
            "rejected": { "type": "integer", "minimum": 0 }, "stored_ids": { "type": "array", "items": { "type": "string" } },
            "listed_ids": { "type": "array", "items": { "type": "string" } }, "pages": { "type": "integer", "minimum": 0 } } },
          "Rejections": { "type": "object", "additionalProperties": false, "required": ["rejections", "total"], "properties": {
            "total": { "type": "integer", "minimum": 0 },
            "rejections": { "type": "array", "items": { "type": "object", "additionalProperties": false, "required": ["time", "source", "provider", "index", "event_id", "reason", "batch"],
              "properties": { "time": { "type": "string" }, "source": { "type": "string" }, "provider": { "type": "string" }, "index": { "type": "integer", "minimum": 0 },
                "event_id": { "type": ["string", "null"] }, "reason": { "type": "string" }, "batch": { "enum": ["partial", "refused"] } } } } } },
          "SkipAnswer": { "type": "object", "additionalProperties": false, "required": ["delivery", "key"], "properties": { "delivery": { "type": "string" }, "key": { "type": "string" } } },
          "RetryAnswer": { "type": "object", "additionalProperties": false, "required": ["replay_id", "delivery"], "properties": { "replay_id": { "type": "string" }, "delivery": { "type": "string" } } },
          "ReplayRequest": { "type": "object", "additionalProperties": false, "required": ["filter"], "properties": {
            "filter": { "type": "object", "minProperties": 1, "additionalProperties": false, "properties": {
              "id": { "$ref": "#/components/schemas/StringOrList" }, "source": { "$ref": "#/components/schemas/StringOrList" }, "provider": { "$ref": "#/components/schemas/StringOrList" },
              "type": { "$ref": "#/components/schemas/StringOrList" }, "status": { "$ref": "#/components/schemas/StringOrList" }, "product": { "$ref": "#/components/schemas/StringOrList" },
              "since": { "$ref": "#/components/schemas/StringOrList" }, "until": { "$ref": "#/components/schemas/StringOrList" }, "delivery_state": { "$ref": "#/components/schemas/StringOrList" } } },
            "destinations": { "type": "array", "items": { "type": "string" } }, "destinations_mode": { "enum": ["only", "add"] },
            "routing": { "enum": ["current", "original"] }, "dry_run": { "type": "boolean" },
            "rate_per_s": { "type": ["number", "null"], "minimum": 0.001, "maximum": 1000000 }, "concurrency": { "type": "integer", "minimum": 1, "maximum": 256 },
            "config": { "type": "object", "description": "a whole routes.json, for dry runs (backtests) only" } } },
          "StringOrList": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ] },
          "ReplayAnswer": { "type": "object", "additionalProperties": false, "required": ["replay_id", "dry_run", "routing", "matched_events", "deliveries", "total_deliveries"], "properties": {
            "replay_id": { "type": ["string", "null"] }, "dry_run": { "type": "boolean" }, "routing": { "enum": ["current", "original"] },
            "matched_events": { "type": "integer", "minimum": 0 }, "deliveries": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 0 } },
            "total_deliveries": { "type": "integer", "minimum": 0 },
            "sample": { "type": "array", "items": { "type": "object", "additionalProperties": false, "required": ["id", "destinations"], "properties": { "id": { "type": "string" }, "destinations": { "type": "array", "items": { "type": "string" } } } } },
            "backtest": { "type": "object", "additionalProperties": false, "required": ["changed_events", "added", "removed", "changes"], "description": "backtests only: what the routes file would change against the destinations recorded when each event arrived", "properties": {
              "changed_events": { "type": "integer", "minimum": 0 }, "added": { "type": "object", "additionalProperties": { "type": "integer" } }, "removed": { "type": "object", "additionalProperties": { "type": "integer" } },
              "changes": { "type": "array", "maxItems": 100, "items": { "type": "object", "additionalProperties": false, "required": ["id", "before", "after", "added", "removed"], "properties": {
                "id": { "type": "string" }, "before": { "$ref": "#/components/schemas/Names" }, "after": { "$ref": "#/components/schemas/Names" }, "added": { "$ref": "#/components/schemas/Names" }, "removed": { "$ref": "#/components/schemas/Names" } } } } } } } },
          "Names": { "type": "array", "items": { "type": "string" } },
          "ReplayStatus": { "type": "object", "additionalProperties": false, "required": ["replay_id", "state", "matched_events", "deliveries", "started", "succeeded", "dead", "skipped", "retrying", "in_flight", "attempts", "started_at", "finished_at"], "properties": {
            "replay_id": { "type": "string" }, "state": { "enum": ["running", "finished"] }, "matched_events": { "type": "integer" }, "deliveries": { "type": "integer" },
            "started": { "type": "integer" }, "succeeded": { "type": "integer" }, "dead": { "type": "integer" }, "skipped": { "type": "integer" },
            "retrying": { "type": "integer" }, "in_flight": { "type": "integer" }, "attempts": { "type": "integer" },
            "started_at": { "type": "string", "format": "date-time" }, "finished_at": { "type": ["string", "null"] } } }
        }
      }
    }
    """#
}
