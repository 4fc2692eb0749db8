//! From a cgroup to a container: cgroup id -> path -> container id.

mod cgroup;
pub mod cri;
mod id;
mod metadata;
mod snapshot;

pub use cgroup::{CgroupResolver, CgroupStats};
pub use id::{
    ContainerId, ContainerRuntime, PodCgroup, container_from_cgroup_path, is_hex64, pod_from_cgroup_path,
};
pub use metadata::{
    ContainerDirectory, ContainerMeta, ContainerMount, DEFAULT_DOCKER_SOCKETS, DirectoryStats, Lookup,
    Sources,
};
pub use snapshot::{SNAPSHOT_FILE, to_json, write_snapshot};
