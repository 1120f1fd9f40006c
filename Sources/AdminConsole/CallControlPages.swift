import Decisions
import Foundation
import HTTPServer
import Store

/// The call controls' pages and forms (README "Call controls"): destination rules (global and per
/// account) on `/destination-rules`, and on the account page its calls per second, its calls up
/// now, the rules that apply to it, its fraud thresholds and its recent fraud events. Changes go
/// through `Store.Admin`, as the CLI's `switchauth destination` and `switchauth fraud` do.
extension Pages {
    static let metrics = FraudThreshold.Metric.allCases.map(\.rawValue)
    static let metricNames: [String: String] = [
        "calls_per_minute": "calls per minute", "attempts_per_day": "attempts per day", "concurrent_calls": "concurrent calls",
    ]

    static func ruleOwner(_ r: DestinationRuleRow) -> Markup { r.account.map { accountLink($0) } ?? "<em>global</em>" }

    /// Every rule (global ones first), or with `?account=` the rules that apply to that account;
    /// the add form (an account's number makes it that account's rule, empty a global one).
    static func destinationRules(_ c: Ctx, form: FormState? = nil, error: String? = nil) throws -> Markup {
        let account = c.q("account")?.trimmingCharacters(in: .whitespaces)
        var filterError: String?
        var rules: [DestinationRuleRow] = []
        do { rules = try c.admin.destinationRules(account: account) } catch let e as AdminError { filterError = e.message }
        var body: Markup = "<h1>Destination rules</h1><p class=\"muted\">What calls may dial, checked on the destination as routed: the longest matching prefix decides "
            + "(an account's rule beats a global one of the same length, deny beats allow); an account with allow rules of its own dials only what they "
            + "(or a global allow) begin. Refused calls get 403 <code>destination_denied</code> or <code>destination_not_allowed</code>.</p>"
            + "<section><form method=\"get\" action=\"/destination-rules\" class=\"stack\" id=\"rule-filter\" novalidate>"
            + HTML.input("account", "Rules that apply to account", value: account ?? "", error: filterError)
            + "<button type=\"submit\">Show</button></form></section><section>"
        let rows = rules.map { r -> [Markup] in
            let remove = c.canWrite
                ? HTML.button("/destination-rules/\(r.id)/delete", "Remove", csrf: c.csrf, confirm: "Remove the rule \(r.action) \(r.prefix) (\(r.account.map { "account \($0)" } ?? "global"))?", cls: "plain")
                : Markup.empty
            return ["\(r.id)", ruleOwner(r), badge(r.action), "<code>\(r.prefix)</code>", "\(r.note)", "\(r.createdAt)", remove]
        }
        body += HTML.table(["Id", "Account", "Action", "Prefix", "Note", "Added (UTC)", ""], rows, id: "destination-rules") + "</section>"
        if c.canWrite {
            let f = form?.id == "add-rule" ? form : nil
            body += "<h2>Add a rule</h2><section><form method=\"post\" action=\"/destination-rules\" class=\"stack\" id=\"add-rule\" novalidate>"
                + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.select("action", "Action", [("deny", "deny"), ("allow", "allow")], selected: f?.values["action"] ?? "deny", error: f?.errors["action"])
                + HTML.input("prefix", "Destination prefix (0-9 + * #)", value: f?.values["prefix"] ?? "", required: true, placeholder: "1900", error: f?.errors["prefix"])
                + HTML.input("account", "Account (empty = every account)", value: f?.values["account"] ?? account ?? "", error: f?.errors["account"])
                + HTML.input("note", "Note", value: f?.values["note"] ?? "", placeholder: "premium rate", error: f?.errors["note"])
                + "<button type=\"submit\">Add rule</button></form></section>"
        }
        return layout("Destination rules", c, current: "/destination-rules", notice: c.notice(), error: error, body)
    }

    static func addDestinationRule(_ c: Ctx) throws -> HTTPResponse {
        var form = FormState(id: "add-rule", values: c.form)
        let fields: Set = ["action", "prefix", "account", "note"]
        let action = DestinationRule.Action(rawValue: c.v("action"))
        if action == nil { form.add(field: "action", "choose deny or allow", fields: fields) }
        record(&form, Admin.destinationRuleProblems(prefix: c.v("prefix"), note: c.v("note")), fields: fields)
        if !form.failed, let action {
            try attempt(&form, fields: fields) { try c.admin.addDestinationRule(account: c.opt("account"), action: action, prefix: c.v("prefix"), note: c.v("note")) }
        }
        if form.failed { return html(try destinationRules(c, form: form), status: 422) }
        return redirect("/destination-rules\(HTML.query([("account", c.opt("account")), ("notice", "rule-added")]))")
    }

    /// Removes a rule; back to the account page it was removed from (`from=account`), else the list.
    static func removeDestinationRule(_ c: Ctx) throws -> HTTPResponse {
        let rule: DestinationRuleRow
        do {
            guard let id = Int64(c.param("id")) else { throw AdminError.notFound("unknown destination rule \(c.param("id"))") }
            rule = try c.admin.destinationRule(id: id)
        } catch let e as AdminError {
            return html(layout("Not found", c, error: e.message, .empty), status: 404)
        }
        let id = rule.id
        try c.admin.removeDestinationRule(id: id)
        if let back = c.opt("from"), back == rule.account { return redirect("/accounts/\(HTML.seg(back))?notice=rule-removed") }
        return redirect("/destination-rules?notice=rule-removed")
    }

