//! The host names rules compare addresses with (`fd.sip.name = "api.example.com"`): resolved
//! on a thread of their own, at start, whenever the rules change and then periodically, never on
//! the event path. An address's name is which of those names resolved to it, as in Falco: the
//! monitor does no reverse lookups, so an address no rule names has no name.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, ToSocketAddrs as _};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

/// How often names are resolved again: addresses behind a name change (load balancers, pools).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// A handle on the table; clones share it.
#[derive(Clone, Default)]
pub struct HostNames {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    by_address: RwLock<HashMap<IpAddr, Vec<Arc<str>>>>,
    /// The names to resolve, and whether they changed since the resolver last looked.
    wanted: Mutex<(BTreeSet<String>, bool)>,
    changed: Condvar,
    stats: Mutex<HostNameStats>,
}

/// What the last round of resolution found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostNameStats {
    pub names: usize,
    pub resolved: usize,
    pub addresses: usize,
    /// Rounds done since start; 0 until the first one has ended.
    pub rounds: u64,
}

impl HostNames {
    /// The names that resolved to `ip` (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn names_of(&self, ip: IpAddr) -> Vec<Arc<str>> {
        let table = self.shared.by_address.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.get(&canonical(ip)).cloned().unwrap_or_default()
    }

    /// Sets the names to resolve; the resolver takes them at once.
    pub fn watch(&self, names: BTreeSet<String>) {
        let mut wanted = self.shared.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if wanted.0 != names {
            *wanted = (names, true);
            self.shared.changed.notify_all();
        }
    }

    pub fn stats(&self) -> HostNameStats {
        *self.shared.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the thread that resolves the watched names, now and every `every`.
    pub fn start_resolver(&self, every: Duration) -> std::io::Result<()> {
        let shared = self.shared.clone();
        std::thread::Builder::new().name("host-names".into()).spawn(move || resolver(&shared, every))?;
        Ok(())
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn resolver(shared: &Shared, every: Duration) {
    // Addresses a name had the last time it resolved: a name that stops resolving for a while
    // (a DNS outage) keeps them, so rules do not go blind with the resolver.
    let mut last_known: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut failed_before: BTreeSet<String> = BTreeSet::new();
    loop {
        let names = {
            let mut wanted = shared.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            wanted.1 = false;
            wanted.0.clone()
        };
        last_known.retain(|name, _| names.contains(name));
        let mut resolved = 0;
        for name in &names {
            match (name.as_str(), 0u16).to_socket_addrs() {
                Ok(addrs) => {
                    let mut ips: Vec<IpAddr> = addrs.map(|a| canonical(a.ip())).collect();
                    ips.sort_unstable();
                    ips.dedup();
                    resolved += 1;
                    failed_before.remove(name);
                    last_known.insert(name.clone(), ips);
                }
                Err(e) => {
                    // Said once per name until it resolves again: a dead resolver would
                    // otherwise fill the log every round.
                    if failed_before.insert(name.clone()) {
                        tracing::warn!(
                            name = %name,
                            "cannot resolve a host name the rules compare addresses with ({e}); its last known addresses stay in use"
                        );
                    }
                }
            }
        }
        let mut by_address: HashMap<IpAddr, Vec<Arc<str>>> = HashMap::new();
        for (name, ips) in &last_known {
            let name: Arc<str> = Arc::from(name.as_str());
            for ip in ips {
                by_address.entry(*ip).or_default().push(name.clone());
            }
        }
        for names in by_address.values_mut() {
            names.sort_unstable();
        }
        let addresses = by_address.len();
        *shared.by_address.write().unwrap_or_else(std::sync::PoisonError::into_inner) = by_address;
        {
            let mut stats = shared.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let first = stats.rounds == 0;
            *stats = HostNameStats { names: names.len(), resolved, addresses, rounds: stats.rounds + 1 };
            if first && !names.is_empty() {
                tracing::info!(
                    names = names.len(),
                    resolved,
                    addresses,
                    "host names the rules compare addresses with resolved"
                );
            }
        }
        let wanted = shared.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = shared.changed.wait_timeout_while(wanted, every, |w| !w.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_round(names: &HostNames, after: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while names.stats().rounds <= after {
            assert!(std::time::Instant::now() < deadline, "the resolver did not finish a round");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn names_the_rules_watch_resolve_to_their_addresses() {
        let names = HostNames::default();
        names.start_resolver(Duration::from_secs(3600)).unwrap();
        wait_for_round(&names, 0);
        assert!(names.names_of("127.0.0.1".parse().unwrap()).is_empty(), "no name is watched yet");
        // localhost is in /etc/hosts on every machine this runs on; the other name never resolves.
        names.watch(["localhost".to_owned(), "no-such-host.invalid".to_owned()].into());
        wait_for_round(&names, 1);
        let of = |ip: &str| names.names_of(ip.parse().unwrap());
        assert_eq!(of("127.0.0.1"), vec![Arc::<str>::from("localhost")]);
        assert_eq!(of("::ffff:127.0.0.1"), vec![Arc::<str>::from("localhost")], "IPv4-mapped");
        assert!(of("192.0.2.1").is_empty());
        let s = names.stats();
        assert_eq!((s.names, s.resolved), (2, 1), "{s:?}");
        // Watching nothing any more forgets the addresses.
        let rounds = names.stats().rounds;
        names.watch(BTreeSet::new());
        wait_for_round(&names, rounds);
        assert!(of("127.0.0.1").is_empty());
    }
}
