import Foundation

/// HTML that escapes by construction. A `Markup` is built from a string literal: the literal's own
/// text is markup, and every interpolated `String` (or number) is escaped (text and attribute values
/// alike: `& < > " '`); only another `Markup` is inserted as it is. There is no way to put a
/// `String` into a page unescaped: the one initialiser that takes markup as it is is private to
/// this type (concatenation and joining).
struct Markup: ExpressibleByStringInterpolation, Sendable, Equatable {
    let html: String

    init(stringLiteral value: String) { html = value }
    init(stringInterpolation: Interpolation) { html = stringInterpolation.out }
    /// Markup already built (concatenation, joining): private, so no value can come in this way.
    private init(trusted: String) { html = trusted }

    static let empty: Markup = ""

    struct Interpolation: StringInterpolationProtocol {
        var out = ""
        init(literalCapacity: Int, interpolationCount: Int) { out.reserveCapacity(literalCapacity + 16 * interpolationCount) }
        mutating func appendLiteral(_ literal: String) { out += literal }
        mutating func appendInterpolation(_ text: String) { out += HTML.esc(text) }
        mutating func appendInterpolation(_ n: Int) { out += String(n) }
        mutating func appendInterpolation(_ n: Int64) { out += String(n) }
        mutating func appendInterpolation(_ m: Markup) { out += m.html }
        mutating func appendInterpolation(_ m: Markup?) { out += m?.html ?? "" }
        mutating func appendInterpolation(_ ms: [Markup]) { for m in ms { out += m.html } }
    }

    static func + (a: Markup, b: Markup) -> Markup { Markup(trusted: a.html + b.html) }
    static func += (a: inout Markup, b: Markup) { a = a + b }

    func joined(_ parts: [Markup]) -> Markup { Markup(trusted: parts.map(\.html).joined(separator: html)) }
}

/// The pieces pages are made of, all returning `Markup`; URLs built from values percent-encode each
/// segment first (and are escaped again where they land in an attribute).
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

    /// A path segment, percent-encoded.
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

    static func csrfField(_ token: String) -> Markup {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
    }

    static func link(_ href: String, _ text: String, id: String? = nil) -> Markup {
        "<a href=\"\(href)\"\(id.map { " id=\"\($0)\"" as Markup })>\(text)</a>"
    }

    /// A small POST form with one button (state changes are never links).
    static func button(_ action: String, _ label: String, csrf: String, fields: [(String, String)] = [], confirm: String? = nil, cls: String = "") -> Markup {
        var s: Markup = "<form method=\"post\" action=\"\(action)\" class=\"inline\"\(confirm.map { " data-confirm=\"\($0)\"" as Markup })>\(csrfField(csrf))"
        for (k, v) in fields { s += "<input type=\"hidden\" name=\"\(k)\" value=\"\(v)\">" }
        return s + "<button type=\"submit\"\(cls.isEmpty ? Markup.empty : " class=\"\(cls)\"")>\(label)</button></form>"
    }

    /// A field's refusal, next to it (`aria-describedby` ties it to the input).
    static func fieldError(_ name: String, _ error: String?) -> Markup {
        guard let error else { return .empty }
        return "<span class=\"field-error\" id=\"error-\(name)\">\(error)</span>"
    }

    static func invalid(_ name: String, _ error: String?) -> Markup {
        error == nil ? .empty : " aria-invalid=\"true\" aria-describedby=\"error-\(name)\""
    }

    /// `extra`: further attributes, written in this source (never values).
    static func input(_ name: String, _ label: String, value: String = "", type: String = "text", required: Bool = false, placeholder: String = "", extra: Markup = .empty, error: String? = nil) -> Markup {
        let cls: Markup = error == nil ? .empty : " class=\"invalid\""
        let req: Markup = required ? " required" : .empty
        let ph: Markup = placeholder.isEmpty ? .empty : " placeholder=\"\(placeholder)\""
        return "<label\(cls)>\(label)<input type=\"\(type)\" name=\"\(name)\" value=\"\(value)\"\(req)\(ph)\(extra)\(invalid(name, error))>\(fieldError(name, error))</label>"
    }

    static func select(_ name: String, _ label: String, _ options: [String], selected: String, error: String? = nil) -> Markup {
        select(name, label, options.map { ($0, $0) }, selected: selected, error: error)
    }

    /// Options as (value, label).
    static func select(_ name: String, _ label: String, _ options: [(String, String)], selected: String, error: String? = nil) -> Markup {
        let cls: Markup = error == nil ? .empty : " class=\"invalid\""
        let opts = options.map { v, l -> Markup in "<option value=\"\(v)\"\(v == selected ? " selected" as Markup : .empty)>\(l)</option>" }
        return "<label\(cls)>\(label)<select name=\"\(name)\"\(invalid(name, error))>\(opts)</select>\(fieldError(name, error))</label>"
    }

    static func checkbox(_ name: String, _ label: String, checked: Bool, id: String? = nil) -> Markup {
        "<label class=\"check\"><input type=\"checkbox\" name=\"\(name)\" value=\"1\"\(checked ? " checked" as Markup : .empty)\(id.map { " id=\"\($0)\"" as Markup })> \(label)</label>"
    }

    /// At the top of a refused form: how many fields need attention and what is wrong with the form
    /// as a whole (each field's own message is next to it).
    static func formSummary(_ form: FormState?) -> Markup {
        guard let form, form.failed else { return .empty }
        var s: Markup = "<div class=\"error form-errors\" role=\"alert\">"
        if !form.errors.isEmpty { s += "Not saved: \(form.errors.count == 1 ? "one field needs" : "\(form.errors.count) fields need") attention." }
        for g in form.general { s += " \(g)" }
        return s + "</div>"
    }

    /// A table of rows of cells, scrollable sideways on a phone.
    static func table(_ headers: [String], _ rows: [[Markup]], id: String? = nil) -> Markup {
        var s: Markup = "<div class=\"scroll\"><table\(id.map { " id=\"\($0)\"" as Markup })><thead><tr>\(headers.map { "<th>\($0)</th>" as Markup })</tr></thead><tbody>"
        for r in rows { s += "<tr>\(r.map { "<td>\($0)</td>" as Markup })</tr>" }
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
