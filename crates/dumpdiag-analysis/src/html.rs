//! The HTML report: one self-contained file (no scripts, no external resources) with the
//! findings, a thread table and an SVG drawing of the wait chains. Every string that comes from
//! the dump (module, function, object and thread names, comments) goes through [`escape`].

use std::fmt::Write;

use crate::report::Report;
use crate::waits::Wait;

/// HTML-escape text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}\
.finding{border-left:4px solid #c33;padding:.4em .8em;margin:.6em 0;background:#fafafa}.finding.medium{border-color:#e90}.finding.low{border-color:#999}\
code,pre{font-family:ui-monospace,monospace;font-size:.85em}.ev{margin:.2em 0 .2em 1em}";

/// Render the report. `waits` feeds the wait-chain drawing.
pub fn render(report: &Report, waits: &[Wait]) -> String {
    let mut o = String::new();
    let title = match &report.exception {
        Some(e) => format!("{} ({}) on thread {:x}", e.name, e.code, e.thread_id),
        None => "Dump taken on purpose".to_string(),
    };
    let _ = write!(o, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>dumpdiag: {}</title><style>{STYLE}</style></head><body>", escape(&title));
    let _ = write!(
        o,
        "<h1>{}</h1><p><code>{}</code> &middot; {} &middot; Windows {}</p>",
        escape(&title),
        escape(&report.dump.path),
        escape(&report.dump.arch),
        escape(&report.dump.os_version)
    );
    let _ = write!(
        o,
        "<p>Bucket: <code id=\"signature\">{}</code></p>",
        escape(&report.signature)
    );

    let _ = write!(o, "<h2>Findings</h2>");
    if report.patterns.is_empty() {
        o.push_str("<p>No pattern found.</p>");
    }
    for f in &report.patterns {
        let _ = write!(
            o,
            "<div class=\"finding {}\"><b class=\"pattern\">{}</b> <small>({}, {})</small><div>{}</div>",
            f.confidence().label(),
            escape(f.name()),
            escape(f.category().name()),
            f.confidence().label(),
            escape(&f.summary)
        );
        for e in f.evidence() {
            let _ = write!(o, "<div class=\"ev\"><code>{}</code></div>", escape(&e));
        }
        if !f.recommendation.is_empty() {
            let _ = write!(o, "<div><i>{}</i></div>", escape(&f.recommendation));
        }
        o.push_str("</div>");
    }

    if !waits.is_empty() {
        let _ = write!(o, "<h2>Wait chains</h2>{}", wait_svg(waits));
    }

    let _ = write!(
        o,
        "<h2>Threads</h2><table><tr><th>#</th><th>Id</th><th>Name</th><th>Top frames</th></tr>"
    );
    for t in &report.threads {
        let frames: Vec<String> = t
            .frames
            .iter()
            .take(6)
            .map(|f| match (&f.module, &f.function) {
                (Some(m), Some(func)) => format!("{m}!{func}+{}", f.offset),
                (Some(m), None) => format!("{m}+{}", f.offset),
                _ => f.ip.clone(),
            })
            .collect();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{:x}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            t.index,
            t.id,
            escape(t.name.as_deref().unwrap_or("")),
            escape(&frames.join("\n"))
        );
    }
    o.push_str("</table><h2>Modules</h2><table><tr><th>Base</th><th>Size</th><th>Path</th></tr>");
    for m in &report.modules {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&m.base),
            escape(&m.size),
            escape(&m.path)
        );
    }
    o.push_str("</table><h2>Dump</h2><p>Streams: ");
    o.push_str(&escape(&report.dump.streams.join(", ")));
    o.push_str("</p></body></html>\n");
    o
}

/// Threads on the left, the objects they wait for on the right, an arrow from each waiting
/// thread to its object and from each object to the thread that holds it.
fn wait_svg(waits: &[Wait]) -> String {
    let mut threads: Vec<u32> = waits
        .iter()
        .map(|w| w.thread)
        .chain(waits.iter().filter_map(|w| w.blocker))
        .collect();
    threads.sort();
    threads.dedup();
    let row = 56;
    let height = (threads.len().max(waits.len()) * row + 40) as u32;
    // Inline SVG in HTML needs no xmlns: the HTML parser puts <svg> in the SVG namespace, and
    // the page then names no URL at all.
    let mut o = format!("<svg width=\"900\" height=\"{height}\" role=\"img\" aria-label=\"wait chains\"><defs><marker id=\"a\" markerWidth=\"10\" markerHeight=\"8\" refX=\"10\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#555\"/></marker></defs>");
    let ty = |t: u32| 30 + threads.iter().position(|x| *x == t).unwrap_or(0) as u32 * row as u32;
    for t in &threads {
        let _ = write!(o, "<rect x=\"20\" y=\"{}\" width=\"150\" height=\"34\" rx=\"6\" fill=\"#e8f0fe\" stroke=\"#4a6fb5\"/><text x=\"95\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">thread {t:x}</text>", ty(*t) - 17, ty(*t) + 5);
    }
    for (i, w) in waits.iter().enumerate() {
        let oy = 30 + (i * row) as u32;
        let label = escape(&w.object.describe());
        let _ = write!(o, "<rect x=\"400\" y=\"{}\" width=\"480\" height=\"34\" rx=\"6\" fill=\"#fff4e5\" stroke=\"#c77d00\"/><text x=\"410\" y=\"{}\" font-size=\"11\">{label}</text>", oy - 17, oy + 4);
        let _ = write!(o, "<line x1=\"170\" y1=\"{}\" x2=\"400\" y2=\"{oy}\" stroke=\"#555\" marker-end=\"url(#a)\"/>", ty(w.thread));
        if let Some(b) = w.blocker {
            let _ = write!(
                o,
                "<path d=\"M400,{} C300,{} 260,{} 170,{}\" fill=\"none\" stroke=\"#c33\" stroke-dasharray=\"5,3\" marker-end=\"url(#a)\"/>",
                oy + 10,
                oy + 10,
                ty(b) + 10,
                ty(b) + 10
            );
        }
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
