import Foundation

/// HTML building: every value goes through `esc` (text and attribute values alike); URLs built
/// from values percent-encode each segment first.
enum HTML {
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A path segment, percent-encoded (then escaped where it lands in an attribute).
    static func seg(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~@:+")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    static func query(_ pairs: [(String, String?)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~@:")
        let parts = pairs.compactMap { k, v -> String? in
            guard let v, !v.isEmpty else { return nil }
            return k + "=" + (v.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    static func csrfField(_ token: String) -> String {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(esc(token))\">"
    }

    /// A small POST form with one button (state changes are never links).
    static func button(_ action: String, _ label: String, csrf: String, fields: [(String, String)] = [], confirm: String? = nil, cls: String = "") -> String {
        var s = "<form method=\"post\" action=\"\(esc(action))\" class=\"inline\"\(confirm.map { " data-confirm=\"\(esc($0))\"" } ?? "")>" + csrfField(csrf)
        for (k, v) in fields { s += "<input type=\"hidden\" name=\"\(esc(k))\" value=\"\(esc(v))\">" }
        s += "<button type=\"submit\"\(cls.isEmpty ? "" : " class=\"\(esc(cls))\"")>\(esc(label))</button></form>"
        return s
    }

    /// A field's refusal, next to it (`aria-describedby` ties it to the input).
    static func fieldError(_ name: String, _ error: String?) -> String {
        guard let error else { return "" }
        return "<span class=\"field-error\" id=\"error-\(esc(name))\">\(esc(error))</span>"
    }

    static func invalid(_ name: String, _ error: String?) -> String {
        error == nil ? "" : " aria-invalid=\"true\" aria-describedby=\"error-\(esc(name))\""
    }

    static func input(_ name: String, _ label: String, value: String = "", type: String = "text", required: Bool = false, placeholder: String = "", extra: String = "", error: String? = nil) -> String {
        "<label\(error == nil ? "" : " class=\"invalid\"")>\(esc(label))<input type=\"\(esc(type))\" name=\"\(esc(name))\" value=\"\(esc(value))\"\(required ? " required" : "")\(placeholder.isEmpty ? "" : " placeholder=\"\(esc(placeholder))\"")\(extra)\(invalid(name, error))>\(fieldError(name, error))</label>"
    }

    static func select(_ name: String, _ label: String, _ options: [String], selected: String, error: String? = nil) -> String {
        "<label\(error == nil ? "" : " class=\"invalid\"")>\(esc(label))<select name=\"\(esc(name))\"\(invalid(name, error))>" + options.map { "<option value=\"\(esc($0))\"\($0 == selected ? " selected" : "")>\(esc($0))</option>" }.joined() + "</select>\(fieldError(name, error))</label>"
    }

    static func checkbox(_ name: String, _ label: String, checked: Bool, id: String? = nil) -> String {
        "<label class=\"check\"><input type=\"checkbox\" name=\"\(esc(name))\" value=\"1\"\(checked ? " checked" : "")\(id.map { " id=\"\(esc($0))\"" } ?? "")> \(esc(label))</label>"
    }

    /// At the top of a refused form: how many fields need attention and what is wrong with the form
    /// as a whole (each field's own message is next to it).
    static func formSummary(_ form: FormState?) -> String {
        guard let form, !form.errors.isEmpty || !form.general.isEmpty else { return "" }
        var s = "<div class=\"error form-errors\" role=\"alert\">"
        if !form.errors.isEmpty { s += "Not saved: \(form.errors.count == 1 ? "one field needs" : "\(form.errors.count) fields need") attention." }
        for g in form.general { s += " " + esc(g) }
        return s + "</div>"
    }

    /// A table of rows of already-escaped cells, scrollable sideways on a phone.
    static func table(_ headers: [String], _ rows: [[String]], id: String? = nil) -> String {
        var s = "<div class=\"scroll\"><table\(id.map { " id=\"\(esc($0))\"" } ?? "")><thead><tr>" + headers.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>"
        for r in rows { s += "<tr>" + r.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        if rows.isEmpty { s += "<tr><td colspan=\"\(headers.count)\" class=\"muted\">none</td></tr>" }
        return s + "</tbody></table></div>"
    }
}

/// A submitted form and its refusals, field by field: the page shows it again with what was typed.
struct FormState {
    var id: String
    var values: [String: String]
    var errors: [String: String] = [:]
    var general: [String] = []

    init(id: String, values: [String: String]) {
        self.id = id
        self.values = values
    }

    var failed: Bool { !errors.isEmpty || !general.isEmpty }

    /// Adds a refusal: to its field when it names one of this form's, else to the form.
    mutating func add(field: String?, _ message: String, fields: Set<String>) {
        if let field, fields.contains(field) {
            errors[field] = errors[field].map { $0 + "; " + message } ?? message
        } else {
            general.append(message)
        }
    }
}

/// Money as operators read it: the platform's currency (`currency = USD` in the configuration),
/// thousands grouped, the currency's minor digits (more only when the amount has them).
enum Money {
    static let minorDigits: [String: Int] = ["JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "IQD": 3, "LYD": 3]

    /// 12345 -> "12,345".
    static func group(_ n: Int) -> String {
        let digits = Array(String(n.magnitude))
        var s = n < 0 ? "-" : ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { s += "," }
            s.append(d)
        }
        return s
    }

    static func format(_ decimal: String, currency: String) -> String {
        var s = decimal.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { return "" }
        let negative = s.hasPrefix("-")
        if negative || s.hasPrefix("+") { s.removeFirst() }
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.allSatisfy({ $0.allSatisfy(\.isNumber) }), let whole = parts.first else { return decimal + " " + currency }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        let minor = minorDigits[currency] ?? 2
        while fraction.count > minor && fraction.hasSuffix("0") { fraction.removeLast() }
        while fraction.count < minor { fraction += "0" }
        var digits = Array(whole.drop { $0 == "0" })
        if digits.isEmpty { digits = ["0"] }
        var grouped = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { grouped += "," }
            grouped.append(d)
        }
        let isZero = grouped == "0" && fraction.allSatisfy { $0 == "0" }
        return (negative && !isZero ? "-" : "") + grouped + (fraction.isEmpty ? "" : "." + fraction) + " " + currency
    }
}