    /// A whole number from a form field: nil when empty; when not a number, nil and a refusal at the field.
    static func level(_ c: Ctx, _ k: String, _ form: inout FormState, fields: Set<String>) -> Int? {
        guard let s = c.opt(k) else { return nil }
        guard let n = Int(s) else {
            form.add(field: k, "\(k) must be a whole number", fields: fields)
            return nil
        }
        return n
    }

    static func setFraudThreshold(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        var form = FormState(id: "set-threshold", values: c.form)
        let fields: Set = ["metric", "prefix", "warning", "critical"]
        let metric = FraudThreshold.Metric(rawValue: c.v("metric"))
        if metric == nil { form.add(field: "metric", "choose \(metrics.joined(separator: ", "))", fields: fields) }
        let warning = level(c, "warning", &form, fields: fields), critical = level(c, "critical", &form, fields: fields)
        // Every refusal at once; a level that is not a number is refused once (as such), not again as missing.
        let unparsed = Set(form.errors.keys)
        record(&form, Admin.fraudThresholdProblems(prefix: c.v("prefix"), warning: warning, critical: critical).filter {
            unparsed.isEmpty || !(["warning", "critical"].contains($0.field))
        }, fields: fields)
        if !form.failed, let metric {
            try attempt(&form, fields: fields) {
                _ = try c.admin.setFraudThreshold(account: n, metric: metric, prefix: c.v("prefix"), warning: warning, critical: critical)
            }
        }
        if form.failed { return try accountPage(c, n, form: form, status: 422) }
        return redirect("/accounts/\(HTML.seg(n))?notice=threshold-set")
    }

    /// The account page's call controls: the destination rules that apply to it, its fraud
    /// thresholds (with the set form) and its recent fraud events.
    static func callControls(_ c: Ctx, _ number: String, form: FormState?) throws -> Markup {
        let base = "/accounts/" + HTML.seg(number)
        var body: Markup = "<h2 id=\"call-controls\">Call controls</h2><section><h3>Destination rules that apply</h3>"
        let rules = try c.admin.destinationRules(account: number)
        let ruleRows = rules.map { r -> [Markup] in
            let remove = c.canWrite && r.account != nil
                ? HTML.button("/destination-rules/\(r.id)/delete", "Remove", csrf: c.csrf, fields: [("from", number)],
                              confirm: "Remove the rule \(r.action) \(r.prefix) of account \(number)?", cls: "plain")
                : Markup.empty
            return [r.account == nil ? "<em>global</em>" : "this account", badge(r.action), "<code>\(r.prefix)</code>", "\(r.note)", remove]
        }
        body += HTML.table(["Whose", "Action", "Prefix", "Note", ""], ruleRows, id: "account-destination-rules")
        body += "<p>" + HTML.link("/destination-rules" + HTML.query([("account", number)]), "Add a rule for this account or a global one", id: "add-rule-link") + "</p>"

        body += "<h3>Fraud thresholds</h3><p class=\"muted\">Passing a warning level is logged and sent to the webhook; passing a critical level suspends the account at once and refuses the call.</p>"
        let thresholds = try c.admin.fraudThresholds(account: number)
        let thresholdRows = thresholds.map { t -> [Markup] in
            let remove = c.canWrite
                ? HTML.button("/fraud-thresholds/\(t.id)/delete", "Remove", csrf: c.csrf, confirm: "Remove the \(metricNames[t.metric] ?? t.metric) threshold?", cls: "plain")
                : Markup.empty
            return ["\(metricNames[t.metric] ?? t.metric)", "\(t.prefix.isEmpty ? "(every destination)" : t.prefix)",
                    "\(t.warning.map(String.init) ?? "–")", "\(t.critical.map(String.init) ?? "–")", remove]
        }
        body += HTML.table(["Metric", "Destinations", "Warning above", "Critical above", ""], thresholdRows, id: "fraud-thresholds")
        if c.canWrite {
            let f = form?.id == "set-threshold" ? form : nil
            body += "<form method=\"post\" action=\"\(base)/fraud-thresholds\" class=\"stack\" id=\"set-threshold\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.select("metric", "Metric", metrics.map { ($0, metricNames[$0] ?? $0) }, selected: f?.values["metric"] ?? "calls_per_minute", error: f?.errors["metric"])
                + HTML.input("prefix", "Destination prefix (empty = every destination)", value: f?.values["prefix"] ?? "", error: f?.errors["prefix"])
                + HTML.input("warning", "Warning above", value: f?.values["warning"] ?? "", extra: " inputmode=\"numeric\"", error: f?.errors["warning"])
                + HTML.input("critical", "Critical above (suspends)", value: f?.values["critical"] ?? "", extra: " inputmode=\"numeric\"", error: f?.errors["critical"])
                + "<button type=\"submit\">Set threshold</button></form>"
        }

        body += "<h3>Recent fraud events</h3>"
        let events = try c.admin.fraudEvents(account: number, limit: 20)
        let eventRows = events.map { e -> [Markup] in
            ["\(e.at)", "\(metricNames[e.metric] ?? e.metric)", "\(e.prefix.isEmpty ? "(every destination)" : e.prefix)", badge(e.level),
             "\(e.value)", "\(e.levelValue)", "<code>\(e.uniqueID)</code>"]
        }
        body += HTML.table(["When (UTC)", "Metric", "Destinations", "Level", "Counted", "Level value", "Call"], eventRows, id: "fraud-events")
        return body + "</section>"
    }
}
