import EsteiraCore
import Foundation
import Testing

/// PostgreSQL highly available, as docs/cluster.md describes it: a primary with a streaming
/// replica, and the services reaching "the database" by a name that a failover manager
/// points at whichever is primary (here a forwarder standing for that name). A planned
/// switch-over (the primary stopped, the replica promoted, the name moved to it: a restart
/// at a new address behind the same name) under the crash suite's load: the services
/// reconnect by themselves and every accepted job ends exactly once.
@Suite struct DatabaseSwitchoverTests {
    @Test func aSwitchOverToThePromotedReplicaLosesNoJob() async throws {
        let primary = try await PrivatePostgres()
        let replicaDirectory = TestPaths.scratch("esteira-pg-replica")
        let replicaPort = freePortBlock(1)
        try await stackScript("mkdir -p '\(replicaDirectory)'; pg_replica_start \(primary.port) '\(replicaDirectory)' \(replicaPort)")
        defer { stackScriptBlocking("pg_stop '\(replicaDirectory)'; pg_destroy '\(replicaDirectory)'; rm -rf '\(replicaDirectory)'") }

        let target = FileManager.default.temporaryDirectory.appendingPathComponent("pg-target-\(UUID().uuidString)")
        try "\(primary.port)\n".write(to: target, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: target) }
        let namePort = freePortBlock(1)
        let script = TestPaths.repositoryRoot.appendingPathComponent("Tests/Support/tcp_forward.py").path
        let forwarder = try ChildProcess(URL(fileURLWithPath: "/usr/bin/python3"), arguments: [script, "\(namePort)", target.path],
                                         environment: [:])
        defer { forwarder.signal(SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(10)
        while !forwarder.text.contains("ready"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

        let suite = try await CrashStack(postgres: primary, databaseAdminURL: "postgres://esteira@127.0.0.1:\(namePort)/esteira")
        try await suite.run("switch-over to the replica", fault: { _ in
            try await primary.stop()
            try await stackScript("pg_promote '\(replicaDirectory)'")
            try "\(replicaPort)\n".write(to: target, atomically: true, encoding: .utf8)
        }).report("database", "switch-over to the replica")
        // The jobs are in the promoted replica, which takes writes: the old primary is down.
        let onReplica = try await stackScript("psql -h 127.0.0.1 -p \(replicaPort) -U esteira -d postgres -Atc 'select pg_is_in_recovery()'")
        #expect(onReplica.contains("f"), "the replica was promoted: \(onReplica)")
        await suite.shutdown()
    }
}
