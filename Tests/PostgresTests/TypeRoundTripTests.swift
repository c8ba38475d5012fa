import Foundation
import Postgres
import Testing

@Suite struct TypeRoundTripTests {
    struct Payload: Codable, Equatable {
        var name: String
        var tags: [String]
        var count: Int
        var nested: [String: Double]
    }

    @Test func scalarsRoundTrip() throws {
        let connection = try TestDatabase.connect()
        let row = try #require(try connection.query(
            "SELECT $1::text, $2::int8, $3::int4, $4::bool, $5::float8, $6::uuid, $7::int2",
            ["héllo wörld ✓ 🚀 \u{0}x".replacingOccurrences(of: "\u{0}", with: ""), Int.max, Int32.min, true,
             3.141592653589793, UUID(uuidString: "8C1E0C9A-6E4B-4F4B-9C1F-2B0D7F2A3C4D")!, Int16(-7)]).first)
        #expect(try row.decode(String.self, at: 0) == "héllo wörld ✓ 🚀 x")
        #expect(try row.decode(Int.self, at: 1) == Int.max)
        #expect(try row.decode(Int64.self, at: 1) == Int64.max)
        #expect(try row.decode(Int32.self, at: 2) == Int32.min)
        #expect(try row.decode(Int.self, at: 2) == Int(Int32.min))
        #expect(try row.decode(Bool.self, at: 3) == true)
        #expect(try row.decode(Double.self, at: 4) == 3.141592653589793)
        #expect(try row.decode(UUID.self, at: 5) == UUID(uuidString: "8c1e0c9a-6e4b-4f4b-9c1f-2b0d7f2a3c4d"))
        #expect(try row.decode(Int16.self, at: 6) == -7)
    }

    @Test func nullsDecodeAsNilAndFailAsNonOptional() throws {
        let connection = try TestDatabase.connect()
        let nothing: String? = nil
        let row = try #require(try connection.query(
            "SELECT $1::text AS a, NULL::int8 AS b, NULL::uuid AS c, NULL::timestamptz AS d, NULL::bytea AS e, "
                + "NULL::text[] AS f, NULL::jsonb AS g", [nothing]).first)
        #expect(try row.decode(String?.self, named: "a") == nil)
        #expect(try row.decode(Int?.self, named: "b") == nil)
        #expect(try row.decode(UUID?.self, named: "c") == nil)
        #expect(try row.decode(Date?.self, named: "d") == nil)
        #expect(try row.decode(Data?.self, named: "e") == nil)
        #expect(try row.decode([String]?.self, named: "f") == nil)
        #expect(try row.decode(PostgresJSON<Payload>?.self, named: "g") == nil)
        #expect(try row.isNull(at: 1))
        let error = try #require(throws: PostgresError.self) { try row.decode(Int.self, named: "b") }
        #expect(error.code == .decodingFailed)
        #expect(error.columnName == "b")
        #expect(error.expectedType == "Int")
    }

    @Test func typeMismatchIsATypedDecodingError() throws {
        let connection = try TestDatabase.connect()
        let row = try #require(try connection.query("SELECT 'abc'::text AS word, 1::int8 AS big").first)
        let error = try #require(throws: PostgresError.self) { try row.decode(Int.self, named: "word") }
        #expect(error.code == .decodingFailed)
        #expect(error.columnName == "word")
        #expect(error.expectedType == "Int")
        #expect(error.actualOID == 25)
        let narrowing = try #require(throws: PostgresError.self) { try row.decode(Int32.self, at: 1) }
        #expect(narrowing.actualOID == 20)
        let missing = try #require(throws: PostgresError.self) { try row.decode(Int.self, named: "nope") }
        #expect(missing.code == .decodingFailed)
    }

    @Test func timestampsKeepMicrosecondsAcrossTimeZones() throws {
        let connection = try TestDatabase.connect()
        try connection.execute("SET TimeZone = 'Asia/Kolkata'")   // +05:30, a non-whole-hour offset
        let date = Date(timeIntervalSince1970: 1_700_000_000.123456)
        let row = try #require(try connection.query(
            "SELECT $1::timestamptz, $1::timestamptz::text, '2024-02-29 23:59:59.000001-03:00'::timestamptz, "
                + "'1969-07-20 20:17:40.5'::timestamp, '2024-01-02'::date", [date]).first)
        let back = try row.decode(Date.self, at: 0)
        #expect(abs(back.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
        #expect(try row.decode(String.self, at: 1) == "2023-11-15 03:43:20.123456+05:30")
        let leap = try row.decode(Date.self, at: 2)
        #expect(leap.timeIntervalSince1970 == 1_709_261_999.000001)   // 2024-03-01 02:59:59.000001 UTC
        #expect(try row.decode(Date.self, at: 3).timeIntervalSince1970 == -14_182_939.5)
        #expect(try row.decode(Date.self, at: 4).timeIntervalSince1970 == 1_704_153_600)

        // A local-mean-time offset with seconds (+05:53:28 in Kolkata before 1900).
        let old = try #require(try connection.query("SELECT '1850-01-01 00:00:00+00'::timestamptz").first)
        #expect(try old.decode(Date.self, at: 0).timeIntervalSince1970 == -3_786_825_600)
    }

    /// PostgreSQL has no year 0: 1 BC comes before 1 AD. Times before 1 AD go out and come
    /// back with " BC" (they went out as year 0000 and were refused).
    @Test func timestampsBeforeTheCommonEraRoundTrip() throws {
        let connection = try TestDatabase.connect()
        let firstOfAD = Date(timeIntervalSince1970: -62_135_596_800)        // 0001-01-01 00:00:00 UTC
        let lastDaysOfBC = firstOfAD.addingTimeInterval(-2 * 86_400 + 0.25)  // 1 BC, December 30
        let row = try #require(try connection.query(
            "SELECT $1::timestamptz, to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'), "
                + "$2::timestamptz, '0044-03-15 12:00:00+00 BC'::timestamptz", [lastDaysOfBC, firstOfAD]).first)
        #expect(try row.decode(Date.self, at: 0) == lastDaysOfBC)
        #expect(try row.decode(String.self, at: 1) == "0001-12-30 00:00:00.250000 BC")
        #expect(try row.decode(Date.self, at: 2) == firstOfAD)
        // 44 BC is astronomical year -43.
        #expect(try row.decode(Date.self, at: 3).timeIntervalSince1970 == -63_517_780_800)
    }

    /// Parameters travel to libpq as C strings, which end at a NUL: "a\0b" was sent as "a",
    /// without a word. It is an encoding error now (PostgreSQL's text cannot hold NUL).
    @Test func textWithNULIsRefusedNotCutShort() throws {
        let connection = try TestDatabase.connect()
        let error = try #require(throws: PostgresError.self) { try connection.query("SELECT $1::text", ["a\u{0}b"]) }
        #expect(error.code == .encodingFailed)
        let inArray = try #require(throws: PostgresError.self) { try connection.query("SELECT $1::text[]", [["ok", "x\u{0}"]]) }
        #expect(inArray.code == .encodingFailed)
        // The connection stays usable.
        #expect(try connection.query("SELECT 'a' || $1::text", ["b"]).first?.decode(String.self, at: 0) == "ab")
    }

    @Test func byteaKeepsZeroBytes() throws {
        let connection = try TestDatabase.connect()
        let bytes: [UInt8] = [0, 1, 0, 255, 0x5c, 0x78, 0, 0]
        let row = try #require(try connection.query("SELECT $1::bytea, $2::bytea, length($1::bytea)",
                                                    [bytes, Data(bytes)]).first)
        #expect(try row.decode([UInt8].self, at: 0) == bytes)
        #expect(try row.decode(Data.self, at: 1) == Data(bytes))
        #expect(try row.decode(Int.self, at: 2) == bytes.count)
        let empty = try #require(try connection.query("SELECT $1::bytea", [[UInt8]()]).first)
        #expect(try empty.decode([UInt8].self, at: 0) == [])
    }

    @Test func arraysRoundTripIncludingEmptyAndHostileElements() throws {
        let connection = try TestDatabase.connect()
        let texts = ["plain", "with space", "quote\"d", "back\\slash", "comma,brace}{", "NULL", "", "ünï ✓"]
        let ids = [UUID(), UUID()]
        let row = try #require(try connection.query(
            "SELECT $1::text[], $2::int8[], $3::uuid[], $4::text[], $5::int8[], $6::text[], $7::int4[], "
                + "cardinality($1::text[])",
            [texts, [1, -2, Int.max], ids, [String](), [Int](), ["a", nil, "c"] as [String?], [Int32(3), 4]]).first)
        #expect(try row.decode([String].self, at: 0) == texts)
        #expect(try row.decode([Int].self, at: 1) == [1, -2, Int.max])
        #expect(try row.decode([UUID].self, at: 2) == ids)
        #expect(try row.decode([String].self, at: 3) == [])
        #expect(try row.decode([Int].self, at: 4) == [])
        #expect(try row.decode([String?].self, at: 5) == ["a", nil, "c"])
        #expect(try row.decode([Int32].self, at: 6) == [3, 4])
        #expect(try row.decode(Int.self, at: 7) == texts.count)
        let error = try #require(throws: PostgresError.self) { try row.decode([String].self, at: 5) }
        #expect(error.code == .decodingFailed)
    }

    @Test func jsonbCodableAndRaw() throws {
        let connection = try TestDatabase.connect()
        let payload = Payload(name: "zé \"quoted\"\n", tags: ["a", "b"], count: 3, nested: ["x": 1.5])
        try TestDatabase.withTable("id int PRIMARY KEY, body jsonb, raw json", on: connection) { table in
            try connection.execute("INSERT INTO \(table) VALUES (1, $1, $2)",
                                   [PostgresJSON(payload), #"{"k": [1, 2]}"#])
            let row = try #require(try connection.query("SELECT body, raw, body->>'name' FROM \(table)").first)
            #expect(try row.decodeJSON(Payload.self, named: "body") == payload)
            #expect(try row.decode(PostgresJSON<Payload>.self, at: 0).value == payload)
            #expect(try row.decode(String.self, named: "raw") == #"{"k": [1, 2]}"#)
            #expect(try row.decode(Data.self, named: "raw") == Data(#"{"k": [1, 2]}"#.utf8))
            #expect(try row.decode(String.self, at: 2) == payload.name)
        }
    }

    @Test func doublesIncludingSpecialValues() throws {
        let connection = try TestDatabase.connect()
        let row = try #require(try connection.query("SELECT $1::float8, $2::float8, $3::float8, $4::numeric, 1e-300::float8",
                                                    [Double.infinity, -Double.infinity, Double.nan, 12.5]).first)
        #expect(try row.decode(Double.self, at: 0) == .infinity)
        #expect(try row.decode(Double.self, at: 1) == -.infinity)
        #expect(try row.decode(Double.self, at: 2).isNaN)
        #expect(try row.decode(Double.self, at: 3) == 12.5)
        #expect(try row.decode(Double.self, at: 4) == 1e-300)
    }
}
