//! An alert's priority, Falco's eight levels.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    pub const NAMES: &'static str =
        "emergency, alert, critical, error, warning, notice, informational (info), debug";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Self::Emergency,
            "alert" => Self::Alert,
            "critical" => Self::Critical,
            "error" => Self::Error,
            "warning" | "warn" => Self::Warning,
            "notice" => Self::Notice,
            "informational" | "info" => Self::Informational,
            "debug" => Self::Debug,
            _ => return None,
        })
    }

    /// As Falco writes it in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emergency => "Emergency",
            Self::Alert => "Alert",
            Self::Critical => "Critical",
            Self::Error => "Error",
            Self::Warning => "Warning",
            Self::Notice => "Notice",
            Self::Informational => "Informational",
            Self::Debug => "Debug",
        }
    }
}
