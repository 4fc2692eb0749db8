//! `monitor containers`: what the daemon knows about containers (id, name, image, pod,
//! namespace, runtime API), from the snapshot the running daemon keeps in its state directory;
//! without a running daemon (or with `--query`), asked of the runtimes directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::run::RulesArgs;
use crate::container::{ContainerDirectory, SNAPSHOT_FILE, to_json};

#[derive(clap::Args, Debug)]
pub struct ContainersArgs {
    /// One JSON object per container instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask the runtimes now instead of reading the running daemon's view.
    #[arg(long)]
    pub query: bool,
    #[command(flatten)]
    pub config: RulesArgs,
}

/// A snapshot older than this is from a daemon that is no longer running.
const SNAPSHOT_STALE: Duration = Duration::from_secs(30);

fn read_snapshot(state_dir: &Path) -> Option<Vec<serde_json::Value>> {
    let path: PathBuf = state_dir.join(SNAPSHOT_FILE);
    let fresh =
        std::fs::metadata(&path).ok()?.modified().ok()?.elapsed().is_ok_and(|age| age < SNAPSHOT_STALE);
    if !fresh {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

pub async fn run(args: ContainersArgs) -> Result<()> {
    let config = args.config.config()?;
    let rows = match (args.query, read_snapshot(&config.state_dir)) {
        (false, Some(rows)) => rows,
        (query, _) => {
            if !query {
                eprintln!(
                    "monitor: no running daemon's view in {} (is `monitor run` running?); asking the runtimes",
                    config.state_dir.display()
                );
            }
            let dir = ContainerDirectory::start(config.container_runtime.sources());
            if !dir.wait_listed(Duration::from_secs(5)).await {
                eprintln!(
                    "monitor: no container runtime answered in time (set container_runtime.docker_sockets or \
                     cri_sockets in the config)"
                );
            }
            dir.snapshot().iter().map(|(id, m)| to_json(id, m)).collect()
        }
    };
    if args.json {
        for r in &rows {
            println!("{r}");
        }
        return Ok(());
    }
    let cell = |r: &serde_json::Value, k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
    let keys = ["container.id", "container.name", "container.image", "k8s.pod.name", "k8s.ns.name", "source"];
    let header = ["CONTAINER", "NAME", "IMAGE", "POD", "NAMESPACE", "SOURCE"].map(String::from);
    let table: Vec<[String; 6]> =
        std::iter::once(header).chain(rows.iter().map(|r| keys.map(|k| cell(r, k)))).collect();
    let widths: Vec<usize> =
        (0..6).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &table {
        let line: Vec<String> = r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}
