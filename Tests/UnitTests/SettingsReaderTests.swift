import EsteiraCore
import Testing

@Suite struct SettingsReaderTests {
    @Test func aFlagWinsOverItsVariableAndTheVariableOverTheDefault() throws {
        let reader = SettingsReader(environment: ["ESTEIRA_X": "7"])
        #expect(try reader.integer("ESTEIRA_X", default: 1, range: 1...10) == 7)
        #expect(try reader.integer("ESTEIRA_X", flag: 9, default: 1, range: 1...10) == 9)
        #expect(try reader.integer("ESTEIRA_Y", default: 1, range: 1...10) == 1)
        #expect(try reader.overriding("ESTEIRA_X", with: "3").integer("ESTEIRA_X", default: 1, range: 1...10) == 3)
        #expect(try reader.overriding("ESTEIRA_X", with: nil).integer("ESTEIRA_X", default: 1, range: 1...10) == 7)
    }

    @Test func blankCountsAsUnset() throws {
        let reader = SettingsReader(environment: ["ESTEIRA_X": "  ", "ESTEIRA_L": " a, ,b ,"])
        #expect(reader.string("ESTEIRA_X") == nil)
        #expect(try reader.double("ESTEIRA_X", default: 2.5, range: 0...10) == 2.5)
        #expect(reader.list("ESTEIRA_L") == ["a", "b"])
    }

    @Test(arguments: [("ESTEIRA_N", "11"), ("ESTEIRA_N", "x"), ("ESTEIRA_D", "nan"), ("ESTEIRA_D", "-1"), ("ESTEIRA_B", "maybe"),
                      ("ESTEIRA_C", "purple")])
    func valuesOutOfRangeNameTheirVariable(name: String, value: String) {
        let reader = SettingsReader(environment: [name: value])
        let error = #expect(throws: ConfigurationError.self) {
            switch name {
            case "ESTEIRA_N": _ = try reader.integer(name, default: 1, range: 1...10)
            case "ESTEIRA_D": _ = try reader.double(name, default: 1, range: 0...10)
            case "ESTEIRA_B": _ = try reader.bool(name, default: true)
            default: _ = try reader.choice(name, default: "red", among: ["red", "green"])
            }
        }
        #expect(error?.variable == name)
        #expect(error?.value == value)
    }

    @Test func booleansAndTheFlagThatSetsOne() throws {
        #expect(try SettingsReader(environment: ["B": "false"]).bool("B", default: true) == false)
        #expect(try SettingsReader(environment: ["B": "YES"]).bool("B", default: false) == true)
        #expect(try SettingsReader(environment: ["B": "false"]).bool("B", flag: true, default: true) == true)
    }

    @Test func helpTextListsEveryVariable() {
        let text = Setting.helpText(EsteiraConfiguration.settings)
        for s in EsteiraConfiguration.settings {
            #expect(text.contains("\(s.name)\(s.flag.map { " (\($0))" } ?? ""): \(s.help)"))
        }
        #expect(text.contains("ESTEIRA_LOG_LEVEL (--log-level): "))
        #expect(Setting("X", "what", flag: "--x").flagHelp == "what (env X)")
    }
}

@Suite struct BackoffTests {
    @Test func doublesFromItsFirstWaitUpToItsLongest() {
        let b = Backoff.standard
        #expect([1, 2, 3, 4, 5, 6, 7, 100, 0].map { b.delay(after: $0) } == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 0.1])
    }
}
