import Foundation
import Postgres
import Testing

@Suite struct PoolTests {
    /// Counts a pool's connections from the server's side.
    static func serverConnections(_ connection: PostgresConnection, applicationName: String) throws -> Int {
        try connection.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                             [applicationName]).first!.decode(Int.self, at: 0)
    }

    @Test func twoHundredTasksShareFourConnections() async throws {
        let name = TestDatabase.uniqueName("pool")
        // A generous wait for a free connection: this checks sharing, not speed, and the
        // machine may be busy with other tests.
        let pool = PostgresPool(configuration: try TestDatabase.configuration(applicationName: name),
                                maxConnections: 4, acquireTimeout: .seconds(300))
        defer { pool.close() }
        let seen = try await withThrowingTaskGroup(of: (Int, Int32).self) { group in
            for task in 0..<200 {
                group.addTask {
                    try await pool.withConnection { connection in
                        let row = try connection.query(
                            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1), pg_sleep(0.002)",
                            [name]).first!
                        _ = task
                        return (try row.decode(Int.self, at: 0), connection.backendPID)
                    }
                }
            }
            var results: [(Int, Int32)] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(seen.count == 200)
        #expect(seen.allSatisfy { $0.0 >= 1 && $0.0 <= 4 })
        #expect(Set(seen.map(\.1)).count <= 4)
        #expect(pool.statistics.open <= 4)
        print("pool: 200 tasks ran on \(Set(seen.map(\.1)).count) connections, at most \(seen.map(\.0).max()!) seen at once")
    }

    @Test func terminatedConnectionIsReplacedOnNextAcquire() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration(), maxConnections: 1)
        defer { pool.close() }
        let admin = try TestDatabase.connect()
        let first = try await pool.withConnection { $0.backendPID }
        _ = try admin.query("SELECT pg_terminate_backend($1)", [first])
        // Wait until the backend is gone, so its close has reached the client socket.
        for _ in 0..<200 {
            let alive = try admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", [first])
                .first!.decode(Int.self, at: 0)
            if alive == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let (second, one) = try await pool.withConnection { connection in
            (connection.backendPID, try connection.query("SELECT 1").first!.decode(Int.self, at: 0))
        }
        #expect(one == 1)
        #expect(second != first)
    }

    @Test func brokenConnectionIsDiscardedAfterTheBodyFails() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration(), maxConnections: 1)
        defer { pool.close() }
        let first = try await pool.withConnection { $0.backendPID }
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { connection in
                try connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
            }
        }
        #expect(error?.code == .connectionLost)
        let second = try await pool.withConnection { $0.backendPID }
        #expect(second != first)
    }

    @Test func waitersTimeOutAndCloseFailsThem() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration(), maxConnections: 1,
                                acquireTimeout: .milliseconds(200))
        // The holder keeps the only connection until the test lets it go: it waits for an
        // advisory lock another connection holds.
        let key = Int64.random(in: 1...Int64.max)
        let locker = try PostgresConnection(configuration: try TestDatabase.configuration())
        defer { locker.close() }
        _ = try locker.query("SELECT pg_advisory_lock($1)", [key])
        async let holder: Void = pool.withConnection { connection in
            _ = try connection.query("SELECT pg_advisory_lock($1), pg_advisory_unlock($1)", [key])
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while try locker.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = ($1 & 4294967295)::oid",
                               [key]).first!.decode(Int.self, at: 0) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let timeout = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { _ in 1 }
        }
        #expect(timeout?.code == .acquireTimeout)

        // Closing the pool fails a waiter at once (a pool whose waiters do not time out
        // first, so only the close can end the wait).
        let patient = PostgresPool(configuration: try TestDatabase.configuration(), maxConnections: 1,
                                   acquireTimeout: .seconds(300))
        async let patientHolder: Void = patient.withConnection { connection in
            _ = try connection.query("SELECT pg_advisory_lock($1), pg_advisory_unlock($1)", [key])
        }
        while try locker.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = ($1 & 4294967295)::oid",
                               [key]).first!.decode(Int.self, at: 0) < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let waiter = Task { try await patient.withConnection { _ in 1 } }
        try await Task.sleep(for: .milliseconds(100))
        patient.close()
        pool.close()
        let failed = await #expect(throws: PostgresError.self) { try await waiter.value }
        #expect(failed?.code == .poolClosed)
        _ = try locker.query("SELECT pg_advisory_unlock($1)", [key])
        try await holder
        try await patientHolder
        let closed = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 1 } }
        #expect(closed?.code == .poolClosed)
    }

    @Test func poolTransactionRollsBack() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration(), maxConnections: 2)
        defer { pool.close() }
        let table = TestDatabase.uniqueName("pooltx")
        try await pool.withConnection { try $0.execute("CREATE TABLE \(table) (id int)") }
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await pool.transaction { connection in
                try connection.execute("INSERT INTO \(table) VALUES (1)")
                throw Boom()
            }
        }
        try await pool.transaction { try $0.execute("INSERT INTO \(table) VALUES (2)") }
        let ids = try await pool.withConnection { connection in
            try connection.query("SELECT id FROM \(table)").map { try $0.decode(Int.self, at: 0) }
        }
        #expect(ids == [2])
        try await pool.withConnection { try $0.execute("DROP TABLE \(table)") }
    }
}
