//! `monitor containers`: the containers the runtimes describe, as the daemon sees them: id,
//! name, image, pod, namespace, runtime.

use std::time::Duration;

use anyhow::Result;

use super::run::RulesArgs;
use crate::container::{ContainerDirectory, ContainerMeta};

#[derive(clap::Args, Debug)]
pub struct ContainersArgs {
    /// One JSON object per container instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: RulesArgs,
}

fn row(id: &str, m: &ContainerMeta) -> [String; 6] {
    let or_dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
    [
        id.get(..12).unwrap_or(id).to_owned(),
        or_dash(m.name.as_deref()),
        or_dash(m.image.as_deref()),
        or_dash(m.label("io.kubernetes.pod.name")),
        or_dash(m.label("io.kubernetes.pod.namespace")),
        m.source.to_owned(),
    ]
}

pub async fn run(args: ContainersArgs) -> Result<()> {
    let config = args.config.config()?;
    let dir = ContainerDirectory::start(config.container_runtime.sources());
    // The directory lists the runtime's containers when it connects.
    let listed = dir.wait_listed(Duration::from_secs(5)).await;
    if !listed {
        eprintln!(
            "monitor: no container runtime answered in time (set container_runtime.docker_sockets or cri_sockets in the config)"
        );
    }
    let containers = dir.snapshot();
    if args.json {
        for (id, m) in &containers {
            println!(
                "{}",
                serde_json::json!({
                    "container.id": id.get(..12).unwrap_or(id), "container.full_id": id,
                    "container.name": m.name, "container.image": m.image,
                    "container.image.repository": m.image_repository, "container.image.tag": m.image_tag,
                    "container.privileged": m.privileged,
                    "k8s.pod.name": m.label("io.kubernetes.pod.name"),
                    "k8s.ns.name": m.label("io.kubernetes.pod.namespace"),
                    "k8s.pod.uid": m.label("io.kubernetes.pod.uid"),
                    "k8s.pod.labels": m.pod_labels,
                    "source": m.source,
                })
            );
        }
        return Ok(());
    }
    let header = ["CONTAINER", "NAME", "IMAGE", "POD", "NAMESPACE", "SOURCE"].map(String::from);
    let rows: Vec<[String; 6]> =
        std::iter::once(header).chain(containers.iter().map(|(id, m)| row(id, m))).collect();
    let widths: Vec<usize> =
        (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}
