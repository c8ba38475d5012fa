import Email
import EsteiraService
import Exports
import LeadMigrations
import Messaging
import StoreSyncs

/// Every workload of the deployment, in one list that each executable hands the runtime: the
/// kinds and migrations of all of them are known everywhere, each executable runs the
/// handlers it registers, and the api serves every workload's routes. A new workload module
/// is added here once.
public enum Workloads {
    /// The workload modules.
    public static let all: [any WorkloadModule.Type] = [LeadMigrations.self, Exports.self, StoreSyncs.self, Messaging.self, Email.self]
}
