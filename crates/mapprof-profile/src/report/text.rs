//! The report as text.

use std::fmt::Write as _;

use super::Report;
use crate::top::format_value;

impl Report {
    /// The report as text: the profiles read, then each finding with its statements and advice.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "mapprof report, from:");
        for p in &self.profiles {
            let _ = writeln!(
                s,
                "  {:<7} {} ({} {}, {} samples)",
                p.kind,
                p.name,
                format_value(p.total, &p.unit),
                p.sample_type,
                p.samples
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(
                s,
                "\nNo application function stands out: none has 5% of any profile (or the \
                 profiles have no symbols)."
            );
        }
        for (i, f) in self.findings.iter().enumerate() {
            let at = match (f.file.is_empty(), f.line > 0) {
                (true, _) => String::new(),
                (false, true) => format!(" ({}:{})", f.file, f.line),
                (false, false) => format!(" ({})", f.file),
            };
            let _ = writeln!(s, "\n{}. {}{at}", i + 1, f.function);
            for statement in &f.statements {
                let _ = writeln!(s, "   - {statement}");
            }
            if !f.advice.is_empty() {
                let _ = writeln!(s, "   What to change:");
                for advice in &f.advice {
                    let _ = writeln!(s, "   - {advice}");
                }
            }
        }
        s
    }
}
