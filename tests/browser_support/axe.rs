//! axe-core audits for the browser tests (the WCAG 2.1 A and AA rules): `tests/accessibility.rs`
//! and any test that audits a page it brought into some state (the login form of
//! `--auth accounts`, for instance).

use std::path::PathBuf;

use serde_json::Value;

use super::{skip_or_fail, ColorScheme, Page};

/// The rule sets of WCAG 2.0 and 2.1, levels A and AA.
const WCAG_TAGS: &str = "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']";

/// axe-core's browser build, or `None` (after the skip banner) when it is not installed.
pub fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            skip_or_fail(&format!(
                "axe-core not found at {} ({e}); run `npm ci` at the repository root",
                path.display()
            ));
            None
        }
    }
}

/// Runs axe on `page` rendered in `scheme` and returns one readable paragraph per violation.
pub fn audit(page: &Page<'_>, axe: &str, scheme: ColorScheme, when: &str) -> Vec<String> {
    page.set_color_scheme(scheme);
    page.wait_until(
        &format!("the page is in the {} scheme", scheme.name()),
        &format!(
            "matchMedia('(prefers-color-scheme: {})').matches",
            scheme.name()
        ),
    );
    // Colours fade between schemes; axe must see the final ones.
    page.wait_until(
        "no transition is running",
        "document.getAnimations().length === 0",
    );
    if page.eval("typeof window.axe === 'object'") != Value::Bool(true) {
        page.eval(&format!("{axe};\ntrue"));
    }
    let result = page.eval(&format!(
        "axe.run(document, {{
            runOnly: {{ type: 'tag', values: {WCAG_TAGS} }},
            resultTypes: ['violations'],
        }}).then(r => r.violations.map(v => ({{
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({{
                target: n.target.join(' '),
                summary: n.failureSummary,
                contrast: n.any.concat(n.all, n.none)
                    .map(c => c.data).filter(d => d && d.contrastRatio !== undefined)
                    .map(d => `${{d.fgColor}} on ${{d.bgColor}}: ${{d.contrastRatio}}:1 (needs ${{d.expectedContrastRatio}})`),
            }})),
        }})))"
    ));
    let violations = result
        .as_array()
        .unwrap_or_else(|| panic!("axe returned no list: {result}"));
    violations
        .iter()
        .map(|v| {
            describe(
                v,
                &format!("{}, {} scheme, {when}", page.name(), scheme.name()),
            )
        })
        .collect()
}

/// One violation as text: rule, impact, where, and each element with its contrast figures.
fn describe(violation: &Value, context: &str) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = format!(
        "[{impact}] {id}: {help} ({context})\n",
        impact = text(&violation["impact"]),
        id = text(&violation["id"]),
        help = text(&violation["help"]),
    );
    for node in violation["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", text(&node["target"])));
        for figure in node["contrast"].as_array().into_iter().flatten() {
            out.push_str(&format!("      {}\n", text(figure)));
        }
        if node["contrast"].as_array().is_none_or(Vec::is_empty) {
            for line in text(&node["summary"]).lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    out
}
