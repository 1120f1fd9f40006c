/// The console's stylesheet and its one small script (no build step): confirmation of destructive
/// forms, and the device form's password field hidden while "generate" is ticked.
enum Assets {
    static let css = """
        :root { --fg: #1d2327; --muted: #646970; --line: #dcdcde; --accent: #135e96; --bad: #b32d2e; --ok: #00703c; }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f6f7f7; }
        header { background: #1d2327; color: #fff; padding: .5rem 1rem; display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; }
        header a { color: #fff; text-decoration: none; padding: .25rem 0; }
        header a.current { border-bottom: 2px solid #72aee6; }
        header .who { margin-left: auto; color: #c3c4c7; font-size: .9em; }
        header form.inline button { background: transparent; color: #fff; border: 1px solid #8c8f94; padding: .15rem .5rem; }
        main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
        h1 { font-size: 1.4rem; margin: .25rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
        td.wrap { white-space: normal; }
        span.wrap { display: block; white-space: normal; overflow-wrap: anywhere; min-width: 18rem; font-size: .85rem; }
        form { margin: 0; }
        form.stack { display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: .5rem 1rem; align-items: end; }
        form.inline { display: inline; }
        label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: .15rem; }
        label.check { flex-direction: row; align-items: center; gap: .35rem; color: var(--fg); }
        input, select, button { font: inherit; padding: .4rem .5rem; border: 1px solid #8c8f94; border-radius: 4px; background: #fff; min-height: 2.2rem; }
        button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
        button.danger { background: var(--bad); border-color: var(--bad); }
        button.plain { background: #fff; color: var(--accent); }
        .notice { background: #edfaef; border-left: 4px solid var(--ok); padding: .5rem .75rem; margin-bottom: 1rem; }
        .error { background: #fcf0f1; border-left: 4px solid var(--bad); padding: .5rem .75rem; margin-bottom: 1rem; }
        .secret { font: 1.2rem ui-monospace, monospace; background: #fff8e5; padding: .25rem .5rem; user-select: all; }
        .muted { color: var(--muted); }
        .badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; font-size: .8rem; background: #f0f0f1; }
        .badge.active, .badge.allowed, .badge.published, .badge.allow { background: #edfaef; color: var(--ok); }
        .badge.warning { background: #fcf9e8; color: #8a6d00; }
        .badge.suspended, .badge.closed, .badge.rejected, .badge.refused, .badge.deny, .badge.critical { background: #fcf0f1; color: var(--bad); }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
        dt { color: var(--muted); }
        dd { margin: 0; }
        ol.steps li { margin: .2rem 0; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .9rem; }
        pre { background: #f6f7f7; padding: .5rem; overflow-x: auto; font-size: .85rem; }
        .pager { margin-top: .5rem; display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline; }
        .page-size a, .page-size strong { margin: 0 .15rem; }
        label.invalid { color: var(--bad); }
        label.invalid input, label.invalid select { border-color: var(--bad); border-width: 2px; }
        .field-error { color: var(--bad); font-size: .8rem; font-weight: 600; }
        .form-errors { grid-column: 1 / -1; margin: 0; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .75rem; }
        .card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; display: flex; flex-direction: column; }
        .card a { text-decoration: none; }
        .card .count { font-size: 1.8rem; font-weight: 600; color: var(--fg); }
        .card .count.bad { color: var(--bad); }
        .card .label { color: var(--muted); font-size: .85rem; }
        .money { font-variant-numeric: tabular-nums; }
        button.small { padding: 0 .35rem; min-height: 1.5rem; font-size: .8rem; }
        .login { max-width: 22rem; margin: 4rem auto; }
        .login form { display: grid; gap: .75rem; }
        @media (max-width: 40rem) {
            main { padding: .5rem; }
            section { padding: .5rem; }
            header { font-size: .95rem; }
        }
        """

    static let js = """
        "use strict";
        document.addEventListener("submit", function (e) {
          var f = e.target;
          if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) { e.preventDefault(); }
        });
        document.addEventListener("DOMContentLoaded", function () {
          var g = document.getElementById("generate"), p = document.getElementById("device-password");
          if (!g || !p) { return; }
          var sync = function () { p.disabled = g.checked; p.closest("label").hidden = g.checked; };
          g.addEventListener("change", sync);
          sync();
        });
        """
}
