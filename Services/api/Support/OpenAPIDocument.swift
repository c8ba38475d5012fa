import Foundation

/// The api's OpenAPI 3.1 description, served at /openapi.json. At start the api compares its
/// routes with the operations below and refuses to run when they differ.
struct OpenAPIDocument {
    let data: Data
    let operations: [(method: String, path: String)]

    static let shared: OpenAPIDocument = {
        let data = Data(OpenAPIDocument.text.utf8)
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let paths = root["paths"] as? [String: Any] else {
            fatalError("the embedded OpenAPI document is not valid JSON")
        }
        var operations: [(String, String)] = []
        for (path, item) in paths {
            for method in ((item as? [String: Any]) ?? [:]).keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                operations.append((method, path))
            }
        }
        return OpenAPIDocument(data: data, operations: operations)
    }()

    /// The document as an api serves it: the `Kind` schema (the kind of a new job, a schedule,
    /// the jobs listing's filter) lists the kinds this api accepts, from its kinds file.
    func with(kinds: [String]) -> OpenAPIDocument {
        let anchor = #""Kind": {"type": "string", "#
        let text = String(decoding: data, as: UTF8.self)
        guard text.contains(anchor),
              let list = try? JSONSerialization.data(withJSONObject: kinds, options: [.withoutEscapingSlashes]) else {
            return self
        }
        let served = text.replacingOccurrences(of: anchor, with: anchor + #""enum": "# + String(decoding: list, as: UTF8.self) + ", ")
        return OpenAPIDocument(data: Data(served.utf8), operations: operations)
    }

    static let text = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Esteira API",
    "version": "1.0.0",
    "description": "Jobs on RabbitMQ with PostgreSQL as their record. Every /v1 route needs `Authorization: Bearer <token>`. Admins see and control every job; users only the jobs they created (another user's job answers 404). Every error is an RFC 9457 problem (application/problem+json) whose `field` names the input at fault."
  },
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": {
    "/healthz": {
      "get": {"summary": "Health of the api and its servers", "security": [], "operationId": "health",
        "responses": {"200": {"description": "PostgreSQL and RabbitMQ answer"}, "503": {"description": "a check failed; the body names it"}}}
    },
    "/metrics": {
      "get": {"summary": "Prometheus metrics", "security": [], "operationId": "metrics",
        "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}
    },
    "/openapi.json": {
      "get": {"summary": "This document", "security": [], "operationId": "openapi",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}
    },
    "/v1/whoami": {
      "get": {"summary": "The principal of the bearer token", "operationId": "whoami",
        "responses": {"200": {"description": "the caller", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Principal"}}}},
                      "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/tokens": {
      "post": {"summary": "Create a principal and its token (admins only)", "operationId": "createToken",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {"201": {"description": "created; the token is shown only here", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "403": {"$ref": "#/components/responses/Forbidden"}, "409": {"$ref": "#/components/responses/Conflict"}}}
    },
    "/v1/jobs": {
      "post": {"summary": "Enqueue one job, or a batch of up to 10000", "operationId": "enqueue",
        "description": "The job row is written and published to RabbitMQ with a publisher confirm. The same (kind, idempotency_key) returns the existing job (200, created=false). A batch is all or nothing.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
          {"$ref": "#/components/schemas/NewJob"},
          {"type": "object", "required": ["jobs"], "additionalProperties": false,
           "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {"$ref": "#/components/schemas/NewJob"}}}}]}}}},
        "responses": {"201": {"description": "created (one job: the job; a batch: {jobs: [{id, kind, status, created}]})",
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                      "200": {"description": "the idempotency key was known: the existing job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "413": {"$ref": "#/components/responses/TooLarge"}, "422": {"$ref": "#/components/responses/Unprocessable"}}},
      "get": {"summary": "List jobs, newest first", "operationId": "listJobs",
        "parameters": [
          {"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/Kind"}},
          {"name": "status", "in": "query", "description": "one status or a comma-separated list", "schema": {"type": "string", "maxLength": 200,
            "pattern": "^(scheduled|queued|running|retrying|completed|dead|cancelled)(,(scheduled|queued|running|retrying|completed|dead|cancelled))*$"}},
          {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
          {"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
          {"name": "owner_id", "in": "query", "description": "admins only", "schema": {"type": "string", "format": "uuid"}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
          {"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
        "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobPage"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "403": {"$ref": "#/components/responses/Forbidden"}}}
    },
    "/v1/jobs/{id}": {
      "get": {"summary": "A job with its attempts and event history", "operationId": "getJob",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/v1/jobs/{id}/cancel": {
      "post": {"summary": "Cancel a scheduled, queued or retrying job", "operationId": "cancelJob",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"200": {"description": "cancelled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}, "409": {"$ref": "#/components/responses/Conflict"}}}
    },
    "/v1/dead-letters": {
      "get": {"summary": "Open dead letters (not requeued), newest first", "operationId": "listDeadLetters",
        "parameters": [
          {"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/KindName"}},
          {"name": "error_class", "in": "query", "schema": {"type": "string", "enum": ["transient", "permanent", "timeout", "poison", "cancelled"]}},
          {"name": "dead_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
          {"name": "dead_before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
          {"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}}],
        "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeadLetterPage"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/dead-letters/requeue": {
      "post": {"summary": "Put dead jobs back on their queues with attempts reset (recorded)", "operationId": "requeue",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RequeueRequest"}}}},
        "responses": {"200": {"description": "what was requeued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RequeueResult"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/stats": {
      "get": {"summary": "Per kind and status: counts, average attempts, wait and run time p50/p95", "operationId": "stats",
        "parameters": [
          {"name": "from", "in": "query", "description": "jobs created at or after (default: 24 h ago)", "schema": {"type": "string", "format": "date-time"}},
          {"name": "to", "in": "query", "description": "jobs created before (default: now)", "schema": {"type": "string", "format": "date-time"}}],
        "responses": {"200": {"description": "rows", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stats"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/events": {
      "get": {"summary": "Server-Sent Events of job state changes", "operationId": "events",
        "description": "Each event: `id: <event id>`, `event: job`, `data: <Event JSON>`. Reconnect with the Last-Event-ID header (or last_event_id) to resume after the last event seen; without it the stream starts with new events, or with the whole history when job_id is given.",
        "parameters": [
          {"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/KindName"}},
          {"name": "job_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
          {"name": "owner_id", "in": "query", "description": "admins only", "schema": {"type": "string", "format": "uuid"}},
          {"name": "last_event_id", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}},
          {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}}],
        "responses": {"200": {"description": "an endless event stream", "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/ServerSentEvent"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "403": {"$ref": "#/components/responses/Forbidden"}, "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/v1/schedules": {
      "post": {"summary": "Create a cron schedule: each tick enqueues one job", "operationId": "createSchedule",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/ScheduleRequest"}], "required": ["name", "cron", "kind"]}}}},
        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "409": {"description": "a schedule of that name exists (field: name)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                      "413": {"$ref": "#/components/responses/TooLarge"},
                      "422": {"description": "invalid cron expression, unknown time zone or unknown kind (the field names which)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}},
      "get": {"summary": "Schedules by name", "operationId": "listSchedules",
        "parameters": [{"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/KindName"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
        "responses": {"200": {"description": "{schedules: [Schedule]}"}, "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/schedules/{id}": {
      "get": {"summary": "One schedule", "operationId": "getSchedule",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"200": {"description": "the schedule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}}},
      "patch": {"summary": "Change any field; a new cron, time zone or enabling starts from the next tick after now", "operationId": "updateSchedule",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/ScheduleRequest"}], "minProperties": 1}}}},
        "responses": {"200": {"description": "the schedule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"},
                      "409": {"description": "a schedule of that name exists", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                      "413": {"$ref": "#/components/responses/TooLarge"},
                      "422": {"description": "invalid cron expression, unknown time zone or unknown kind", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}},
      "delete": {"summary": "Delete a schedule; the jobs it enqueued stay", "operationId": "deleteSchedule",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"204": {"description": "deleted"}, "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"$ref": "#/components/responses/Unauthorized"}, "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/v1/metrics/queues": {
      "get": {"summary": "Per kind per minute: enqueued, started, completed, failed, retried, dead, wait and run p50/p95/p99 (admins)", "operationId": "queueMetrics",
        "parameters": [{"name": "kind", "in": "query", "schema": {"$ref": "#/components/schemas/KindName"}},
                       {"name": "from", "in": "query", "description": "RFC 3339; default an hour before `to`", "schema": {"type": "string", "format": "date-time"}},
                       {"name": "to", "in": "query", "description": "RFC 3339, exclusive; default now; at most 31 days after `from`", "schema": {"type": "string", "format": "date-time"}}],
        "responses": {"200": {"description": "{from, to, minutes: [QueueMinute]}"}, "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"$ref": "#/components/responses/Unauthorized"}, "403": {"$ref": "#/components/responses/Forbidden"}}}
    },
    "/v1/lead-migrations": {
      "post": {"summary": "Move every lead of an import run into a funnel column, in batches", "operationId": "createLeadMigration",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadMigrationRequest"}}}},
        "responses": {"202": {"description": "accepted; batches run on the processors", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadMigration"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"description": "unknown funnel_id or column_id (the field names which)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                      "422": {"description": "the column is not in the funnel", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}},
      "get": {"summary": "Summary per state, and the newest migrations", "operationId": "listLeadMigrations",
        "parameters": [{"name": "state", "in": "query", "schema": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
        "responses": {"200": {"description": "summary and migrations"}, "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"$ref": "#/components/responses/Unauthorized"}}}
    },
    "/v1/lead-migrations/{id}": {
      "get": {"summary": "A migration: state, total, moved, failed, pending, percent, timestamps", "operationId": "getLeadMigration",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"200": {"description": "the migration", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadMigration"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}}}
    },
    "/v1/lead-migrations/{id}/cancel": {
      "post": {"summary": "Stop the batches not yet done; moved leads stay moved", "operationId": "cancelLeadMigration",
        "parameters": [{"$ref": "#/components/parameters/JobId"}],
        "responses": {"200": {"description": "cancelled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadMigration"}}}},
                      "400": {"$ref": "#/components/responses/BadRequest"}, "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": {"$ref": "#/components/responses/NotFound"}, "409": {"$ref": "#/components/responses/Conflict"}}}
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "parameters": {"JobId": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}},
    "responses": {
      "BadRequest": {"description": "malformed JSON, a bad field, id, filter or cursor", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "Unauthorized": {"description": "no token, or a bad one", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "Forbidden": {"description": "admins only", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "NotFound": {"description": "no such job for this caller", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "Conflict": {"description": "the state does not allow it", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "TooLarge": {"description": "payload or body over the limit", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
      "Unprocessable": {"description": "unknown kind", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    },
    "schemas": {
      "Kind": {"type": "string", "description": "noop, http, or a kind of the kinds file (the api serves this document with the kinds it knows as an enum)"},
      "KindName": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,62}$", "description": "a kind name, known or not"},
      "RowId": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807},
      "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
        "field": {"type": "string", "description": "the input at fault, e.g. payload, jobs[3].kind, cursor"}}},
      "Principal": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "user"]}}},
      "TokenRequest": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200}, "role": {"type": "string", "enum": ["admin", "user"], "default": "user"}}},
      "Token": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "role": {"type": "string"}, "token": {"type": "string"}}},
      "NewJob": {"type": "object", "required": ["kind"], "additionalProperties": false,
        "not": {"required": ["run_after", "delay_seconds"], "description": "run_after or delay_seconds, not both"}, "properties": {
        "kind": {"$ref": "#/components/schemas/Kind"},
        "payload": {"description": "any JSON, at most ESTEIRA_API_MAX_PAYLOAD_BYTES (default 1 MiB); http jobs: {url | endpoint, body?, headers?}"},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9, "description": "0 (default) to 9, 9 first; above 0 only for kinds whose policy sets priorities (else 422)"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
        "run_after": {"type": "string", "format": "date-time"},
        "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 31622400}}},
      "Job": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["scheduled", "queued", "running", "retrying", "completed", "dead", "cancelled"]},
        "payload": {}, "idempotency_key": {"type": "string"}, "priority": {"type": "integer"},
        "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"}, "run_after": {"type": "string", "format": "date-time"},
        "owner_id": {"type": "string", "format": "uuid"}, "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}, "published_at": {"type": "string", "format": "date-time", "description": "when the job's message reached the broker; a job the enqueuer published right after its commit reports its created_at until a processor claims it; absent while unpublished"},
        "started_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": "string", "format": "date-time"},
        "last_error": {"type": "string"}, "last_error_class": {"type": "string"}, "progress": {}, "result": {},
        "created": {"type": "boolean", "description": "POST only: false when an existing job was returned"},
        "attempt_history": {"type": "array", "items": {"$ref": "#/components/schemas/Attempt"}, "description": "GET /v1/jobs/{id} only"},
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "description": "GET /v1/jobs/{id} only"}}},
      "ServerSentEvent": {"type": "object", "description": "one event of the stream (its fields, each a line)", "required": ["id", "event", "data"], "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's id; Last-Event-ID resumes after it"},
        "event": {"const": "job"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"$ref": "#/components/schemas/Event"}}}},
      "Attempt": {"type": "object", "properties": {"attempt": {"type": "integer"}, "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time"}, "outcome": {"type": "string"}, "error": {"type": "string"}, "error_class": {"type": "string"}}},
      "Event": {"type": "object", "properties": {"id": {"type": "integer"}, "job_id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"},
        "status": {"type": "string"}, "attempt": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "detail": {}}},
      "JobPage": {"type": "object", "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}, "next_cursor": {"type": "string"}}},
      "DeadLetter": {"type": "object", "properties": {"id": {"type": "integer"}, "job_id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"},
        "reason": {"type": "string"}, "error_class": {"type": "string"}, "attempts": {"type": "integer"}, "dead_at": {"type": "string", "format": "date-time"},
        "raw_message": {"type": "string", "description": "base64; poison messages only"}}},
      "DeadLetterPage": {"type": "object", "properties": {"dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}, "next_cursor": {"type": "string"}}},
      "RequeueRequest": {"type": "object", "additionalProperties": false, "description": "at least one of job_ids, kind, error_class, dead_after, dead_before",
        "anyOf": [{"required": ["job_ids"]}, {"required": ["kind"]}, {"required": ["error_class"]}, {"required": ["dead_after"]}, {"required": ["dead_before"]}], "properties": {
        "job_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1, "maxItems": 10000},
        "kind": {"$ref": "#/components/schemas/KindName"}, "error_class": {"type": "string", "enum": ["transient", "permanent", "timeout", "poison", "cancelled"]},
        "dead_after": {"type": "string", "format": "date-time"}, "dead_before": {"type": "string", "format": "date-time"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}},
      "RequeueResult": {"type": "object", "properties": {"requeue_id": {"type": "integer"}, "count": {"type": "integer"},
        "job_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}}}},
      "LeadMigrationRequest": {"type": "object", "required": ["run_id", "funnel_id", "column_id"], "additionalProperties": false, "properties": {
        "run_id": {"$ref": "#/components/schemas/RowId"}, "funnel_id": {"$ref": "#/components/schemas/RowId"}, "column_id": {"$ref": "#/components/schemas/RowId"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}},
      "ScheduleRequest": {"type": "object", "additionalProperties": false, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "unique per owner; required to create"},
        "cron": {"type": "string", "minLength": 1, "maxLength": 200, "examples": ["*/5 * * * *", "0 30 9 * * 1", "@daily"], "description": "5 fields (minute hour day month weekday) or 6 with seconds first, e.g. '*/10 * * * * *'; @hourly, @daily, @weekly, @monthly, @yearly; required to create"},
        "time_zone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC", "examples": ["UTC", "Europe/Lisbon"], "description": "IANA name, e.g. Europe/Lisbon"},
        "kind": {"$ref": "#/components/schemas/Kind"},
        "payload": {"description": "the payload of every job it enqueues", "default": {}},
        "enabled": {"type": "boolean", "default": true}}},
      "Schedule": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "cron": {"type": "string"}, "time_zone": {"type": "string"},
        "kind": {"type": "string"}, "payload": {}, "enabled": {"type": "boolean"}, "owner_id": {"type": "string", "format": "uuid"},
        "next_run_at": {"type": "string", "format": "date-time", "description": "absent while disabled"},
        "last_run_at": {"type": "string", "format": "date-time"}, "last_job_id": {"type": "string", "format": "uuid"},
        "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}},
      "QueueMinute": {"type": "object", "properties": {
        "kind": {"type": "string"}, "minute": {"type": "string", "format": "date-time"},
        "enqueued": {"type": "integer"}, "started": {"type": "integer"}, "completed": {"type": "integer"},
        "failed": {"type": "integer", "description": "attempts that ended retrying or dead"}, "retried": {"type": "integer"}, "dead": {"type": "integer"},
        "wait_p50": {"type": "number"}, "wait_p95": {"type": "number"}, "wait_p99": {"type": "number"},
        "run_p50": {"type": "number"}, "run_p95": {"type": "number"}, "run_p99": {"type": "number"}}},
      "LeadMigration": {"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "run_id": {"type": "integer"}, "funnel_id": {"type": "integer"}, "column_id": {"type": "integer"},
        "batch_size": {"type": "integer"}, "state": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]},
        "total": {"type": "integer"}, "moved": {"type": "integer"}, "failed": {"type": "integer"}, "pending": {"type": "integer"},
        "batches": {"type": "integer"}, "batches_done": {"type": "integer"}, "percent": {"type": "number"},
        "job_id": {"type": "string", "format": "uuid", "description": "the planning job; its events (status progress) carry the progress on /v1/events"},
        "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"}, "cancelled_at": {"type": "string", "format": "date-time"}}},
      "Stats": {"type": "object", "properties": {"from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
        "rows": {"type": "array", "items": {"type": "object", "properties": {"kind": {"type": "string"}, "status": {"type": "string"}, "count": {"type": "integer"},
          "average_attempts": {"type": "number"}, "wait_p50": {"type": "number"}, "wait_p95": {"type": "number"}, "run_p50": {"type": "number"}, "run_p95": {"type": "number"}}}}}}
    }
  }
}
"""#
}
