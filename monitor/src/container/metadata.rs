//! Container metadata from the runtimes, fetched off the event path and cached.
//!
//! The event path only ever reads the directory (a short lock, no I/O) and asks for ids it has
//! not seen; a background task answers from the Docker Engine API (docker, and podman's
//! compatible socket). A slow or absent runtime leaves entries pending, then failed: the fields
//! read as null and events and alerts flow on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;

use super::cri::CriClient;
use super::id::{ContainerRuntime, is_hex64};
use tokio::sync::mpsc;

/// What a runtime says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    pub name: Option<String>,
    /// The image as the container was created from it (`registry/repo:tag`).
    pub image: Option<String>,
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub image_digest: Option<String>,
    pub image_id: Option<String>,
    pub privileged: Option<bool>,
    /// The container's labels (kubelet's io.kubernetes.pod.* among them).
    pub labels: HashMap<String, String>,
    /// The pod's labels, from the CRI.
    pub pod_labels: HashMap<String, String>,
    /// The container's mounts, in the runtime's order.
    pub mounts: Vec<ContainerMount>,
    /// Which API answered: "docker-api" or "cri".
    pub source: &'static str,
}

/// One of a container's mounts, as the runtime reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerMount {
    /// The host side (a path, or a volume's name).
    pub source: String,
    /// Where the container sees it.
    pub dest: String,
    /// The runtime's mode string (Docker's `z`, `ro`, ...; empty from the CRI).
    pub mode: String,
    pub rdwr: bool,
    pub propagation: String,
}

impl ContainerMount {
    /// As Falco's container.mounts lists it: `source:dest:mode:rdwr:propagation`.
    pub fn text(&self) -> String {
        format!("{}:{}:{}:{}:{}", self.source, self.dest, self.mode, self.rdwr, self.propagation)
    }
}

impl ContainerMeta {
    /// A mount named as Falco's container.mount* fields name one: by its index (`0`), or by a
    /// glob over its source, or over its destination when `by_dest` (`*` matches `/` too, as
    /// fnmatch without FNM_PATHNAME does); the first that matches.
    pub fn mount(&self, key: &str, by_dest: bool) -> Option<&ContainerMount> {
        if let Ok(i) = key.parse::<usize>() {
            return self.mounts.get(i);
        }
        let glob = globset::Glob::new(key).ok()?.compile_matcher();
        self.mounts.iter().find(|m| glob.is_match(if by_dest { &m.dest } else { &m.source }))
    }

    /// Kubernetes pod fields, from the labels kubelet puts on containers it starts.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// `registry:5000/team/app:1.2@sha256:...` -> (repository, tag, digest).
pub fn split_image(image: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    // A colon after the last slash is a tag; before it, a registry port.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (rest[..slash + i].to_owned(), Some(rest[slash + i + 1..].to_owned()), digest),
        None => (rest.to_owned(), None, digest),
    }
}

#[derive(Clone, Debug)]
enum Entry {
    /// Asked for at this time; no answer yet.
    Pending(Instant),
    Known(Arc<ContainerMeta>),
    /// No runtime knew it (or none answered) at this time; asked again after a while.
    Failed(Instant),
}

/// What the directory knows of a container right now.
#[derive(Clone, Debug)]
pub enum Lookup {
    Known(Arc<ContainerMeta>),
    /// Being fetched since this long.
    Pending(Duration),
    Unknown,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DirectoryStats {
    pub known: usize,
    pub pending: usize,
    pub failed: usize,
    pub lookups: u64,
    pub lookup_failures: u64,
}

struct Shared {
    entries: HashMap<String, Entry>,
    /// Bumped whenever what is known changes, so a snapshot is only rewritten after a change.
    generation: u64,
    /// Containers the runtime reported removed, and when: kept a while for late events.
    removed: HashMap<String, Instant>,
    /// The runtime's running containers were listed (once, when it was first reached).
    listed: bool,
    /// The runtime's event stream is being followed: a container a lookup cannot find (already
    /// gone, or in a state the API client cannot parse) may still be described by it.
    following_events: bool,
    lookups: u64,
    lookup_failures: u64,
}

impl Shared {
    /// Makes room: forgets containers removed a while ago, then unanswered lookups, then, if the
    /// host really runs that many containers, the oldest half of the removed ones.
    fn prune(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .removed
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > KEEP_REMOVED)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.removed.remove(&id);
            self.entries.remove(&id);
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| matches!(e, Entry::Known(_)));
        }
        if self.entries.len() >= MAX_ENTRIES {
            let mut removed: Vec<(String, Instant)> = self.removed.drain().collect();
            removed.sort_by_key(|(_, at)| *at);
            let keep = removed.split_off(removed.len() / 2);
            for (id, _) in removed {
                self.entries.remove(&id);
            }
            self.removed = keep.into_iter().collect();
        }
        self.generation += 1;
    }
}

