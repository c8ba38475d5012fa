/// A PostgreSQL type, by OID, as far as this client needs it: to tag parameters and to check
/// that a column can be decoded into the Swift type asked for.
public struct PostgresDataType: Hashable, Sendable, CustomStringConvertible {
    /// The type's OID in `pg_type`; 0 means "unknown: let the server infer it".
    public let oid: UInt32
    /// The OID of the array type whose elements are this type, when known.
    public let arrayOID: UInt32?

    /// A type from its OID and, if any, its array type's OID.
    public init(oid: UInt32, arrayOID: UInt32? = nil) {
        self.oid = oid
        self.arrayOID = arrayOID
    }

    /// Unknown: the server infers the type from the statement.
    public static let unknown = PostgresDataType(oid: 0)
    /// `boolean`.
    public static let bool = PostgresDataType(oid: 16, arrayOID: 1000)
    /// `bytea`.
    public static let bytea = PostgresDataType(oid: 17, arrayOID: 1001)
    /// `name` (identifiers in the catalogs).
    public static let name = PostgresDataType(oid: 19, arrayOID: 1003)
    /// `bigint`.
    public static let int8 = PostgresDataType(oid: 20, arrayOID: 1016)
    /// `smallint`.
    public static let int2 = PostgresDataType(oid: 21, arrayOID: 1005)
    /// `integer`.
    public static let int4 = PostgresDataType(oid: 23, arrayOID: 1007)
    /// `text`.
    public static let text = PostgresDataType(oid: 25, arrayOID: 1009)
    /// `oid`.
    public static let oidType = PostgresDataType(oid: 26, arrayOID: 1028)
    /// `json`.
    public static let json = PostgresDataType(oid: 114, arrayOID: 199)
    /// `real`.
    public static let float4 = PostgresDataType(oid: 700, arrayOID: 1021)
    /// `double precision`.
    public static let float8 = PostgresDataType(oid: 701, arrayOID: 1022)
    /// `character(n)`.
    public static let bpchar = PostgresDataType(oid: 1042, arrayOID: 1014)
    /// `character varying`.
    public static let varchar = PostgresDataType(oid: 1043, arrayOID: 1015)
    /// `date`.
    public static let date = PostgresDataType(oid: 1082, arrayOID: 1182)
    /// `timestamp without time zone`.
    public static let timestamp = PostgresDataType(oid: 1114, arrayOID: 1115)
    /// `timestamp with time zone`.
    public static let timestamptz = PostgresDataType(oid: 1184, arrayOID: 1185)
    /// `numeric`.
    public static let numeric = PostgresDataType(oid: 1700, arrayOID: 1231)
    /// `uuid`.
    public static let uuid = PostgresDataType(oid: 2950, arrayOID: 2951)
    /// `jsonb`.
    public static let jsonb = PostgresDataType(oid: 3802, arrayOID: 3807)

    static let known: [PostgresDataType] = [
        .bool, .bytea, .name, .int8, .int2, .int4, .text, .oidType, .json, .float4, .float8,
        .bpchar, .varchar, .date, .timestamp, .timestamptz, .numeric, .uuid, .jsonb,
    ]

    /// Element OID for an array type OID, for the array types listed above.
    static let elementOIDs: [UInt32: UInt32] = {
        var map: [UInt32: UInt32] = [:]
        for type in known { if let array = type.arrayOID { map[array] = type.oid } }
        return map
    }()

    /// The OID, e.g. "OID 25".
    public var description: String { "OID \(oid)" }
}
