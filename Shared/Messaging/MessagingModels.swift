import EsteiraCore
import Foundation
import Postgres

/// The messaging kinds, with the team's names.
public enum MessagingKinds {
    /// One message to one contact through a provider instance.
    public static let send = "envio_mensagem"
    /// A campaign: one `envio_mensagem` per contact as a batch, then the campaign's progress
    /// until the batch ends.
    public static let campaign = "envio_campanha"
    /// A provider webhook stored by the ingestor, applied (receipts, incoming messages).
    public static let webhook = "processamento_webhook"
}

/// Why a messaging request was refused.
public enum MessagingError: Error, Sendable, Equatable {
    case instanceNotFound(UUID)
    case contactNotFound(UUID)
    case campaignNotFound(UUID)
    /// Another contact of the owner has this phone number.
    case duplicatePhone(String)
    /// Some of the contacts given are not the owner's.
    case unknownContacts([UUID])
    /// The campaign has ended; it cannot be cancelled.
    case campaignEnded(String)
}

/// A campaign's status, as the team names them.
public enum CampaignStatus: String, Sendable, CaseIterable {
    case pendente, enviando, concluida
    case concluidaComFalhas = "concluida_com_falhas"
    case cancelada, falha

    public var isActive: Bool { self == .pendente || self == .enviando }
}

/// A message's status: `pendente` → `enviada` → `entregue` → `lida`, or `falha`; `cancelada`
/// (its campaign was cancelled before it was sent); `recebida` (an incoming message).
public enum MessageStatus: String, Sendable, CaseIterable {
    case pendente, enviada, entregue, lida, falha, cancelada, recebida

    /// The order receipts move a sent message in: a receipt never moves it back.
    var rank: Int {
        switch self {
        case .pendente: return 0
        case .enviada: return 1
        case .entregue: return 2
        case .lida: return 3
        default: return 0
        }
    }
}

/// A phone number as the provider takes it: `+` and 8 to 15 digits (E.164).
enum PhoneNumber {
    static func normalized(_ text: String) -> String? {
        let digits = text.filter(\.isNumber)
        guard text.hasPrefix("+") || text.first?.isNumber == true,
              text.allSatisfy({ $0.isNumber || " +-().".contains($0) }),
              (8...15).contains(digits.count), digits.allSatisfy(\.isASCII) else { return nil }
        return "+" + digits
    }
}

/// Rows as the api returns them: each table's columns as JSON (PostgreSQL's `to_jsonb`, the
/// same shape the live feeds send), secrets left out.
enum MessagingJSON {
    static let instance = "(to_jsonb(i) - 'token' - 'webhook_secret')::text"
    static let contact = "to_jsonb(c)::text"
    static let message = "to_jsonb(m)::text"
    static let campaign = "to_jsonb(k)::text"

    /// `{"<key>": [rows...]}` from rows already JSON.
    static func list(_ key: String, _ rows: [String], extra: String = "") -> String {
        "{\"\(key)\":[" + rows.joined(separator: ",") + "]" + extra + "}"
    }
}