/// How long a removed container's metadata is kept for events still in flight.
const KEEP_REMOVED: Duration = Duration::from_secs(60);

/// The daemon's view of containers, shared by the event path (reads, requests) and the fetcher.
#[derive(Clone)]
pub struct ContainerDirectory {
    shared: Arc<Mutex<Shared>>,
    requests: mpsc::UnboundedSender<(String, ContainerRuntime)>,
}

/// How long a failed lookup is trusted before the container is asked about again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);
/// One runtime request's deadline: a hanging socket costs this much per container, off the
/// event path.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 65536;

/// Where runtimes with a Docker-compatible API usually listen.
pub const DEFAULT_DOCKER_SOCKETS: &[&str] =
    &["/var/run/docker.sock", "/run/docker.sock", "/run/podman/podman.sock", "/var/run/podman/podman.sock"];

impl ContainerDirectory {
    /// Starts the fetcher on the current tokio runtime, talking to the first of `sockets` that
    /// exists (now or later).
    pub fn start(sources: Sources) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let dir = Self {
            shared: Arc::new(Mutex::new(Shared {
                entries: HashMap::new(),
                generation: 0,
                removed: HashMap::new(),
                listed: false,
                following_events: false,
                lookups: 0,
                lookup_failures: 0,
            })),
            requests: tx,
        };
        tokio::spawn(fetcher(sources, rx, dir.clone()));
        dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `full_id`; asks the runtime on first sight (and after a failure has
    /// aged), never waiting.
    pub fn lookup(&self, full_id: &str) -> Lookup {
        self.lookup_in(full_id, ContainerRuntime::Unknown)
    }

    /// Like `lookup`, naming the runtime the container's cgroup points at, which is asked first.
    pub fn lookup_in(&self, full_id: &str, runtime: ContainerRuntime) -> Lookup {
        let mut s = self.lock();
        let now = Instant::now();
        match s.entries.get(full_id) {
            Some(Entry::Known(m)) => return Lookup::Known(m.clone()),
            Some(Entry::Pending(since)) if now.saturating_duration_since(*since) < RETRY_FAILED_AFTER => {
                return Lookup::Pending(now.saturating_duration_since(*since));
            }
            Some(Entry::Failed(at)) if now.saturating_duration_since(*at) < RETRY_FAILED_AFTER => {
                return Lookup::Unknown;
            }
            _ => {}
        }
        if s.entries.len() >= MAX_ENTRIES {
            s.prune(now);
        }
        s.entries.insert(full_id.to_owned(), Entry::Pending(now));
        drop(s);
        // The fetcher only stops with the runtime; then nothing is pending for long anyway.
        let _ = self.requests.send((full_id.to_owned(), runtime));
        Lookup::Pending(Duration::ZERO)
    }

    /// Known metadata only (no request): for rendering.
    pub fn known(&self, full_id: &str) -> Option<Arc<ContainerMeta>> {
        match self.lock().entries.get(full_id) {
            Some(Entry::Known(m)) => Some(m.clone()),
            _ => None,
        }
    }

    fn settle(&self, full_id: &str, meta: Option<ContainerMeta>, runtime: ContainerRuntime) {
        let mut s = self.lock();
        s.lookups += 1;
        if meta.is_none() && matches!(s.entries.get(full_id), Some(Entry::Known(_))) {
            return;
        }
        if meta.is_none() && s.following_events && !runtime.speaks_cri() {
            // Stays pending: the event stream may still describe it, and alerts waiting for it
            // go out at their deadline either way.
            s.lookup_failures += 1;
            return;
        }
        let entry = match meta {
            Some(m) => Entry::Known(Arc::new(m)),
            None => {
                s.lookup_failures += 1;
                Entry::Failed(Instant::now())
            }
        };
        s.entries.insert(full_id.to_owned(), entry);
        s.generation += 1;
    }

    /// Waits until the runtime's containers have been listed; false if none answered in time.
    pub async fn wait_listed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lock().listed {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Changes whenever a container is described or forgotten.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Every known container, for `monitor containers`.
    pub fn snapshot(&self) -> Vec<(String, Arc<ContainerMeta>)> {
        let s = self.lock();
        let mut v: Vec<_> = s
            .entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Known(m) => Some((id.clone(), m.clone())),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn stats(&self) -> DirectoryStats {
        let s = self.lock();
        let mut st =
            DirectoryStats { lookups: s.lookups, lookup_failures: s.lookup_failures, ..Default::default() };
        for e in s.entries.values() {
            match e {
                Entry::Known(_) => st.known += 1,
                Entry::Pending(_) => st.pending += 1,
                Entry::Failed(_) => st.failed += 1,
            }
        }
        st
    }
}

impl ContainerMeta {
    /// Name and image as a runtime reports them; the image reference split into its parts.
    pub fn named(name: Option<String>, image: Option<String>, source: &'static str) -> Self {
        let (image_repository, image_tag, image_digest) = match image.as_deref().map(split_image) {
            Some((r, t, d)) => (Some(r), t, d),
            None => (None, None, None),
        };
        Self { name, image, image_repository, image_tag, image_digest, source, ..Default::default() }
    }
}

fn meta_from_inspect(r: bollard::models::ContainerInspectResponse) -> ContainerMeta {
    let config = r.config.unwrap_or_default();
    ContainerMeta {
        image_id: r.image,
        privileged: r.host_config.and_then(|h| h.privileged),
        labels: config.labels.unwrap_or_default(),
        mounts: r
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| ContainerMount {
                source: m.source.or(m.name).unwrap_or_default(),
                dest: m.destination.unwrap_or_default(),
                mode: m.mode.unwrap_or_default(),
                rdwr: m.rw.unwrap_or(false),
                propagation: m.propagation.unwrap_or_default(),
            })
            .collect(),
        ..ContainerMeta::named(
            r.name.map(|n| n.trim_start_matches('/').to_owned()),
            config.image,
            "docker-api",
        )
    }
}

async fn inspect(docker: &Docker, id: &str) -> Option<ContainerMeta> {
    match tokio::time::timeout(REQUEST_TIMEOUT, docker.inspect_container(id, None)).await {
        Ok(Ok(r)) => Some(meta_from_inspect(r)),
        Ok(Err(e)) => {
            tracing::debug!(container = id, "container runtime lookup failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(container = id, "container runtime did not answer within {REQUEST_TIMEOUT:?}");
            None
        }
    }
}

fn connect(sockets: &[PathBuf]) -> Option<(Docker, PathBuf)> {
    let path = sockets.iter().find(|p| p.exists())?;
    let docker = Docker::connect_with_unix(
        &path.to_string_lossy(),
        REQUEST_TIMEOUT.as_secs().max(1),
        bollard::API_DEFAULT_VERSION,
    )
    .ok()?;
    Some((docker, path.clone()))
}

/// Follows the runtime's container events: a container is described as it is created and
/// started, before its first process runs, so even one that exits and is removed at once (the
/// lookup after its first event would find nothing) is named in its alerts.
async fn follow_events(docker: Docker, dir: ContainerDirectory) {
    use futures_util::StreamExt as _;
    // Unfiltered: podman's compatible API returns nothing for a `type` filter; other types are
    // skipped below.
    let mut events = docker.events(None);
    dir.lock().following_events = true;
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!("unreadable container runtime event: {e}");
                continue;
            }
        };
        let Some(actor) = ev.actor else { continue };
        let Some(id) = actor.id.filter(|id| is_hex64(id)) else { continue };
        match ev.action.as_deref() {
            Some("create" | "start") => {}
            Some("destroy" | "remove") => {
                dir.lock().removed.insert(id, Instant::now());
                continue;
            }
            _ => continue,
        }
        if dir.known(&id).is_some() {
            continue;
        }
        let meta = match inspect(&docker, &id).await {
            Some(m) => m,
            None => {
                // Gone already: what the event itself says.
                let attrs = actor.attributes.unwrap_or_default();
                ContainerMeta::named(attrs.get("name").cloned(), attrs.get("image").cloned(), "docker-api")
            }
        };
        dir.settle(&id, Some(meta), ContainerRuntime::Docker);
    }
    dir.lock().following_events = false;
    tracing::warn!("the container runtime's event stream ended; containers are looked up when first seen");
}

