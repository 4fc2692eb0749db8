//! The daemon's view of containers, written to its state directory for `monitor containers`.

use std::path::Path;

use super::{ContainerDirectory, ContainerMeta};

/// Where `monitor run` keeps what `monitor containers` reads.
pub const SNAPSHOT_FILE: &str = "containers.json";
/// One container as `monitor containers` shows it: Falco field names.
pub fn to_json(full_id: &str, m: &ContainerMeta) -> serde_json::Value {
    serde_json::json!({
        "container.id": full_id.get(..12).unwrap_or(full_id), "container.full_id": full_id,
        "container.name": m.name, "container.image": m.image,
        "container.image.repository": m.image_repository, "container.image.tag": m.image_tag,
        "container.image.digest": m.image_digest, "container.privileged": m.privileged,
        "k8s.pod.name": m.label(crate::container::cri::POD_NAME_LABEL),
        "k8s.ns.name": m.label(crate::container::cri::POD_NAMESPACE_LABEL),
        "k8s.pod.uid": m.label(crate::container::cri::POD_UID_LABEL),
        "k8s.pod.labels": m.pod_labels,
        "source": m.source,
    })
}

/// Writes the daemon's view atomically (write, then rename), for `monitor containers`.
pub fn write_snapshot(dir: &ContainerDirectory, state_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let mut text = String::new();
    for (id, m) in dir.snapshot() {
        text.push_str(&to_json(&id, &m).to_string());
        text.push('\n');
    }
    let tmp = state_dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, state_dir.join(SNAPSHOT_FILE))
}
