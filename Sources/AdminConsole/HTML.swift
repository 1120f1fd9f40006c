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

    static func input(_ name: String, _ label: String, value: String = "", type: String = "text", required: Bool = false, placeholder: String = "", extra: String = "") -> String {
        "<label>\(esc(label))<input type=\"\(esc(type))\" name=\"\(esc(name))\" value=\"\(esc(value))\"\(required ? " required" : "")\(placeholder.isEmpty ? "" : " placeholder=\"\(esc(placeholder))\"")\(extra)></label>"
    }

    static func select(_ name: String, _ label: String, _ options: [String], selected: String) -> String {
        "<label>\(esc(label))<select name=\"\(esc(name))\">" + options.map { "<option value=\"\(esc($0))\"\($0 == selected ? " selected" : "")>\(esc($0))</option>" }.joined() + "</select></label>"
    }

    static func checkbox(_ name: String, _ label: String, checked: Bool, id: String? = nil) -> String {
        "<label class=\"check\"><input type=\"checkbox\" name=\"\(esc(name))\" value=\"1\"\(checked ? " checked" : "")\(id.map { " id=\"\(esc($0))\"" } ?? "")> \(esc(label))</label>"
    }

    /// A table of rows of already-escaped cells, scrollable sideways on a phone.
    static func table(_ headers: [String], _ rows: [[String]], id: String? = nil) -> String {
        var s = "<div class=\"scroll\"><table\(id.map { " id=\"\(esc($0))\"" } ?? "")><thead><tr>" + headers.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead><tbody>"
        for r in rows { s += "<tr>" + r.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        if rows.isEmpty { s += "<tr><td colspan=\"\(headers.count)\" class=\"muted\">none</td></tr>" }
        return s + "</tbody></table></div>"
    }
}