/// The runtimes' APIs: the Docker Engine API (docker, podman) and the CRI (containerd, CRI-O).
pub struct Sources {
    pub docker_sockets: Vec<PathBuf>,
    pub cri_sockets: Vec<PathBuf>,
}

/// Answers lookups one by one; lists the running containers once when it first reaches a
/// runtime. Each container is asked of the API its cgroup says it belongs to first.
async fn fetcher(
    sources: Sources,
    mut rx: mpsc::UnboundedReceiver<(String, ContainerRuntime)>,
    dir: ContainerDirectory,
) {
    let mut docker = connect(&sources.docker_sockets);
    if let Some((d, path)) = &docker {
        tracing::info!(socket = %path.display(), "container runtime API found (Docker Engine API)");
        tokio::spawn(follow_events(d.clone(), dir.clone()));
        prefill(d, &dir).await;
    }
    let mut cri = CriClient::connect(&sources.cri_sockets, REQUEST_TIMEOUT).await;
    if let Some(c) = &mut cri {
        let ids = c.list().await;
        let mut n = 0;
        for id in ids {
            if let Some(meta) = c.describe(&id).await {
                dir.settle(&id, Some(meta), ContainerRuntime::CriO);
                n += 1;
            }
        }
        tracing::info!(containers = n, "running containers listed from the CRI runtime");
    }
    dir.lock().listed = true;
    if docker.is_none() && cri.is_none() {
        tracing::info!(
            docker_sockets = ?sources.docker_sockets,
            cri_sockets = ?sources.cri_sockets,
            "no container runtime API answered: container names and images will be null"
        );
    }
    while let Some((id, runtime)) = rx.recv().await {
        if docker.is_none() {
            docker = connect(&sources.docker_sockets);
            if let Some((d, path)) = &docker {
                tracing::info!(socket = %path.display(), "container runtime API found (Docker Engine API)");
                tokio::spawn(follow_events(d.clone(), dir.clone()));
            }
        }
        if cri.is_none() {
            cri = CriClient::connect(&sources.cri_sockets, REQUEST_TIMEOUT).await;
        }
        let cri_first = runtime.speaks_cri();
        let mut meta = None;
        for use_cri in [cri_first, !cri_first] {
            meta = match (use_cri, &docker, &mut cri) {
                (false, Some((d, _)), _) => inspect(d, &id).await,
                (true, _, Some(c)) => c.describe(&id).await,
                _ => None,
            };
            if meta.is_some() {
                break;
            }
        }
        dir.settle(&id, meta, runtime);
    }
}

