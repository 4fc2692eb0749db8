use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor-ebpf");
    let root = metadata.canonicalize().context("monitor-ebpf not found beside monitor")?;
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "monitor-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
