import EsteiraCore
import Foundation
import Logging
import Postgres

/// `lead-migration.plan`: plans a migration and enqueues its batches.
public struct LeadMigrationPlanHandler: JobHandler {
    let pool: PostgresPool
    let enqueuer: Enqueuer

    public init(pool: PostgresPool, enqueuer: Enqueuer) {
        self.pool = pool
        self.enqueuer = enqueuer
    }

    public func run(_ job: JobContext) async throws -> JSONValue? {
        guard let text = job.payload["lead_migration_id"]?.stringValue, let id = UUID(uuidString: text) else {
            throw JobError.permanent("payload needs lead_migration_id")
        }
        let (migration, batches) = try await pool.transaction { try LeadMigrationStore.plan(id, on: $0) }
        var start = 0
        while start < batches.count {
            let chunk = batches[start..<min(start + 5000, batches.count)]
            try await enqueuer.enqueue(chunk.map { n in
                NewJob(kind: LeadMigrationKinds.batch,
                       payload: #"{"lead_migration_id":"\#(id.uuidString.lowercased())","batch":\#(n)}"#,
                       idempotencyKey: "lead-migration:\(id.uuidString.lowercased()):\(n)",
                       ownerID: migration.ownerID)
            })
            start += chunk.count
        }
        return .object(["total": .number(Double(migration.total ?? 0)), "batches": .number(Double(batches.count))])
    }
}

/// `lead-migration.batch`: moves one batch. A failure is retried by the kind's policy; on the
/// last attempt (or a permanent error) the batch is recorded as failed and the migration
/// goes on with the others.
public struct LeadMigrationBatchHandler: JobHandler {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func run(_ job: JobContext) async throws -> JSONValue? {
        guard let text = job.payload["lead_migration_id"]?.stringValue, let id = UUID(uuidString: text),
              let n = job.payload["batch"]?.doubleValue, let batch = Int(exactly: n) else {
            throw JobError.permanent("payload needs lead_migration_id and batch")
        }
        do {
            let outcome = try await pool.withConnection { try LeadMigrationStore.runBatch(id, batch: batch, on: $0) }
            switch outcome {
            case .moved(let count): return .object(["moved": .number(Double(count))])
            case .alreadyDone: return .object(["moved": .number(0), "already_done": .bool(true)])
            case .cancelled: return .object(["moved": .number(0), "cancelled": .bool(true)])
            }
        } catch let error as PostgresError where error.code == .unexpectedResult {
            throw JobError.permanent("\(error)")
        } catch {
            let last = job.attempt >= job.maxAttempts
            if last {
                let message = "\(error)"
                try? await pool.withConnection { try LeadMigrationStore.failBatch(id, batch: batch, error: message, on: $0) }
            }
            throw error
        }
    }
}