async fn prefill(docker: &Docker, dir: &ContainerDirectory) {
    let listed = tokio::time::timeout(REQUEST_TIMEOUT, docker.list_containers(None)).await;
    let Ok(Ok(summaries)) = listed else {
        tracing::warn!(
            "could not list the runtime's containers at start-up; they will be looked up when seen"
        );
        return;
    };
    let mut n = 0;
    for s in summaries {
        let Some(id) = s.id else { continue };
        if let Some(meta) = inspect(docker, &id).await {
            dir.settle(&id, Some(meta), ContainerRuntime::Docker);
            n += 1;
        }
    }
    tracing::info!(containers = n, "running containers listed from the runtime");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_containers_are_kept_a_while_then_forgotten() {
        let now = Instant::now();
        let mut s = Shared {
            entries: HashMap::new(),
            generation: 0,
            removed: HashMap::new(),
            listed: true,
            following_events: true,
            lookups: 0,
            lookup_failures: 0,
        };
        let known = Entry::Known(Arc::new(ContainerMeta::default()));
        s.entries.insert("old".into(), known.clone());
        s.entries.insert("recent".into(), known.clone());
        s.entries.insert("running".into(), known);
        s.removed.insert("old".into(), now.checked_sub(KEEP_REMOVED * 2).unwrap_or(now));
        s.removed.insert("recent".into(), now);
        s.prune(now);
        let mut left: Vec<_> = s.entries.keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["recent", "running"]);
    }

    #[test]
    fn image_references_split_into_repository_tag_and_digest() {
        let s = |i: &str| {
            let (r, t, d) = split_image(i);
            (r, t.unwrap_or_default(), d.unwrap_or_default())
        };
        assert_eq!(
            s("localhost/monitor-test:latest"),
            ("localhost/monitor-test".into(), "latest".into(), "".into())
        );
        assert_eq!(s("registry:5000/team/app"), ("registry:5000/team/app".into(), "".into(), "".into()));
        assert_eq!(
            s("registry:5000/team/app:1.2@sha256:abc"),
            ("registry:5000/team/app".into(), "1.2".into(), "sha256:abc".into())
        );
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
    }
}
