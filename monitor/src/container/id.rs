//! Recognising container runtimes' cgroup layouts.
//!
//! The id is the 64-hex id in the deepest path component that carries one, in any of these
//! shapes: docker (`/docker/<id>`, `docker-<id>.scope`), containerd and CRI
//! (`cri-containerd-<id>.scope`, `/kubepods/.../pod<uid>/<id>`), CRI-O (`crio-<id>.scope`,
//! `/crio/<id>`), podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`), and the same with
//! a trailing `/container` or `/init.scope` leaf that some runtimes nest inside the scope.

/// Falco's container.type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerRuntime {
    Docker,
    Containerd,
    CriO,
    Podman,
    /// A bare id under a parent no runtime is known to use.
    Unknown,
}

impl ContainerRuntime {
    pub const ALL: [Self; 5] = [Self::Docker, Self::Containerd, Self::CriO, Self::Podman, Self::Unknown];

    pub fn name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Podman => "podman",
            Self::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether the runtime is asked through the CRI first (else the Docker Engine API).
    pub fn speaks_cri(self) -> bool {
        matches!(self, Self::Containerd | Self::CriO)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerId {
    /// The full 64-hex id.
    pub full: String,
    pub runtime: ContainerRuntime,
    /// For Kubernetes containers, what the kubepods path says about the pod.
    pub pod: Option<PodCgroup>,
}

/// What a kubelet's cgroup layout tells about a pod: its UID and QoS class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod UID as Kubernetes writes it (dashes; the systemd driver's underscores undone).
    pub uid: String,
    /// guaranteed, burstable or besteffort.
    pub qos: &'static str,
}

fn is_pod_uid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The pod of a kubepods path: `/kubepods/burstable/pod<uid>/...` (cgroupfs driver) or
/// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice/...`
/// (systemd driver). Pods of the guaranteed class sit directly under kubepods.
pub fn pod_from_cgroup_path(path: &str) -> Option<PodCgroup> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let start = comps.iter().position(|c| *c == "kubepods" || *c == "kubepods.slice")?;
    let mut qos = "guaranteed";
    for c in &comps[start + 1..] {
        let stem = c.strip_suffix(".slice").unwrap_or(c);
        if stem == "burstable" || stem.ends_with("-burstable") {
            qos = "burstable";
        } else if stem == "besteffort" || stem.ends_with("-besteffort") {
            qos = "besteffort";
        }
        let candidate = stem.strip_prefix("pod").or_else(|| stem.rfind("-pod").map(|i| &stem[i + 4..]));
        if let Some(uid) = candidate {
            let uid = uid.replace('_', "-");
            if is_pod_uid(&uid) {
                return Some(PodCgroup { uid, qos });
            }
        }
    }
    None
}

impl ContainerId {
    /// The 12-hex short id (Falco's container.id).
    pub fn short(&self) -> &str {
        self.full.get(..12).unwrap_or(&self.full)
    }
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn runtime_of_prefix(prefix: &str) -> Option<ContainerRuntime> {
    Some(match prefix {
        "docker" => ContainerRuntime::Docker,
        "cri-containerd" | "containerd" => ContainerRuntime::Containerd,
        "crio" | "crio-conmon" => ContainerRuntime::CriO,
        "libpod" | "libpod-conmon" => ContainerRuntime::Podman,
        _ => return None,
    })
}

fn runtime_of_parent(parent: &str) -> ContainerRuntime {
    match parent {
        "docker" => ContainerRuntime::Docker,
        "crio" => ContainerRuntime::CriO,
        "libpod_parent" | "machine.slice" => ContainerRuntime::Podman,
        p if p.starts_with("kubepods") || p.starts_with("pod") => ContainerRuntime::Containerd,
        _ => ContainerRuntime::Unknown,
    }
}

/// One path component: `<prefix>-<id>.scope`, `<prefix>-<id>`, or a bare `<id>`.
fn component_id(comp: &str, parent: &str) -> Option<ContainerId> {
    if is_hex64(comp) {
        return Some(ContainerId { full: comp.to_owned(), runtime: runtime_of_parent(parent), pod: None });
    }
    let stem = comp.strip_suffix(".scope").unwrap_or(comp);
    let (prefix, id) = stem.rsplit_once('-')?;
    if !is_hex64(id) {
        return None;
    }
    let runtime = runtime_of_prefix(prefix)?;
    // conmon's scope is the monitor process, not the container.
    if prefix.ends_with("-conmon") {
        return None;
    }
    Some(ContainerId { full: id.to_owned(), runtime, pod: None })
}

/// The container a cgroup v2 path belongs to, or None for host processes.
pub fn container_from_cgroup_path(path: &str) -> Option<ContainerId> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut id = comps
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, c)| component_id(c, if i > 0 { comps[i - 1] } else { "" }))?;
    id.pod = pod_from_cgroup_path(path);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd";

    fn check(path: &str, runtime: &str) {
        let runtime = ContainerRuntime::from_name(runtime).unwrap();
        let c = container_from_cgroup_path(path).unwrap_or_else(|| panic!("no container in {path}"));
        assert_eq!(c.full, ID, "{path}");
        assert_eq!(c.short(), "3f2a9c1b7d4e", "{path}");
        assert_eq!(c.runtime, runtime, "{path}");
    }

    #[test]
    fn runtime_layouts() {
        check(&format!("/docker/{ID}"), "docker");
        check(&format!("/system.slice/docker-{ID}.scope"), "docker");
        check(
            &format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"
            ),
            "containerd",
        );
        check(&format!("/kubepods/besteffort/pod0d3ae0b0-5e3c-4e2f-9f0a-1b2c3d4e5f60/{ID}"), "containerd");
        check(&format!("/kubepods.slice/kubepods-pod12.slice/crio-{ID}.scope"), "cri-o");
        check(&format!("/crio/{ID}"), "cri-o");
        check(&format!("/machine.slice/libpod-{ID}.scope"), "podman");
        check(&format!("/machine.slice/libpod-{ID}.scope/container"), "podman");
        check(&format!("/libpod_parent/libpod-{ID}"), "podman");
        check(&format!("/docker-{ID}.scope"), "docker");
    }

    #[test]
    fn pod_uid_and_qos_class_from_kubepods_paths() {
        let uid = "0d3ae0b0-5e3c-4e2f-9f0a-1b2c3d4e5f60";
        let systemd_uid = uid.replace('-', "_");
        for (path, qos) in [
            (format!("/kubepods/besteffort/pod{uid}/{ID}"), "besteffort"),
            (format!("/kubepods/pod{uid}/{ID}"), "guaranteed"),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope"
                ),
                "burstable",
            ),
            (format!("/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope"), "guaranteed"),
        ] {
            let c = container_from_cgroup_path(&path).unwrap();
            assert_eq!(c.pod, Some(PodCgroup { uid: uid.to_owned(), qos }), "{path}");
        }
        assert_eq!(container_from_cgroup_path(&format!("/docker/{ID}")).unwrap().pod, None);
        assert_eq!(pod_from_cgroup_path("/kubepods.slice/kubepods-burstable.slice"), None);
    }

    #[test]
    fn host_and_lookalikes_are_not_containers() {
        for p in [
            "/",
            "",
            "/system.slice/ssh.service",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            // Wrong length and non-hex ids.
            &format!("/docker/{}", &ID[..63]),
            &format!("/docker/{}", ID.replace('a', "g")),
            &format!("/system.slice/notaruntime-{ID}.scope"),
        ] {
            assert_eq!(container_from_cgroup_path(p), None, "{p}");
        }
    }
}
