//! uid -> user name from the host's /etc/passwd, re-read (at most every few seconds) when an
//! unknown uid shows up, so users created after start resolve too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

pub struct Users {
    path: &'static str,
    names: HashMap<u32, Arc<str>>,
    loaded_at: Option<Instant>,
}

impl Default for Users {
    fn default() -> Self {
        Self::new("/etc/passwd")
    }
}

impl Users {
    pub fn new(path: &'static str) -> Self {
        let mut u = Self { path, names: HashMap::new(), loaded_at: None };
        u.reload();
        u
    }

    fn reload(&mut self) {
        self.loaded_at = Some(Instant::now());
        let Ok(text) = std::fs::read_to_string(self.path) else { return };
        self.names = parse_passwd(&text);
    }

    pub fn name(&mut self, uid: u32) -> Option<Arc<str>> {
        if let Some(n) = self.names.get(&uid) {
            return Some(n.clone());
        }
        if self.loaded_at.is_none_or(|t| t.elapsed() >= RELOAD_INTERVAL) {
            self.reload();
        }
        self.names.get(&uid).cloned()
    }
}

fn parse_passwd(text: &str) -> HashMap<u32, Arc<str>> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, Arc::from(name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_passwd_and_skips_junk() {
        let m = super::parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbad\nnobody:x:65534:65534::/:/usr/sbin/nologin\n",
        );
        assert_eq!(&*m[&0], "root");
        assert_eq!(&*m[&65534], "nobody");
        assert_eq!(m.len(), 2);
    }
}
